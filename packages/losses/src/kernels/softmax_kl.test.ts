import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { softmaxKlWasm } from './softmax_kl_wasm.js';

/** The WebAssembly global (its types are in the DOM lib, which this package does not load). */
interface ModuleDescriptor {
  kind: string;
  name: string;
}
const WA = (
  globalThis as unknown as {
    WebAssembly: {
      Module: {
        new (bytes: Uint8Array): object;
        exports(module: object): ModuleDescriptor[];
        imports(module: object): ModuleDescriptor[];
      };
    };
  }
).WebAssembly;

it('the committed kernel bytes are compiled from softmax_kl.wat (not stale)', () => {
  const script = fileURLToPath(new URL('../../scripts/build-wasm.mjs', import.meta.url));
  expect(() => execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' })).not.toThrow();
  // ... and they are a module with the three kernels the engine calls, importing its memory
  const module = new WA.Module(Buffer.from(softmaxKlWasm, 'base64'));
  expect(WA.Module.exports(module).map((e) => `${e.kind} ${e.name}`)).toEqual(
    expect.arrayContaining(['function colmax', 'function expsum', 'function grad']),
  );
  expect(WA.Module.imports(module).map((i) => i.kind)).toContain('memory');
});
