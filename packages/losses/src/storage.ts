import { CompressError, formatBytes } from '@compress/core';

/**
 * Where the K×D values of a memory queue live. The default is a plain Float32Array; the `wasm`
 * engine keeps queues in the TensorFlow.js wasm heap so its matrix kernels read them in place.
 */
export interface QueueStorage {
  readonly kind: 'js' | 'wasm';
  /** Number of floats held. */
  readonly length: number;
  /** Byte offset in the wasm heap (`wasm` storage only). */
  readonly offset: number;
  /**
   * A live view of the values. A wasm view is invalidated when the heap grows: fetch it again
   * after anything that may allocate, never keep it.
   */
  view(): Float32Array;
  /** Frees the values; the storage must not be used afterwards. */
  dispose(): void;
}

/** Storage in an ordinary Float32Array. */
export function jsStorage(length: number, what = 'queue'): QueueStorage {
  let data: Float32Array | null;
  try {
    data = new Float32Array(length);
  } catch (cause) {
    throw new CompressError(
      'OUT_OF_MEMORY',
      `${what}: cannot allocate ${length} float32 values (${formatBytes(length * 4)}) in JavaScript memory`,
      { input: what, cause },
    );
  }
  return {
    kind: 'js',
    length,
    offset: -1,
    view() {
      if (data === null) throw new CompressError('INVALID_ARGUMENT', `${what} was disposed`, { input: what });
      return data;
    },
    dispose() {
      data = null;
    },
  };
}
