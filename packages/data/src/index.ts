export { type Cifar10, type Cifar10Options, cifar10, cifar10Classes } from './datasets/cifar10.js';
export {
  type CheckClassCountOptions,
  type CheckSameClassesOptions,
  type ClassList,
  checkClassCount,
  checkSameClasses,
  checkSplitClasses,
} from './datasets/classes.js';
export { fingerprintOf, type ResizingDataset, type SpecDataset } from './datasets/common.js';
export {
  defaultFashionMnistOptions,
  type FashionMnist,
  type FashionMnistOptions,
  fashionMnist,
  fashionMnistClasses,
} from './datasets/fashion-mnist.js';
export { readIdx } from './datasets/idx.js';
export {
  defaultImageFolderOptions,
  type ImageFolder,
  type ImageFolderListing,
  type ImageFolderOptions,
  type ImageFolderSpec,
  imageFolder,
  type SkippedFile,
} from './datasets/image-folder.js';
export { type DatasetSpec, type ModuleDatasetSpec, moduleDataset, openDataset } from './datasets/spec.js';
export {
  createLoader,
  defaultLoaderOptions,
  defaultWorkers,
  Loader,
  type LoaderOptions,
  type ResolvedLoaderOptions,
} from './loader.js';
export { augmentationRng, epochOrder, type LoaderBatch, loadBatch, loadSample } from './pipeline.js';
export { buildTransform, compose, moduleTransform } from './transforms/compose.js';
export { centerCrop, flip, horizontalFlip, resize } from './transforms/geometry.js';
export { grayscaleToRgb, normalize, toFloat } from './transforms/pixel.js';
export {
  defaultRandomResizedCropOptions,
  type RandomResizedCropOptions,
  randomResizedCrop,
  randomResizedCropBox,
} from './transforms/random-resized-crop.js';
export { type Box, crop, resizedCrop } from './transforms/resample.js';
export type { ModuleTransformSpec, ResizePlan, Transform, TransformSpec } from './transforms/transform.js';
