import { baseConfig } from '@compress/vitest-config';
import { defineProject, mergeConfig } from 'vitest/config';

export default mergeConfig(
  baseConfig,
  defineProject({ test: { name: '@compress/data', globalSetup: ['./vitest.build-worker.ts'] } }),
);
