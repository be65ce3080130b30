import { Chart, type ChartProps } from 'cdk8s';
import type { Construct } from 'constructs';
import type { DeploymentConfig } from './config/deployment-config.js';

export interface KvrouteChartProps extends ChartProps {
  /** The validated deployment config (see parseDeploymentConfig). */
  readonly config: DeploymentConfig;
}

/** The whole kvroute deployment in one chart. */
export class KvrouteChart extends Chart {
  readonly config: DeploymentConfig;
  constructor(scope: Construct, id: string, props: KvrouteChartProps) {
    super(scope, id, { ...props, namespace: props.config.namespace, disableResourceNameHashes: true });
    this.config = props.config;
  }
}
