/** Jest for the cdk8s app (ESM TypeScript through ts-jest). */
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json', diagnostics: { ignoreCodes: [151001] } }] },
  testTimeout: 60000,
  // Finds or installs redis-server and prometheus/promtool before any test starts them.
  globalSetup: '<rootDir>/epp/testkit/global-setup.ts',
};
