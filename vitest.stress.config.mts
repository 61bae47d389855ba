// Slow fuzz/race/stress variants (`npm run test:stress`), kept out of the default run.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.stress.ts'],
    testTimeout: 600_000,
    hookTimeout: 180_000,
    pool: 'forks',
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
