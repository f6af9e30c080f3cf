import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { clusterWasm, clusterWasmSourceHash } from './cluster-wasm.js';

const script = new URL('../../scripts/build-wasm.mjs', import.meta.url).pathname;

/** clang's version where it is installed (the build script's own probe), else null. */
const { clangVersion } = (await import(script)) as { clangVersion: () => string | null };

describe('cluster-wasm.ts (the compiled kernels)', () => {
  it('was compiled from the current cluster.c and flags', async () => {
    const { flags } = (await import(script)) as { flags: string[] };
    const h = createHash('sha256');
    h.update(readFileSync(new URL('cluster.c', import.meta.url)));
    h.update(flags.join(' '));
    expect(clusterWasmSourceHash).toBe(h.digest('hex'));
    expect(Buffer.from(clusterWasm, 'base64').subarray(0, 4)).toEqual(Buffer.from([0, 0x61, 0x73, 0x6d]));
  });

  it.runIf(clangVersion() !== null)(
    'is byte for byte what clang compiles cluster.c to (where clang is installed)',
    () => {
      const out = execFileSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
      expect(out).toContain('up to date');
    },
  );
});
