import { defineConfig } from 'vitest/config';

// Test files that share an external NATS_URL/REDIS_URL must not run at once; otherwise each
// file starts its own servers on free ports and files run in parallel.
const shared = Boolean(process.env.NATS_URL || process.env.REDIS_URL);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    fileParallelism: !shared,
    pool: 'forks',
  },
});
