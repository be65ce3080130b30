/**
 * The whole kvroute deployment in one chart: model servers, gateway wiring, EPP, optional Redis,
 * network policies, monitoring and the Argo CD Application. Numbered steps; every cross reference
 * comes from DeploymentNames or from the object that owns it.
 */
import { EppPortNames, EppPorts, Roles } from '@kvroute/epp/contract';
import { Chart, type ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { DeploymentConfig } from './config/deployment-config.js';
import { withRegistry } from './config/images.js';
import { DeploymentNames } from './config/names.js';
import { EndpointPicker } from './epp/endpoint-picker.js';
import { buildEppConfig } from './epp/epp-config.js';
import { ArgoApplication } from './gitops/argo-application.js';
import { VerifyJob } from './gitops/verify-job.js';
import { GrafanaDashboard } from './monitoring/grafana-dashboard.js';
import { EppServiceMonitor, ModelServerPodMonitor } from './monitoring/monitors.js';
import { KvroutePrometheusRule } from './monitoring/prometheus-rule.js';
import { Redis } from './redis/redis.js';
import { ExtProcEnvoyFilter } from './routing/envoy-filter.js';
import { EppDestinationRule } from './routing/epp-destination-rule.js';
import { ModelGateway } from './routing/gateway.js';
import { ServiceBackend } from './routing/http-backend.js';
import { ModelRoute } from './routing/http-route.js';
import { InferencePool } from './routing/inference-pool.js';
import { AllowIngress, PodPeer } from './security/network-policies.js';
import { Accelerator } from './vllm/accelerator.js';
import { KvEventsWiring } from './vllm/kv-events.js';
import { ModelServerDeployment } from './vllm/model-server-deployment.js';
import { ModelService } from './vllm/model-service.js';
import { ModelServiceBaseConfig } from './vllm/model-service-base-config.js';
import { VllmPortNames, vllmServer, type VllmServerParts } from './vllm/vllm-server.js';

export interface KvrouteChartProps extends ChartProps {
  /** The validated deployment config (see parseDeploymentConfig). */
  readonly config: DeploymentConfig;
}

/** The whole kvroute deployment in one chart (namespace = config.namespace, stable object names). */
export class KvrouteChart extends Chart {
  readonly config: DeploymentConfig;
  readonly names: DeploymentNames;
  readonly endpointPicker: EndpointPicker;
  readonly inferencePool: InferencePool;

  constructor(scope: Construct, id: string, props: KvrouteChartProps) {
    const names = DeploymentNames.of(props.config);
    super(scope, id, { ...props, namespace: props.config.namespace, labels: { ...(props.labels ?? {}), ...names.commonLabels }, disableResourceNameHashes: true });
    const config = props.config;
    this.config = config;
    this.names = names;
    const eppHost = names.serviceHost(names.epp);

    // 1. Model servers: vLLM decode (+ prefill with P/D) as Deployments or one ModelService.
    const wiring = config.epp.eventsMode === 'bind' ? KvEventsWiring.toEppService(eppHost, EppPorts.zmq) : KvEventsWiring.podBinds(EppPorts.zmq);
    const accelerator = (count: number) =>
      Accelerator.nvidia(count, {
        resourceName: config.accelerator.resourceName,
        nodeLabelKey: config.accelerator.nodeLabelKey,
        nodeLabelValues: config.accelerator.nodeLabelValues,
        tolerations: config.accelerator.tolerations,
      });
    // Images: from images.registry when set (same paths and tags), pulled with images.imagePullSecrets.
    const image = (ref: string): string => withRegistry(ref, config.images.registry);
    const imagePullSecrets = config.images.imagePullSecrets;
    const servers = new Map<typeof Roles.decode | typeof Roles.prefill, { parts: VllmServerParts; accelerator: Accelerator; replicas: number }>();
    for (const role of names.roles) {
      if (role !== Roles.decode && role !== Roles.prefill) continue;
      const pool = config[role];
      const acc = accelerator(pool.gpusPerPod);
      const parts = vllmServer({
        role,
        model: config.model.name,
        image: image(config.images.vllm),
        sidecarImage: image(config.images.routingSidecar),
        blockSize: config.kvCache.blockSize,
        hashAlgo: config.kvCache.hashAlgo,
        hashSeed: config.kvCache.hashSeed,
        maxModelLen: config.model.maxModelLen,
        maxNumSeqs: config.model.maxNumSeqs,
        gpuMemoryUtilization: config.model.gpuMemoryUtilization,
        accelerator: acc,
        hfTokenSecret: config.model.hfTokenSecret,
        kvEvents: wiring,
        pd: config.pd.enabled,
        cpu: pool.resources.cpu,
        memory: pool.resources.memory,
        shmSize: pool.shmSize,
        modelCache: config.model.cache,
        startupTimeoutSeconds: config.model.startupTimeoutSeconds,
        extraArgs: config.model.extraArgs,
        ipv6: config.ipFamily === 'IPv6',
      });
      servers.set(role, { parts, accelerator: acc, replicas: pool.replicas });
    }
    const decode = servers.get(Roles.decode);
    if (!decode) throw new Error('KvrouteChart: no decode role; this is a bug in DeploymentNames.roles');

    if (config.workloadMode === 'deployments') {
      new k8s.KubeServiceAccount(this, 'ModelServerServiceAccount', { metadata: { name: names.modelServer }, automountServiceAccountToken: false });
      for (const [role, s] of servers) {
        new ModelServerDeployment(this, `${role}-deployment`, {
          name: role === Roles.decode ? names.decode : names.prefill,
          replicas: s.replicas,
          podLabels: names.modelServerPodLabels(role),
          server: s.parts,
          accelerator: s.accelerator,
          serviceAccountName: names.modelServer,
          imagePullSecrets,
        });
      }
    } else {
      const prefill = servers.get(Roles.prefill);
      const base = new ModelServiceBaseConfig(this, 'ModelServiceBaseConfig', {
        name: names.modelServiceBaseConfig,
        decode: { server: decode.parts, accelerator: decode.accelerator },
        ...(prefill ? { prefill: { server: prefill.parts, accelerator: prefill.accelerator } } : {}),
        imagePullSecrets,
      });
      new ModelService(this, 'ModelService', {
        name: names.modelService,
        baseConfigName: base.name,
        modelName: config.model.name,
        huggingFaceRepo: config.model.name,
        authSecretName: config.model.hfTokenSecret.name,
        decode: { replicas: decode.replicas, server: decode.parts, accelerator: decode.accelerator },
        ...(prefill ? { prefill: { replicas: prefill.replicas, server: prefill.parts, accelerator: prefill.accelerator } } : {}),
      });
    }

    // Decode Service: the HTTPRoute backend in EnvoyFilter mode (Istio needs a real route to repoint).
    const decodeService = new k8s.KubeService(this, 'DecodeService', {
      metadata: { name: names.decode, labels: names.modelServerPodLabels(Roles.decode) },
      spec: {
        type: 'ClusterIP',
        selector: names.modelServerRoleSelector(Roles.decode),
        ports: [{ name: VllmPortNames.serving, port: decode.parts.servingPort, targetPort: k8s.IntOrString.fromString(VllmPortNames.serving), protocol: 'TCP', appProtocol: 'http' }],
      },
    });

    // 2. The EPP (config built with the EPP's own schema).
    const eppConfig = buildEppConfig(config, names);
    this.endpointPicker = new EndpointPicker(this, 'EndpointPicker', {
      name: names.epp,
      configMapName: names.eppConfig,
      image: image(config.images.epp),
      imagePullSecrets,
      eppConfig,
      podLabels: names.eppSelector,
      replicas: config.epp.replicas,
      resources: config.epp.resources,
      hfTokenSecret: config.model.hfTokenSecret,
      ...(config.redis.enabled ? { redisPasswordSecret: config.redis.passwordSecret } : {}),
    });

    // 3. Gateway wiring. The pool exists in both modes: the EPP discovers its pods through it.
    this.inferencePool = new InferencePool(this, 'InferencePool', {
      name: names.inferencePool,
      selector: names.modelServerSelector,
      targetPort: decode.parts.servingPort,
      endpointPicker: { serviceName: this.endpointPicker.serviceName, port: EppPorts.grpc },
      failureMode: config.gateway.failureMode,
    });
    let listenerPort = config.gateway.listenerPort;
    if (config.gateway.create) {
      listenerPort = new ModelGateway(this, 'Gateway', { name: names.gateway, className: config.gateway.className, port: config.gateway.listenerPort }).port;
    }
    new EppDestinationRule(this, 'EppDestinationRule', { name: names.eppDestinationRule, host: eppHost });
    if (config.gateway.mode === 'inferencepool') {
      new ModelRoute(this, 'HttpRoute', {
        name: names.httpRoute,
        gatewayName: names.gateway,
        backend: this.inferencePool,
        pathPrefix: config.gateway.pathPrefix,
        hostnames: config.gateway.hostnames,
        requestTimeout: config.gateway.requestTimeout,
      });
    } else {
      new ModelRoute(this, 'HttpRoute', {
        name: names.httpRoute,
        gatewayName: names.gateway,
        backend: ServiceBackend.of(decodeService.name, decode.parts.servingPort),
        pathPrefix: config.gateway.pathPrefix,
        hostnames: config.gateway.hostnames,
        requestTimeout: config.gateway.requestTimeout,
      });
      new ExtProcEnvoyFilter(this, 'EnvoyFilter', {
        name: names.envoyFilter,
        gatewayName: names.gateway,
        listenerPort,
        hostnames: config.gateway.hostnames,
        eppServiceHost: eppHost,
        eppPort: EppPorts.grpc,
        bodyMode: config.gateway.bodyMode,
        failureModeAllow: config.gateway.failureMode === 'FailOpen',
        routeTimeout: config.gateway.requestTimeout,
      });
    }

    // 4. Redis (shared index for several EPP replicas).
    if (config.redis.enabled) {
      const redis = new Redis(this, 'Redis', {
        name: names.redis,
        image: image(config.images.redis),
        imagePullSecrets,
        passwordSecret: config.redis.passwordSecret,
        podLabels: names.redisSelector,
        resources: config.redis.resources,
        maxMemoryMiB: config.redis.maxMemoryMiB,
      });
      new AllowIngress(this, 'RedisFromEpp', { name: `${names.redis}-from-epp`, target: names.redisSelector, from: PodPeer.pods(names.eppSelector), ports: [redis.port] });
    }

    // 5. Network policies of the EPP.
    const gatewayNs = config.gateway.podNamespace ?? config.namespace;
    new AllowIngress(this, 'EppFromGateway', {
      name: `${names.epp}-from-gateway`,
      target: names.eppSelector,
      from: PodPeer.podsInNamespace(names.gatewayPodLabels, gatewayNs),
      ports: [EppPorts.grpc],
    });
    if (config.epp.eventsMode === 'bind') {
      new AllowIngress(this, 'EppFromModelServers', {
        name: `${names.epp}-from-model-servers`,
        target: names.eppSelector,
        from: PodPeer.pods(names.modelServerSelector),
        ports: [EppPorts.zmq],
      });
    }
    new AllowIngress(this, 'EppFromPrometheus', {
      name: `${names.epp}-from-prometheus`,
      target: names.eppSelector,
      from: PodPeer.namespace(config.monitoring.prometheusNamespace),
      ports: [EppPorts.http],
    });

    // 6. Monitoring.
    if (config.monitoring.enabled) {
      for (const [role, s] of servers) {
        const portName = s.parts.vllmPort === s.parts.servingPort ? VllmPortNames.serving : VllmPortNames.vllm;
        new ModelServerPodMonitor(this, `${role}-pod-monitor`, {
          name: role === Roles.decode ? names.decode : names.prefill,
          selector: names.modelServerRoleSelector(role),
          port: portName,
          labels: config.monitoring.monitorLabels,
        });
      }
      new EppServiceMonitor(this, 'EppServiceMonitor', { name: names.epp, selector: names.eppSelector, port: EppPortNames.http, labels: config.monitoring.monitorLabels });
      // The ServiceMonitor names its job after the Service (names.epp).
      new KvroutePrometheusRule(this, 'Alerts', {
        name: `${config.name}-alerts`,
        namespace: config.namespace,
        model: config.model.name,
        eppJob: names.epp,
        eppDeployment: names.epp,
        labels: config.monitoring.monitorLabels,
      });
    }
    if (config.monitoring.dashboard) {
      new GrafanaDashboard(this, 'Dashboard', { name: names.dashboard, namespace: config.namespace, model: config.model.name });
    }

    // 7. GitOps.
    if (config.argocd.enabled) {
      new ArgoApplication(this, 'ArgoApplication', {
        name: names.application,
        repoURL: config.argocd.repoURL,
        targetRevision: config.argocd.targetRevision,
        path: config.argocd.path,
        destinationNamespace: config.namespace,
        argocdNamespace: config.argocd.namespace,
        project: config.argocd.project,
        automated: config.argocd.automated,
      });
    }
    if (config.verify.enabled) {
      new VerifyJob(this, 'VerifyJob', {
        name: `${config.name}-verify`,
        image: image(config.images.epp),
        imagePullSecrets,
        gatewayUrl: config.verify.gatewayUrl ?? `http://${names.gateway}-istio.${config.namespace}.svc:${config.gateway.listenerPort}`,
        prometheusUrl: config.verify.prometheusUrl ?? `http://prometheus-operated.${config.monitoring.prometheusNamespace}.svc:9090`,
        model: config.model.name,
        sessions: config.verify.sessions,
        turns: config.verify.turns,
        activeDeadlineSeconds: config.verify.activeDeadlineSeconds,
      });
    }
  }
}
