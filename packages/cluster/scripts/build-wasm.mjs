#!/usr/bin/env node
// Compiles src/engine/cluster.c to WebAssembly (wasm32, SIMD, shared memory) into
// src/engine/cluster-wasm.ts (see @compress/wasm-build). Runs as the first step of `pnpm build`;
// `--check` verifies the committed file. Debian: `apt-get install clang lld`.
import { isMain, wasmBuild } from '@compress/wasm-build';

/** The compiler flags: part of the recorded hash, so changing them marks the bytes stale. */
export const flags = [
  '--target=wasm32',
  '-nostdlib',
  '-O3',
  '-msimd128',
  '-matomics',
  '-mbulk-memory',
  '-Wl,--no-entry',
  '-Wl,--import-memory',
  '-Wl,--shared-memory',
  '-Wl,--max-memory=4294967296',
  '-Wl,--strip-all',
];

const build = wasmBuild({
  source: new URL('../src/engine/cluster.c', import.meta.url),
  out: new URL('../src/engine/cluster-wasm.ts', import.meta.url),
  flags,
  name: 'clusterWasm',
  why: 'the kernels run concurrently on one shared memory, one instance per thread, and every instance would start its C stack at the same address',
  rebuild: 'pnpm --filter @compress/cluster build',
});
export const { sourceHash, clangVersion, compile } = build;

if (isMain(import.meta.url)) await build.main(process.argv);
