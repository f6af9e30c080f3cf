export type { Dataset, FeatureMatrix, ImageBatch, ProgressEvent, ProgressListener, RawImage, Sample, Teacher } from './types.js';
export { CompressError, assertUnreachable, invariant, type CompressErrorOptions, type ErrorCode } from './errors.js';
export { Rng, hashString, type RngState } from './rng.js';
export { assertFinite, checkFeatureMatrix, featureMatrix, l2NormalizeRows } from './features.js';
export { ioError, writeFileAtomic } from './fs.js';
