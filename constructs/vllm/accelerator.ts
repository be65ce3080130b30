/** Accelerator value class: GPU resource requests and the node placement that goes with them. */
import { k8s } from 'cdk8s-plus-28';

/** A toleration of an accelerator node taint. */
export interface AcceleratorToleration {
  readonly key: string;
  readonly operator: 'Exists' | 'Equal';
  /**
   * Taint value (operator Equal).
   * @default - none
   */
  readonly value?: string;
  readonly effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
}

/** Options of {@link Accelerator.nvidia}. */
export interface NvidiaAcceleratorOptions {
  /**
   * Node label key that marks accelerator nodes (required node affinity).
   * @default 'nvidia.com/gpu.present'
   */
  readonly nodeLabelKey?: string;
  /**
   * Accepted values of `nodeLabelKey`.
   * @default ['true']
   */
  readonly nodeLabelValues?: readonly string[];
  /**
   * Tolerations for the accelerator node taints.
   * @default [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]
   */
  readonly tolerations?: readonly AcceleratorToleration[];
  /**
   * Extended resource name.
   * @default 'nvidia.com/gpu'
   */
  readonly resourceName?: string;
}

/** `count` devices of one accelerator kind, with the affinity and tolerations to land on them. */
export class Accelerator {
  /** `count` NVIDIA GPUs per pod (requests = limits). */
  static nvidia(count: number, options: NvidiaAcceleratorOptions = {}): Accelerator {
    return new Accelerator(
      options.resourceName ?? 'nvidia.com/gpu',
      count,
      options.nodeLabelKey ?? 'nvidia.com/gpu.present',
      options.nodeLabelValues ?? ['true'],
      options.tolerations ?? [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
    );
  }

  private constructor(
    readonly resourceName: string,
    readonly count: number,
    readonly nodeLabelKey: string,
    readonly nodeLabelValues: readonly string[],
    readonly tolerations: readonly AcceleratorToleration[],
  ) {
    if (!Number.isInteger(count) || count < 1) {
      throw new Error(`Accelerator count ${count} is invalid: a GPU pod needs a whole number of devices ≥ 1; pass e.g. Accelerator.nvidia(1)`);
    }
    if (nodeLabelValues.length === 0) {
      throw new Error(`Accelerator nodeLabelValues is empty for key "${nodeLabelKey}": no node could match; list at least one value, e.g. ["true"]`);
    }
  }

  /** Resource quantities for both requests and limits (extended resources must be equal). */
  toResourceQuantities(): Record<string, k8s.Quantity> {
    return { [this.resourceName]: k8s.Quantity.fromNumber(this.count) };
  }

  /** Required node affinity on the accelerator label. */
  toAffinity(): k8s.Affinity {
    return {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: this.nodeLabelKey, operator: 'In', values: [...this.nodeLabelValues] }] }],
        },
      },
    };
  }

  /** Pod tolerations. */
  toTolerations(): k8s.Toleration[] {
    return this.tolerations.map((t) => ({ key: t.key, operator: t.operator, ...(t.value !== undefined ? { value: t.value } : {}), effect: t.effect }));
  }
}
