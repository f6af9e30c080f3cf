export { type BatchItem, collate } from './batch.js';
export { formatBytes } from './bytes.js';
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
  alignContainer,
  type BlockedSectionInput,
  CONTAINER_ALIGN,
  CONTAINER_MAGIC,
  CONTAINER_PREFIX_BYTES,
  CONTAINER_PROGRESS_OFFSET,
  CONTAINER_VERSION,
  type ContainerExpectation,
  type ContainerHeader,
  type ContainerProgress,
  type ContainerSection,
  containerBlockCount,
  containerHeaderSize,
  type DecodedContainer,
  decodeContainer,
  decodeContainerHeader,
  encodeContainer,
  encodeContainerBytes,
  float32Section,
  isContainer,
  layoutBlockedContainer,
  readContainer,
  type SectionDtype,
  type SectionInput,
  setContainerProgress,
  writeContainer,
} from './container.js';
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
