/** Every package's README examples run as written (from the package directory, against dist). */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageNames, packagesDir, readmeExamples, run } from './workspace.js';

/** Packages whose README shows commands rather than a JS example (tested by their own tests). */
const commandReadmes = new Set(['cli']);

describe('README examples', () => {
  for (const name of packageNames) {
    it(`@compress/${name}`, async () => {
      const examples = readmeExamples(name);
      if (commandReadmes.has(name)) {
        expect(examples).toEqual([]);
        return;
      }
      expect(examples.length, `packages/${name}/README.md has no \`\`\`js example`).toBeGreaterThan(0);
      for (const [i, code] of examples.entries()) {
        const file = join(packagesDir, name, `.readme-example-${process.pid}-${i}.mjs`);
        await writeFile(file, code);
        try {
          // Rejects (with the example's stderr) when it exits with an error.
          await run(process.execPath, [file], { cwd: join(packagesDir, name), timeout: 240_000 });
        } finally {
          await rm(file, { force: true });
        }
      }
    });
  }
});
