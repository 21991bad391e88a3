import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const pkg = (p: string) => fileURLToPath(new URL(`./packages/${p}`, import.meta.url));

// NOTE: tests run against the TypeScript sources of the workspace packages (no build step
// needed); the aliases mirror the `paths` of the root tsconfig.json.
const alias = {
  '@task-cache/chunker': pkg('chunker/src/index.ts'),
  '@task-cache/oci': pkg('oci/src/index.ts'),
  // NOTE: a subpath before its package: the aliases match by prefix, in order.
  '@task-cache/lock/redis': pkg('lock/src/redis.ts'),
  '@task-cache/lock': pkg('lock/src/index.ts'),
  '@task-cache/core/redis': pkg('core/src/redis.ts'),
  '@task-cache/core': pkg('core/src/index.ts'),
  '@task-cache/cli': pkg('cli/src/index.ts'),
  '@task-cache/testkit': pkg('testkit/src/index.ts'),
};

const project = (name: string, root: string, include = ['src/**/*.test.ts', 'test/**/*.test.ts']) => ({
  resolve: { alias },
  test: {
    name,
    root,
    include,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    globalSetup: [fileURLToPath(new URL('./packages/testkit/src/global-setup.ts', import.meta.url))],
  },
});

export default defineConfig({
  test: {
    projects: [
      project('chunker', pkg('chunker')),
      project('oci', pkg('oci')),
      project('lock', pkg('lock')),
      project('core', pkg('core')),
      project('testkit', pkg('testkit')),
      project('cli', pkg('cli')),
      project('examples', fileURLToPath(new URL('./examples', import.meta.url)), [
        '*/src/**/*.test.ts',
        '*/test/**/*.test.ts',
      ]),
    ],
  },
});
