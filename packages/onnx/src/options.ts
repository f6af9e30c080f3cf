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
  };
}
