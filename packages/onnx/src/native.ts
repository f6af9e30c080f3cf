import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CompressError } from '@compress/core';
import { encodeOnnxModel } from './graph.js';
import { ortSessionOptions, type SessionOptions } from './options.js';
import { notInstalled } from './runtime.js';

/**
 * onnxruntime-node's native session, run synchronously: the one module of compress that reaches
 * below onnxruntime-node's public API. The graphs compress runs inside a TensorFlow.js kernel or
 * gradient tape (the loss step of @compress/losses, the convolutions of @compress/students) must
 * finish before the kernel returns, and the package's public `InferenceSession.run` wraps this
 * same native call in a promise. The native object is not part of onnxruntime-node's documented
 * API: {@link loadOnnxRuntimeNative} checks the installed version against
 * {@link ONNXRUNTIME_NODE_RANGE} and the object's shape, and fails with a clear error where they
 * differ.
 */

/**
 * The onnxruntime-node versions compress supports (the peer range of every package): the native
 * session's shape is checked against these.
 */
export const ONNXRUNTIME_NODE_RANGE = '~1.30.0';

/** Whether `version` (`major.minor.patch…`) is in {@link ONNXRUNTIME_NODE_RANGE}. */
export function isSupportedOnnxRuntimeVersion(version: string): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  return m !== null && m[1] === '1' && m[2] === '30';
}

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
  /** Ends a profile started by the `profile` session option; returns its file's name. */
  endProfiling?(): string;
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

/** Who asks, for error messages: `user` runs it, `otherwise` is the alternative to suggest. */
export interface NativeUser {
  user: string;
  otherwise: string;
}

/**
 * onnxruntime-node's native session and tensor class, or null where the package is not installed.
 * Throws BACKEND_UNAVAILABLE when the package is installed but is not a supported version or its
 * native session does not have the expected shape (the message names `who.user` and suggests
 * `who.otherwise`).
 */
export function loadOnnxRuntimeNative(who: NativeUser): OrtNative | null {
  const require = createRequire(import.meta.url);
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
    !isSupportedOnnxRuntimeVersion(version) ||
    typeof ort.Tensor !== 'function' ||
    typeof Session !== 'function' ||
    typeof b.initOrt !== 'function' ||
    typeof Session.prototype.run !== 'function' ||
    typeof Session.prototype.loadModel !== 'function'
  ) {
    throw new CompressError(
      'BACKEND_UNAVAILABLE',
      `${who.user} runs onnxruntime-node's native session synchronously, and this onnxruntime-node (${version}, at ${main}) does not have it in the expected form; use onnxruntime-node ${ONNXRUNTIME_NODE_RANGE}, or ${who.otherwise}`,
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

/** Whether onnxruntime-node's native session can be used here (installed, supported, expected shape). */
export function isOnnxRuntimeNativeAvailable(): boolean {
  try {
    return loadOnnxRuntimeNative({ user: 'compress', otherwise: 'another engine' }) !== null;
  } catch {
    return false;
  }
}

/**
 * onnxruntime-node's native session and tensor class, or BACKEND_UNAVAILABLE where the package is
 * not installed (or not usable; see {@link loadOnnxRuntimeNative}).
 */
export function requireOnnxRuntimeNative(who: NativeUser): OrtNative {
  const native = loadOnnxRuntimeNative(who);
  if (native === null) throw notInstalled(who.user, who.otherwise);
  return native;
}

/**
 * A synchronous session for `model`'s bytes with the one {@link SessionOptions} shape
 * (`threads`: 0 = one per core). `native` comes from {@link requireOnnxRuntimeNative}.
 */
export function createNativeSession(
  native: OrtNative,
  model: Uint8Array,
  options: SessionOptions = {},
): OrtNativeSession {
  return native.createSession(model, ortSessionOptions(options));
}

const blockSizes = new WeakMap<OrtNative, number>();

/**
 * The channel block of onnxruntime's NCHWc convolution kernels on this CPU (8 with AVX2, 16 with
 * AVX-512; 1 where onnxruntime has none): the channels a `com.microsoft.nchwc` tensor's layout
 * groups together. Asked of onnxruntime itself — its ReorderInput pads 4 channels up to one block.
 */
export function nchwcBlockSize(native: OrtNative): number {
  const known = blockSizes.get(native);
  if (known !== undefined) return known;
  let block = 1;
  try {
    const model = encodeOnnxModel({
      name: 'compress-nchwc-probe',
      opset: 17,
      nodes: [{ opType: 'ReorderInput', domain: 'com.microsoft.nchwc', inputs: ['x'], outputs: ['y'] }],
      inputs: [{ name: 'x', shape: [1, 4, 1, 1] }],
      outputs: [{ name: 'y', shape: [1, 'c', 1, 1] }],
    });
    const session = createNativeSession(native, model, { threads: 1 });
    const out = session.run(
      { x: new native.Tensor('float32', new Float32Array(4), [1, 4, 1, 1]) },
      { y: null },
      {},
    );
    block = Number(out.y?.dims[1] ?? 1);
    session.dispose?.();
  } catch {
    block = 1;
  }
  blockSizes.set(native, block);
  return block;
}
