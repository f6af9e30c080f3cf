import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { softmaxKlWasm } from './softmax_kl_wasm.js';

it('the committed kernel bytes are compiled from softmax_kl.wat (not stale)', () => {
  const script = fileURLToPath(new URL('../../scripts/build-wasm.mjs', import.meta.url));
  expect(() => execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' })).not.toThrow();
  // ... and they are a module with the three kernels the engine calls, importing its memory
  const module = new WebAssembly.Module(Buffer.from(softmaxKlWasm, 'base64'));
  expect(WebAssembly.Module.exports(module).map((e) => `${e.kind} ${e.name}`)).toEqual(
    expect.arrayContaining(['function colmax', 'function expsum', 'function grad']),
  );
  expect(WebAssembly.Module.imports(module).map((i) => i.kind)).toContain('memory');
});
