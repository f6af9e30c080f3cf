#!/usr/bin/env node
// Compiles src/kernels/simd_kernels.c to WebAssembly (wasm32, SIMD, imported memory) into
// src/kernels/simd-kernels-wasm.ts (see @compress/wasm-build). Runs as the first step of
// `pnpm build`; `--check` verifies the committed file. Debian: `apt-get install clang lld`.
import { isMain, wasmBuild } from '@compress/wasm-build';

/** The compiler flags: part of the recorded hash, so changing them marks the bytes stale. */
export const flags = [
  '--target=wasm32',
  '-nostdlib',
  '-O3',
  '-msimd128',
  '-mbulk-memory',
  '-Wl,--no-entry',
  '-Wl,--import-memory',
  '-Wl,--max-memory=4294967296',
  '-Wl,--strip-all',
];

const build = wasmBuild({
  source: new URL('../src/kernels/simd_kernels.c', import.meta.url),
  out: new URL('../src/kernels/simd-kernels-wasm.ts', import.meta.url),
  flags,
  name: 'simdKernelsWasm',
  why: "the kernels run on the TensorFlow.js wasm backend's memory, which they must not write outside its tensors",
  rebuild: 'pnpm --filter @compress/students build',
});
export const { sourceHash, clangVersion, compile } = build;

if (isMain(import.meta.url)) await build.main(process.argv);
