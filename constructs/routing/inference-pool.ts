/** The Gateway API Inference Extension `InferencePool` (inference.networking.k8s.io/v1). */
import { Construct } from 'constructs';
import {
  InferencePool as InferencePoolL1,
  InferencePoolSpecAppProtocol,
  InferencePoolSpecEndpointPickerRefFailureMode,
} from '../../imports/inferencepool-inference.networking.k8s.io.js';
import type { HttpBackend, HttpBackendRef } from './http-backend.js';

/** Props of {@link InferencePool}. */
export interface InferencePoolProps {
  readonly name: string;
  /** Labels every model-server pod of the pool carries. */
  readonly selector: Record<string, string>;
  /** Port the gateway sends traffic to on each pod. */
  readonly targetPort: number;
  /** The EPP Service and its ext_proc port. */
  readonly endpointPicker: { readonly serviceName: string; readonly port: number };
  /**
   * What the gateway does when the EPP is unreachable.
   * @default 'FailOpen'
   */
  readonly failureMode?: 'FailOpen' | 'FailClose';
  /**
   * Object labels.
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

/** An InferencePool whose endpoint picker is the kvroute EPP; usable as an HTTPRoute backend. */
export class InferencePool extends Construct implements HttpBackend {
  readonly name: string;
  readonly resource: InferencePoolL1;

  constructor(scope: Construct, id: string, props: InferencePoolProps) {
    super(scope, id);
    if (Object.keys(props.selector).length === 0) {
      throw new Error(`InferencePool ${props.name}: selector is empty and would select every pod in the namespace; pass the model-server pod labels`);
    }
    this.name = props.name;
    const failureMode =
      (props.failureMode ?? 'FailOpen') === 'FailOpen' ? InferencePoolSpecEndpointPickerRefFailureMode.FAIL_OPEN : InferencePoolSpecEndpointPickerRefFailureMode.FAIL_CLOSE;
    this.resource = new InferencePoolL1(this, 'Resource', {
      metadata: { name: props.name, labels: { ...(props.labels ?? {}) } },
      spec: {
        selector: { matchLabels: { ...props.selector } },
        targetPorts: [{ number: props.targetPort }],
        appProtocol: InferencePoolSpecAppProtocol.HTTP,
        endpointPickerRef: {
          group: '',
          kind: 'Service',
          name: props.endpointPicker.serviceName,
          port: { number: props.endpointPicker.port },
          failureMode,
        },
      },
    });
  }

  /** HTTPRoute backendRef to this pool. */
  toBackendRef(): HttpBackendRef {
    return { group: 'inference.networking.k8s.io', kind: 'InferencePool', name: this.name };
  }
}
