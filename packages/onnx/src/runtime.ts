import { CompressError } from '@compress/core';
import { ortSessionOptions, type SessionOptions } from './options.js';

/*
 * onnxruntime-node's public (async) API, the parts compress uses, typed here: the package is an
 * optional peer, so these types must not need it installed.
 */

export type OrtTensorType = 'float32' | 'int64' | 'int32' | 'uint8' | 'float16' | 'bool' | 'string';

export interface OrtTensor {
  readonly type: OrtTensorType | string;
  readonly data: unknown;
  readonly dims: readonly number[];
  dispose?(): void;
}

/** A model input's or output's declared type (onnxruntime-node ≥ 1.22). */
export type OrtValueMetadata =
  | {
      readonly name: string;
      readonly isTensor: true;
      readonly type: string;
      /** Sizes, or names of symbolic dimensions. */
      readonly shape: readonly (number | string)[];
    }
  | { readonly name: string; readonly isTensor: false };

export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly OrtValueMetadata[];
  readonly outputMetadata: readonly OrtValueMetadata[];
  run(feeds: Record<string, OrtTensor>, fetches?: readonly string[]): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}

export interface OrtApi {
  Tensor: new (
    type: 'float32' | 'int64',
    data: Float32Array | BigInt64Array,
    dims: readonly number[],
  ) => OrtTensor;
  InferenceSession: {
    create(model: Uint8Array, options: Record<string, unknown>): Promise<OrtSession>;
  };
}

let ortLoad: Promise<OrtApi | null> | undefined;

/** onnxruntime-node, or null where it is not installed. */
export function loadOnnxRuntime(): Promise<OrtApi | null> {
  // the name is a variable: the package is optional, and bundlers must not resolve it
  const name = 'onnxruntime-node';
  ortLoad ??= import(name).then(
    (m: { default?: OrtApi } & OrtApi) => m.default ?? m,
    () => null,
  );
  return ortLoad;
}

/** Whether onnxruntime-node can be imported. */
export async function isOnnxRuntimeInstalled(): Promise<boolean> {
  return (await loadOnnxRuntime()) !== null;
}

/**
 * onnxruntime-node, or a BACKEND_UNAVAILABLE error: "`user` needs the onnxruntime-node package,
 * which is not installed; add it (npm install onnxruntime-node) or `otherwise`".
 */
export async function requireOnnxRuntime(user: string, otherwise?: string): Promise<OrtApi> {
  const ort = await loadOnnxRuntime();
  if (ort === null) throw notInstalled(user, otherwise);
  return ort;
}

export function notInstalled(user: string, otherwise?: string): CompressError {
  return new CompressError(
    'BACKEND_UNAVAILABLE',
    `${user} needs the onnxruntime-node package, which is not installed; add it (npm install onnxruntime-node)${otherwise ? ` or ${otherwise}` : ''}`,
    { input: 'engine' },
  );
}

/**
 * An onnxruntime session (the async API) for `model`'s bytes with {@link SessionOptions}.
 * Fails with BACKEND_UNAVAILABLE where onnxruntime-node is not installed; onnxruntime's own errors
 * (an invalid model, a provider that does not start) pass through.
 */
export async function createSession(model: Uint8Array, options: SessionOptions = {}): Promise<OrtSession> {
  const sessionOptions = ortSessionOptions(options);
  const ort = await requireOnnxRuntime(options.user ?? 'onnxruntime session');
  return ort.InferenceSession.create(model, sessionOptions);
}
