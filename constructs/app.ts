/** Builds the cdk8s App from the environment (used by main.ts; testable without a subprocess). */
import { App, YamlOutputType } from 'cdk8s';
import { type DeploymentConfig, loadDeploymentConfig, parseDeploymentConfig } from './config/deployment-config.js';
import { KvrouteChart } from './kvroute-chart.js';

/** Options of {@link buildApp}. */
export interface BuildAppOptions {
  /**
   * YAML deployment config file (the KVROUTE_CONFIG variable).
   * @default - the defaults (the seed deployment)
   */
  readonly configFile?: string;
  /**
   * Output directory.
   * @default - cdk8s's default: CDK8S_OUTDIR or dist
   */
  readonly outdir?: string;
}

/** The config the app is built from: the file if given, else the defaults. */
export function resolveConfig(configFile: string | undefined): DeploymentConfig {
  return configFile ? loadDeploymentConfig(configFile) : parseDeploymentConfig({}, 'default deployment config');
}

/** An App holding one KvrouteChart (one file per chart: dist/kvroute.k8s.yaml). */
export function buildApp(options: BuildAppOptions = {}): App {
  const config = resolveConfig(options.configFile);
  const app = new App({ yamlOutputType: YamlOutputType.FILE_PER_CHART, ...(options.outdir ? { outdir: options.outdir } : {}) });
  new KvrouteChart(app, 'kvroute', { config });
  return app;
}
