// Root config for watch mode across every package: `pnpm vitest --project @compress/losses`.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: ['packages/*'],
  },
});
