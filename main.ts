/**
 * cdk8s entry point: `npm run synth` writes dist/. With KVROUTE_CONFIG=<file.yaml> the deployment is
 * built from that YAML file (validated by the same schema); otherwise from the defaults (the seed).
 */
import { buildApp } from './constructs/app.js';

try {
  const file = process.env.KVROUTE_CONFIG;
  buildApp(file ? { configFile: file } : {}).synth();
} catch (e) {
  console.error(`synth failed: ${(e as Error).message}`);
  process.exit(1);
}
