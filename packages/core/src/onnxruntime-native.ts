import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CompressError } from './errors.js';

/**
 * onnxruntime-node's native session, run synchronously. The graphs compress runs inside a
 * TensorFlow.js kernel or gradient tape (the loss step of @compress/losses, the convolutions of
 * @compress/students) must finish before the kernel returns, and the package's public
 * `InferenceSession.run` wraps this same native call in a promise. The native object is not part of
 * onnxruntime-node's documented API: {@link loadOnnxRuntimeNative} checks its shape and fails with a
 * clear error on a version where it differs. onnxruntime-node is an optional peer of the packages
 * that use this, so it is resolved from the caller's location.
 */

/** An onnxruntime tensor (typed locally: the package is optional). */
export interface OrtNativeTensor {
  readonly data: unknown;
  readonly dims: readonly number[];
}

export type OrtNativeTensorCtor = new (
  type: 'float32' | 'int64',
  data: Float32Array | BigInt64Array,
  dims: readonly number[],
) => OrtNativeTensor;

export interface OrtNativeSession {
  loadModel(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, options: object): void;
  /**
   * Runs the graph; a fetch given as a tensor is written in place (its buffer may be a view into
   * another heap), a fetch given as null comes back newly allocated.
   */
  run(
    feeds: Record<string, OrtNativeTensor>,
    fetches: Record<string, OrtNativeTensor | null>,
    options: object,
  ): Record<string, OrtNativeTensor>;
  dispose?(): void;
}

export interface OrtNative {
  Tensor: OrtNativeTensorCtor;
  Session: new () => OrtNativeSession;
  /** onnxruntime-node's version string. */
  version: string;
  /** Creates a session and loads `model` into it with `options` (onnxruntime's session options). */
  createSession(model: Uint8Array, options: object): OrtNativeSession;
}

const cache = new Map<string, OrtNative | null>();

/**
 * onnxruntime-node's native session and tensor class as seen from the module at `fromUrl` (pass
 * `import.meta.url`), or null where the package is not installed there. Throws
 * BACKEND_UNAVAILABLE when the package is installed but its native session does not
 * have the expected shape (the message names `who.user` and suggests `who.otherwise`).
 */
export function loadOnnxRuntimeNative(
  fromUrl: string,
  who: { user: string; otherwise: string },
): OrtNative | null {
  const require = createRequire(fromUrl);
  let main: string;
  try {
    main = require.resolve('onnxruntime-node');
  } catch {
    return null;
  }
  const cached = cache.get(main);
  if (cached !== undefined) return cached;
  const ort = require(main) as {
    Tensor?: OrtNativeTensorCtor;
    version?: string;
    env?: { versions?: { node?: string } };
  };
  const b = require(join(dirname(main), 'binding.js')) as {
    binding?: { InferenceSession?: new () => OrtNativeSession };
    initOrt?: () => void;
  };
  const Session = b.binding?.InferenceSession;
  const version = ort.env?.versions?.node ?? ort.version ?? 'unknown version';
  if (
    typeof ort.Tensor !== 'function' ||
    typeof Session !== 'function' ||
    typeof b.initOrt !== 'function' ||
    typeof Session.prototype.run !== 'function' ||
    typeof Session.prototype.loadModel !== 'function'
  ) {
    throw new CompressError(
      'BACKEND_UNAVAILABLE',
      `${who.user} runs onnxruntime-node's native session synchronously, and this onnxruntime-node (${version}, at ${main}) does not have it in the expected form; use onnxruntime-node 1.30 or ${who.otherwise}`,
      { input: 'engine' },
    );
  }
  b.initOrt();
  const native: OrtNative = {
    Tensor: ort.Tensor,
    Session,
    version,
    createSession(model, options) {
      const s = new Session();
      s.loadModel(model.buffer, model.byteOffset, model.byteLength, options);
      return s;
    },
  };
  cache.set(main, native);
  return native;
}
