/**
 * A neutral container description rendered two ways: as a core `Container` (Deployments) and as a
 * ModelService container (the CRD has its own, smaller container type: no ports, probes or mounts).
 */
import { k8s } from 'cdk8s-plus-28';
import type { Accelerator } from './accelerator.js';

/** One environment variable: a literal, a downward-API field or a Secret key reference. */
export type EnvVarSpec =
  | { readonly name: string; readonly value: string }
  | { readonly name: string; readonly fieldPath: string }
  | { readonly name: string; readonly secret: { readonly name: string; readonly key: string } };

/** An HTTP probe on a named port. */
export interface HttpProbeSpec {
  readonly path: string;
  readonly port: number;
  readonly periodSeconds: number;
  readonly failureThreshold: number;
  readonly timeoutSeconds: number;
}

/** A container in the neutral form. */
export interface ContainerSpec {
  readonly name: string;
  readonly image: string;
  /**
   * Entrypoint override.
   * @default - the image's entrypoint
   */
  readonly command?: readonly string[];
  readonly args: readonly string[];
  readonly env: readonly EnvVarSpec[];
  readonly ports: readonly { readonly name: string; readonly port: number }[];
  readonly cpu: string;
  readonly memory: string;
  /**
   * GPUs (requests = limits).
   * @default - no accelerator
   */
  readonly accelerator?: Accelerator;
  /**
   * Startup probe.
   * @default - none
   */
  readonly startupProbe?: HttpProbeSpec;
  /**
   * Readiness probe.
   * @default - none
   */
  readonly readinessProbe?: HttpProbeSpec;
  /**
   * Liveness probe.
   * @default - none
   */
  readonly livenessProbe?: HttpProbeSpec;
  readonly volumeMounts: readonly { readonly name: string; readonly mountPath: string; readonly readOnly?: boolean }[];
  /** Mount the model volume (ModelService only: the operator adds the mount). */
  readonly mountModelVolume: boolean;
  /**
   * `Always` makes an init container a native sidecar (Kubernetes ≥ 1.29).
   * @default - a plain (run-to-completion) init container
   */
  readonly restartPolicy?: 'Always';
}

function envToK8s(e: EnvVarSpec): k8s.EnvVar {
  if ('value' in e) return { name: e.name, value: e.value };
  if ('fieldPath' in e) return { name: e.name, valueFrom: { fieldRef: { fieldPath: e.fieldPath } } };
  return { name: e.name, valueFrom: { secretKeyRef: { name: e.secret.name, key: e.secret.key } } };
}

function probeToK8s(p: HttpProbeSpec): k8s.Probe {
  return {
    httpGet: { path: p.path, port: k8s.IntOrString.fromNumber(p.port) },
    periodSeconds: p.periodSeconds,
    failureThreshold: p.failureThreshold,
    timeoutSeconds: p.timeoutSeconds,
  };
}

/** The core/v1 Container. GPU and memory requests equal their limits; CPU is only requested. */
export function toK8sContainer(c: ContainerSpec): k8s.Container {
  const gpu = c.accelerator?.toResourceQuantities() ?? {};
  return {
    name: c.name,
    image: c.image,
    imagePullPolicy: 'IfNotPresent',
    ...(c.command ? { command: [...c.command] } : {}),
    args: [...c.args],
    env: c.env.map(envToK8s),
    ports: c.ports.map((p) => ({ name: p.name, containerPort: p.port, protocol: 'TCP' })),
    resources: {
      requests: { cpu: k8s.Quantity.fromString(c.cpu), memory: k8s.Quantity.fromString(c.memory), ...gpu },
      limits: { memory: k8s.Quantity.fromString(c.memory), ...gpu },
    },
    ...(c.startupProbe ? { startupProbe: probeToK8s(c.startupProbe) } : {}),
    ...(c.readinessProbe ? { readinessProbe: probeToK8s(c.readinessProbe) } : {}),
    ...(c.livenessProbe ? { livenessProbe: probeToK8s(c.livenessProbe) } : {}),
    volumeMounts: c.volumeMounts.map((m) => ({ name: m.name, mountPath: m.mountPath, ...(m.readOnly ? { readOnly: true } : {}) })),
    securityContext: { allowPrivilegeEscalation: false, seccompProfile: { type: 'RuntimeDefault' } },
    ...(c.restartPolicy ? { restartPolicy: c.restartPolicy } : {}),
  };
}

/** Wire-format env var of a ModelService container. */
export interface ModelServiceEnvJson {
  readonly name: string;
  /**
   * Literal value.
   * @default - none (valueFrom is set)
   */
  readonly value?: string;
  /**
   * Downward-API field or Secret key.
   * @default - none (value is set)
   */
  readonly valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}

/** The fields the ModelService CRD accepts for a container, as plain wire JSON. */
export interface ModelServiceContainerJson {
  readonly name: string;
  readonly image: string;
  /**
   * Entrypoint override.
   * @default - the image's entrypoint
   */
  readonly command?: string[];
  readonly args: string[];
  readonly env: ModelServiceEnvJson[];
  readonly resources: { requests: Record<string, string>; limits: Record<string, string> };
  readonly mountModelVolume: boolean;
}

/** The container as the ModelService CRD models it (ports, probes and mounts come from the operator). */
export function toModelServiceContainer(c: ContainerSpec): ModelServiceContainerJson {
  const gpu: Record<string, string> = {};
  if (c.accelerator) gpu[c.accelerator.resourceName] = String(c.accelerator.count);
  return {
    name: c.name,
    image: c.image,
    ...(c.command ? { command: [...c.command] } : {}),
    args: [...c.args],
    env: c.env.map((e): ModelServiceEnvJson => {
      if ('value' in e) return { name: e.name, value: e.value };
      if ('fieldPath' in e) return { name: e.name, valueFrom: { fieldRef: { fieldPath: e.fieldPath } } };
      return { name: e.name, valueFrom: { secretKeyRef: { name: e.secret.name, key: e.secret.key } } };
    }),
    resources: { requests: { cpu: c.cpu, memory: c.memory, ...gpu }, limits: { memory: c.memory, ...gpu } },
    mountModelVolume: c.mountModelVolume,
  };
}
