import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const run = promisify(execFile);
export const root = new URL('../../..', import.meta.url).pathname;
export const packagesDir = join(root, 'packages');

/** The packages of the workspace (directory names under packages/). */
export const packageNames = readdirSync(packagesDir).sort();

/** Every ```js code block of a README, in order: the package's runnable examples. */
export function readmeExamples(name: string): string[] {
  const text = readFileSync(join(packagesDir, name, 'README.md'), 'utf8');
  return [...text.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** The first ```js code block of a README: the package's main example (every ```js block runs; fragments are ```ts). */
export function readmeExample(name: string): string | null {
  return readmeExamples(name)[0] ?? null;
}
