// ESLint flat config for the whole repository (cdk8s app and the EPP package).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import jest from 'eslint-plugin-jest';

export default tseslint.config(
  { ignores: ['**/node_modules/**', 'dist/**', 'epp/dist/**', 'imports/**', '**/gen/**', 'coverage/**', 'docs/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-expressions': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  {
    // The product (what the image compiles) stands alone: no lab, test stand-ins, tests or dev-only chart libraries.
    files: ['epp/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/lab/**', '**/testkit/**', '**/test/**', '**/bench/**'], message: 'epp/src is the product the image ships: move shared code into epp/src or keep it in epp/lab / epp/testkit.' }],
        paths: [{ name: 'vega', message: 'vega is a dev-only dependency of the lab (epp/lab).' }, { name: 'vega-lite', message: 'vega-lite is a dev-only dependency of the lab (epp/lab).' }],
      }],
    },
  },
  {
    files: ['test/**/*.ts', 'epp/test/**/*.ts'],
    ...jest.configs['flat/recommended'],
    rules: {
      ...jest.configs['flat/recommended'].rules,
      'jest/valid-expect': 'error',
      'jest/expect-expect': ['error', { assertFunctionNames: ['expect', 'expect*', 'assert*'] }],
    },
  },
);
