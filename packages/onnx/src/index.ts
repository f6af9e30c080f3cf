export {
  encodeOnnxModel,
  FLOAT,
  INT64,
  type OnnxElemType,
  type OnnxGraph,
  type OnnxInitializer,
  type OnnxModelInfo,
  type OnnxNode,
  type OnnxValue,
} from './graph.js';
export { readOnnxMetadata } from './metadata.js';
export {
  createNativeSession,
  isOnnxRuntimeNativeAvailable,
  isSupportedOnnxRuntimeVersion,
  loadOnnxRuntimeNative,
  type NativeUser,
  nchwcBlockSize,
  ONNXRUNTIME_NODE_RANGE,
  type OrtNative,
  type OrtNativeSession,
  type OrtNativeTensor,
  type OrtNativeTensorCtor,
  requireOnnxRuntimeNative,
} from './native.js';
export { ortSessionOptions, type Provider, type SessionOptions } from './options.js';
export { cudaInstallHint, cudaProviderFile, isCudaInstalled, onnxruntimeNodeDir } from './providers.js';
export {
  createSession,
  isOnnxRuntimeInstalled,
  loadOnnxRuntime,
  notInstalled,
  type OrtApi,
  type OrtSession,
  type OrtTensor,
  type OrtTensorType,
  type OrtValueMetadata,
  requireOnnxRuntime,
} from './runtime.js';
export { MAX_THREADS, resolveThreads, threadsPerCore } from './threads.js';
