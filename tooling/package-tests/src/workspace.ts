import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const run = promisify(execFile);
export const root = new URL('../../..', import.meta.url).pathname;
export const packagesDir = join(root, 'packages');

/** The packages of the workspace (directory names under packages/). */
export const packageNames = readdirSync(packagesDir).sort();

/** The first ```js code block of a README: the package's runnable example. */
export function readmeExample(name: string): string | null {
  const text = readFileSync(join(packagesDir, name, 'README.md'), 'utf8');
  const match = /```js\n([\s\S]*?)```/.exec(text);
  return match ? match[1]! : null;
}
