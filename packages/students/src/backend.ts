import { CompressError } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import './gradients.js';
import { registerWasmTrainingKernels } from './kernels/register_all_kernels.js';

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
  /** Where the one line naming the chosen backend goes. @default console.error */
  log?: (line: string) => void;
}

export interface BackendInfo {
  name: BackendName;
  /** The package that provides it, e.g. `@tensorflow/tfjs-backend-wasm`. */
  provider: string;
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

async function startWasm(): Promise<string> {
  await import('@tensorflow/tfjs-backend-wasm');
  registerWasmTrainingKernels();
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

/**
 * Starts the training backend and makes it tfjs's current one; logs the choice once per backend.
 * `auto` tries tensorflow then wasm and never falls back to `cpu` (ask for it by name); when
 * nothing starts, the error lists each candidate and why it failed.
 */
export async function selectBackend(options: BackendOptions = {}): Promise<BackendInfo> {
  const want = requested(options);
  const log = options.log ?? ((line: string) => console.error(line));
  const candidates: BackendName[] = want === 'auto' ? ['tensorflow', 'wasm'] : [want];
  const reasons: string[] = [];
  for (const name of candidates) {
    if (active?.name === name && tf.getBackend() === name) return active;
    try {
      const provider = await starters[name]();
      const first = active?.name !== name;
      active = { name, provider };
      if (first) {
        log(
          `compress: training backend '${name}' (${provider})${name === 'cpu' ? ' — plain JavaScript, hundreds of times slower than wasm for convolutions' : ''}`,
        );
      }
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
