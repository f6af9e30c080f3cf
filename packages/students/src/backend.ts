import { CompressError } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import './gradients.js';
import { type KernelEngine, registerWasmTrainingKernels } from './kernels/register_all_kernels.js';

/**
 * Where student training runs, fastest first: `tensorflow` (the native TensorFlow binding:
 * @tensorflow/tfjs-node-gpu on CUDA machines, else @tensorflow/tfjs-node; optional peers, loaded
 * only when installed), `wasm` (XNNPACK, plus compress's training kernels), `cpu` (plain
 * JavaScript, hundreds of times slower for convolutions: only when asked for by name).
 */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface BackendOptions {
  /**
   * Which backend, or `auto` for the first that starts among tensorflow → wasm. The env variable
   * COMPRESS_BACKEND overrides `auto`. @default 'auto'
   */
  backend?: BackendName | 'auto';
  /**
   * On `wasm`: what runs the convolutions (see {@link KernelEngine}); `auto` is
   * onnxruntime where onnxruntime-node is installed. The env variable COMPRESS_KERNELS overrides
   * `auto`. @default 'auto'
   */
  kernels?: KernelEngine;
  /**
   * onnxruntime's intra-op threads for those kernels (0: one per core). One by default: on the
   * 2-core machines measured, a second thread sped training steps up by only ~5% and took the core
   * the data loader's workers and the teacher use. @default 1
   */
  threads?: number;
  /** Where the one line naming the chosen backend goes. @default console.error */
  log?: (line: string) => void;
}

export interface BackendInfo {
  name: BackendName;
  /** The package that provides it, e.g. `@tensorflow/tfjs-backend-wasm`. */
  provider: string;
  /** On `wasm`: what runs the convolutions. */
  kernels?: 'wasm' | 'onnxruntime';
}

const NATIVE = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

/** Imports a package that may be absent, by a name TypeScript does not try to resolve. */
async function importOptional(name: string): Promise<unknown> {
  return import(/* @vite-ignore */ name);
}

async function startTensorflow(): Promise<string> {
  const errors: string[] = [];
  for (const pkg of NATIVE) {
    try {
      await importOptional(pkg);
      if (await tf.setBackend('tensorflow')) return pkg;
      errors.push(`${pkg}: loaded but the 'tensorflow' backend did not start`);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      errors.push(
        code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
          ? `${pkg}: not installed`
          : `${pkg}: ${(error as Error).message}`,
      );
    }
  }
  throw new Error(errors.join('; '));
}

function kernelChoice(options: BackendOptions): KernelEngine {
  const fromOption = options.kernels ?? 'auto';
  if (fromOption !== 'auto') return fromOption;
  const env = process.env.COMPRESS_KERNELS;
  if (env === undefined || env === '' || env === 'auto') return 'auto';
  if (env === 'wasm' || env === 'onnxruntime') return env;
  throw new CompressError(
    'CONFIG',
    `COMPRESS_KERNELS must be one of auto, wasm, onnxruntime; found '${env}'`,
    {
      input: 'COMPRESS_KERNELS',
    },
  );
}

async function startWasm(): Promise<string> {
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend('wasm'))) throw new Error("the 'wasm' backend did not initialise");
  return '@tensorflow/tfjs-backend-wasm';
}

async function startCpu(): Promise<string> {
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new Error("the 'cpu' backend did not initialise");
  return '@tensorflow/tfjs-backend-cpu';
}

const starters: Record<BackendName, () => Promise<string>> = {
  tensorflow: startTensorflow,
  wasm: startWasm,
  cpu: startCpu,
};

let active: BackendInfo | undefined;

/** The backend {@link selectBackend} chose, if it ran. */
export function activeBackend(): BackendInfo | undefined {
  return active?.name === tf.getBackend() ? active : undefined;
}

function requested(options: BackendOptions): BackendName | 'auto' {
  const fromOption = options.backend ?? 'auto';
  if (fromOption !== 'auto') return fromOption;
  const env = process.env.COMPRESS_BACKEND;
  if (env === undefined || env === '' || env === 'auto') return 'auto';
  if (env === 'tensorflow' || env === 'wasm' || env === 'cpu') return env;
  throw new CompressError(
    'CONFIG',
    `COMPRESS_BACKEND must be one of auto, tensorflow, wasm, cpu; found '${env}'`,
    {
      input: 'COMPRESS_BACKEND',
    },
  );
}

function describe(info: BackendInfo, threads: number): string {
  const base = `compress: training backend '${info.name}' (${info.provider})`;
  if (info.name === 'cpu')
    return `${base} — plain JavaScript, hundreds of times slower than wasm for convolutions`;
  if (info.kernels === 'onnxruntime') {
    return `${base}, convolutions on onnxruntime (${threads === 0 ? 'one thread per core' : `${threads} thread${threads === 1 ? '' : 's'}`})`;
  }
  return base;
}

/**
 * Starts the training backend and makes it tfjs's current one; logs the choice once per backend
 * and kernel engine.
 * `auto` tries tensorflow then wasm and never falls back to `cpu` (ask for it by name); when
 * nothing starts, the error lists each candidate and why it failed.
 */
export async function selectBackend(options: BackendOptions = {}): Promise<BackendInfo> {
  const want = requested(options);
  const log = options.log ?? ((line: string) => console.error(line));
  const kernels = kernelChoice(options);
  const candidates: BackendName[] = want === 'auto' ? ['tensorflow', 'wasm'] : [want];
  const reasons: string[] = [];
  for (const name of candidates) {
    try {
      const running = active?.name === name && tf.getBackend() === name;
      // the wasm kernels are registered after the package registers its own and before the
      // backend starts (their setup runs at start)
      if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
      const engine =
        name === 'wasm' ? registerWasmTrainingKernels({ kernels, threads: options.threads }) : undefined;
      if (running && active?.kernels === engine) return active as BackendInfo;
      const provider = running ? (active as BackendInfo).provider : await starters[name]();
      active = engine === undefined ? { name, provider } : { name, provider, kernels: engine };
      log(describe(active, options.threads ?? 1));
      return active;
    } catch (error) {
      reasons.push(`${name}: ${(error as Error).message}`);
    }
  }
  throw new CompressError(
    'BACKEND_UNAVAILABLE',
    `no training backend could start (${want === 'auto' ? 'auto tries tensorflow, then wasm' : `asked for ${want}`}): ${reasons.join('; ')}`,
    { input: 'backend' },
  );
}
