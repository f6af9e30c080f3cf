// Shared vitest base for every package: tests live beside the code (src/**/*.test.ts).
// Long tests carry the `slow` tag in their name and a timeout of their own.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export const baseConfig = defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    setupFiles: [fileURLToPath(new URL('./setup.js', import.meta.url))],
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});

export default baseConfig;

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * Path of a golden-value file. Golden values live in `shared/golden/` beside the checkout
 * (`<repo>/../shared/golden`), or in the directory named by COMPRESS_GOLDEN_DIR. Tests read them at
 * run time and fail (never skip) when they are missing.
 */
export function goldenPath(name) {
  const fromEnv = process.env.COMPRESS_GOLDEN_DIR;
  if (fromEnv) return resolve(fromEnv, name);
  let dir = process.cwd();
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) {
      const file = resolve(dir, '..', 'shared', 'golden', name);
      if (!existsSync(file)) {
        throw new Error(
          `golden file ${name} not found at ${file}; set COMPRESS_GOLDEN_DIR to the golden directory`,
        );
      }
      return file;
    }
    const up = dirname(dir);
    if (up === dir)
      throw new Error('cannot find the workspace root (pnpm-workspace.yaml) to locate golden files');
    dir = up;
  }
}
