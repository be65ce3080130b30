/**
 * cdk8s entry point: `npm run synth` writes dist/. With KVROUTE_CONFIG=<file.yaml> the deployment is
 * built from that YAML file (validated by the same schema); otherwise from the defaults (the seed).
 */
import { App, YamlOutputType } from 'cdk8s';
import { loadDeploymentConfig, parseDeploymentConfig } from './constructs/config/deployment-config.js';
import { KvrouteChart } from './constructs/kvroute-chart.js';

function main(): void {
  const file = process.env.KVROUTE_CONFIG;
  const config = file ? loadDeploymentConfig(file) : parseDeploymentConfig({}, 'default deployment config');
  const app = new App({ yamlOutputType: YamlOutputType.FILE_PER_CHART });
  new KvrouteChart(app, 'kvroute', { config });
  app.synth();
}

try {
  main();
} catch (e) {
  console.error(`synth failed: ${(e as Error).message}`);
  process.exit(1);
}
