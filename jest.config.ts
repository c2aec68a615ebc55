import type { Config } from 'jest';

const config: Config = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // The profiler is one per process: each test file gets its own worker process,
  // and the files that profile under real load must not compete for the 2 cores.
  maxWorkers: 2,
  testTimeout: 60_000,
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', diagnostics: { warnOnly: false } }],
    // cookie 2 (used by fastify.inject through light-my-request) is ESM-only: Node 20.19+ loads
    // it with require(esm), Jest's module system cannot, so Jest gets a CommonJS copy.
    '/node_modules/cookie/.+\\.js$': ['ts-jest', { tsconfig: { allowJs: true, module: 'commonjs' }, diagnostics: false }],
  },
  transformIgnorePatterns: ['/node_modules/(?!cookie/)'],
};

export default config;
