import { availableParallelism } from 'node:os';
import { CompressError } from '@compress/core';

/**
 * The one meaning of `threads` in every compress package that runs onnxruntime (and of the
 * worker pools beside it): a positive integer is that many threads; **0 is one per core**, the
 * number `os.availableParallelism()` reports (logical cores, or the CPUs this process may use).
 * The most accepted is {@link MAX_THREADS}.
 */
export const MAX_THREADS = 256;

/** Threads for `0`: one per core (`os.availableParallelism()`, at least 1). */
export function threadsPerCore(): number {
  return Math.max(1, Math.min(MAX_THREADS, availableParallelism()));
}

/**
 * `threads` as a count: 0 → one per core, n → n. Anything but an integer from 0 to
 * {@link MAX_THREADS} is an INVALID_ARGUMENT error naming `what` (e.g. `knnSearch: options.threads`).
 */
export function resolveThreads(threads: number, what = 'threads'): number {
  if (!Number.isInteger(threads) || threads < 0 || threads > MAX_THREADS) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${what} must be an integer from 0 (one per core) to ${MAX_THREADS}, got ${threads}`,
      { input: 'threads' },
    );
  }
  return threads === 0 ? threadsPerCore() : threads;
}
