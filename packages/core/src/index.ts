export { type BatchItem, collate } from './batch.js';
export { CheckedTeacher, type CheckedTeacherOptions, checkedTeacher } from './checked-teacher.js';
export {
  checksumError,
  crc32,
  crc32Of,
  DEFAULT_REMEDY,
  formatChecksum,
  verifySection,
} from './checksum.js';
export {
  assertUnreachable,
  CompressError,
  type CompressErrorOptions,
  type ErrorCode,
  invariant,
} from './errors.js';
export { assertFinite, checkFeatureMatrix, featureMatrix, l2NormalizeRows } from './features.js';
export { ioError, writeFileAtomic } from './fs.js';
export { hashString, Rng, type RngState } from './rng.js';
export type {
  Dataset,
  FeatureMatrix,
  FloatImage,
  ImageBatch,
  ImageTransform,
  ProgressEvent,
  ProgressListener,
  RawImage,
  Sample,
  Teacher,
} from './types.js';
