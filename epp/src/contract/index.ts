/** The contract shared by the EPP and the cdk8s constructs: names, ports and the config schema. */
export * from './names.js';
export * from './config.js';
export * from './issues.js';
export * from './scheduling-plugins.js';
export * from './endpoint-picker-config.js';
export * from './metrics.js';
export * from './errors.js';
