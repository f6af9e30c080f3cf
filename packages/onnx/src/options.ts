import { CompressError } from '@compress/core';
import { resolveThreads } from './threads.js';

/** An execution provider of onnxruntime-node that compress knows. */
export type Provider = 'cuda' | 'cpu';

/**
 * The one options shape of every onnxruntime session compress opens, async
 * ({@link createSession}) or synchronous ({@link createNativeSession}).
 */
export interface SessionOptions {
  /** Intra-op threads: 0 = one per core (see `resolveThreads`). @default 0 */
  threads?: number;
  /** Execution providers in order of preference. @default ['cpu'] */
  providers?: readonly Provider[];
  /**
   * Whether onnxruntime's pool threads spin for a while after each run (onnxruntime's default).
   * Off for graphs run inside a training step: spinning threads take the cores the rest of the
   * step needs next.
   * @default true
   */
  spinning?: boolean;
  /**
   * Whether onnxruntime keeps freed buffers in its arena for later runs (its default). Off for
   * graphs whose peak is far above their steady use (a training step): memory goes back to the
   * allocator between a run's phases, and the process's peak follows the live tensors.
   * @default true
   */
  memoryArena?: boolean;
  /**
   * Whether onnxruntime plans one block for all of a run's intermediate tensors from the first run
   * (its default). Off for a training step: there the planned block is about twice the live peak
   * (measured: mobilenetv2-small B256 10.6 GB against 5.5 GB) and its first touches every run make
   * the step slower (8.0 s against 4.8 s).
   * @default true
   */
  memoryPattern?: boolean;
  /**
   * Profile every run into a JSON file (Chrome trace format) whose name starts with this prefix;
   * the native session's `endProfiling()` ends it and returns the file's name. @default none
   */
  profile?: string;
  /** Names the session's user in error messages (e.g. `CompressLoss: engine 'onnxruntime'`). @default 'onnxruntime session' */
  user?: string;
}

/** onnxruntime's own session options for {@link SessionOptions} (validated; threads resolved). */
export function ortSessionOptions(options: SessionOptions = {}): Record<string, unknown> {
  const user = options.user ?? 'onnxruntime session';
  const threads = resolveThreads(options.threads ?? 0, `${user}: threads`);
  const providers = options.providers ?? ['cpu'];
  if (
    !Array.isArray(providers) ||
    providers.length === 0 ||
    providers.some((p) => p !== 'cpu' && p !== 'cuda')
  ) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${user}: providers must be a non-empty list of 'cuda' | 'cpu', got ${JSON.stringify(providers)}`,
      { input: 'providers' },
    );
  }
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    executionProviders: [...providers],
    ...(options.spinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
    ...(options.profile ? { enableProfiling: true, profileFilePrefix: options.profile } : {}),
    ...(options.memoryArena === false ? { enableCpuMemArena: false } : {}),
    ...(options.memoryPattern === false ? { enableMemPattern: false } : {}),
  };
}
