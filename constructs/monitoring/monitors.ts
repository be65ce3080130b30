/** prometheus-operator monitors whose selectors and port names come from the objects they scrape. */
import { Construct } from 'constructs';
import { PodMonitor } from '../../imports/podmonitor-monitoring.coreos.com.js';
import { ServiceMonitor } from '../../imports/servicemonitor-monitoring.coreos.com.js';

/** Props of {@link ModelServerPodMonitor}. */
export interface ModelServerPodMonitorProps {
  readonly name: string;
  /** Labels of the pods to scrape. */
  readonly selector: Record<string, string>;
  /** Named container port vLLM serves /metrics on. */
  readonly port: string;
  /**
   * Scrape interval.
   * @default '15s'
   */
  readonly interval?: string;
  /**
   * Object labels (Prometheus selects monitors by these).
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

/** PodMonitor for vLLM pods (they have no Service). */
export class ModelServerPodMonitor extends Construct {
  readonly resource: PodMonitor;
  constructor(scope: Construct, id: string, props: ModelServerPodMonitorProps) {
    super(scope, id);
    this.resource = new PodMonitor(this, 'Resource', {
      metadata: { name: props.name, labels: { ...(props.labels ?? {}) } },
      spec: {
        selector: { matchLabels: { ...props.selector } },
        podMetricsEndpoints: [{ port: props.port, path: '/metrics', interval: props.interval ?? '15s' }],
      },
    });
  }
}

/** Props of {@link EppServiceMonitor}. */
export interface EppServiceMonitorProps {
  readonly name: string;
  /** Labels of the EPP Service. */
  readonly selector: Record<string, string>;
  /** Named Service port of /metrics. */
  readonly port: string;
  /**
   * Scrape interval.
   * @default '15s'
   */
  readonly interval?: string;
  /**
   * Object labels (Prometheus selects monitors by these).
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

/**
 * ServiceMonitor for the EPP Service's metrics port. `honorLabels` keeps the EPP's own `pod` label
 * (the model-server pod its per-pod metrics are about) instead of renaming it `exported_pod`; the
 * EPP replica is in `instance`.
 */
export class EppServiceMonitor extends Construct {
  readonly resource: ServiceMonitor;
  constructor(scope: Construct, id: string, props: EppServiceMonitorProps) {
    super(scope, id);
    this.resource = new ServiceMonitor(this, 'Resource', {
      metadata: { name: props.name, labels: { ...(props.labels ?? {}) } },
      spec: {
        selector: { matchLabels: { ...props.selector } },
        endpoints: [{ port: props.port, path: '/metrics', interval: props.interval ?? '15s', honorLabels: true }],
      },
    });
  }
}
