/** Public entry of the EPP package. */
export * from './contract/index.js';
