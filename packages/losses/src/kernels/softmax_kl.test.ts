import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { softmaxKlWasm } from './softmax_kl_wasm.js';

it('the committed kernel bytes are compiled from softmax_kl.wat (not stale)', () => {
  const script = fileURLToPath(new URL('../../scripts/build-wasm.mjs', import.meta.url));
  expect(() => execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' })).not.toThrow();
  expect(softmaxKlWasm.length).toBeGreaterThan(100);
});
