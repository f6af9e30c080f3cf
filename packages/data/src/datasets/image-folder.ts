import { basename, join, resolve } from 'node:path';
import { CompressError, type ProgressListener, type RawImage } from '@compress/core';
import { resizedCrop } from '../transforms/resample.js';
import type { ResizePlan } from '../transforms/transform.js';
import {
  type BatchSlot,
  checkIndex,
  fingerprintOf,
  type ResizingDataset,
  type SpecDataset,
} from './common.js';
import { decode, describeImageBytes, oneLine, open, readImage, toRgb, undecodable } from './image-decode.js';
import { scan, verify } from './image-scan.js';
import { type JpegNative, loadJpegNative } from './jpeg-native.js';
import { jpegSize } from './jpeg-size.js';

export { describeImageBytes };

/** Which code decodes JPEGs that are cropped and resized (see {@link ImageFolderOptions.decoder}). */
export type JpegDecoder = 'libjpeg-turbo' | 'sharp';

export interface ImageFolderOptions {
  /**
   * File extensions that count as images (case-insensitive), as torchvision's `IMG_EXTENSIONS`
   * restricted to what sharp decodes here.
   * @default ['.jpg', '.jpeg', '.png', '.webp']
   */
  extensions?: string[];
  /**
   * Leave out files that cannot be read or decoded instead of failing. Every file is then decoded
   * once when the folder is opened (slow for big folders); `skipped` lists what was left out.
   * @default false — a bad file is an error naming it, when it is loaded.
   */
  skipCorrupt?: boolean;
  /**
   * Decode, crop and resize JPEGs in one native step when the transform starts with a crop+resize
   * (`randomResizedCrop`, `resize`): same crop windows, several times faster than decoding the whole
   * photo and resizing in JavaScript. `false` decodes whole images with sharp and resizes them with
   * the Pillow-exact JavaScript resampler.
   * @default true
   */
  nativeResize?: boolean;
  /**
   * The native step for JPEGs:
   * - `'libjpeg-turbo'`: this package's compiled decoder (built with the package when a C compiler
   *   and libjpeg-turbo's headers are there). It decodes only the rows and columns the crop needs
   *   and resizes with Pillow's filter: pixels bit-exact to torchvision's PIL path, and writes the
   *   floats straight into the batch. Opening the folder fails when the decoder is not built.
   * - `'sharp'`: one sharp (libvips) call per image; pixel values within about a grey level of
   *   Pillow's (libvips' bilinear resize).
   * - `'auto'`: `'libjpeg-turbo'` when built, else `'sharp'`.
   * PNG/WebP files and CMYK JPEGs always go through sharp and the JavaScript resampler.
   * @default 'auto'
   */
  decoder?: JpegDecoder | 'auto';
  /** Progress of the verification pass (`skipCorrupt`). */
  onProgress?: ProgressListener;
}

export const defaultImageFolderOptions: Required<Omit<ImageFolderOptions, 'onProgress'>> = {
  extensions: ['.jpg', '.jpeg', '.png', '.webp'],
  skipCorrupt: false,
  nativeResize: true,
  decoder: 'auto',
};

/** The files of an ImageFolder, as found by the scan (kept in the spec so workers need not rescan). */
export interface ImageFolderListing {
  classes: string[];
  /** Paths relative to `root`, `/`-separated, in dataset order. */
  files: string[];
  labels: number[];
}

export interface ImageFolderSpec {
  kind: 'image-folder';
  root: string;
  extensions?: string[];
  skipCorrupt?: boolean;
  nativeResize?: boolean;
  decoder?: JpegDecoder | 'auto';
  /** The scan's result; without it, {@link openDataset} scans the folder again. */
  listing?: ImageFolderListing;
}

/** A file left out by `skipCorrupt`, and why. */
export interface SkippedFile {
  path: string;
  reason: string;
}

/**
 * torchvision's `ImageFolder`: one sub-folder per class under `root`, classes in sorted order
 * (label = position), files found recursively (following links) in sorted order — so dataset
 * indices match torchvision's for the same folder. Images decode with sharp to 8-bit RGB (alpha
 * dropped, grey expanded: Pillow's `convert('RGB')`); EXIF orientation is not applied (Pillow does
 * not either).
 */
export class ImageFolder implements SpecDataset, ResizingDataset {
  readonly name: string;
  readonly root: string;
  readonly length: number;
  readonly classes: readonly string[];
  readonly imageShape = null;
  readonly labels: Int32Array;
  /** Paths relative to `root`. */
  readonly files: readonly string[];
  /** Files left out by `skipCorrupt`. */
  readonly skipped: readonly SkippedFile[];
  readonly spec: ImageFolderSpec;
  /** What decodes JPEGs that are cropped and resized (resolved from the `decoder` option). */
  readonly decoder: JpegDecoder;
  private readonly nativeResize: boolean;
  private readonly native: JpegNative | null;
  private fp: string | undefined;

  private constructor(
    root: string,
    options: Required<Omit<ImageFolderOptions, 'onProgress'>>,
    listing: ImageFolderListing,
    skipped: SkippedFile[],
    native: JpegNative | null,
  ) {
    this.root = root;
    this.name = `image-folder/${basename(root)}`;
    this.classes = listing.classes;
    this.files = listing.files;
    this.labels = Int32Array.from(listing.labels);
    this.length = listing.files.length;
    this.skipped = skipped;
    this.nativeResize = options.nativeResize;
    this.native = native;
    this.decoder = native ? 'libjpeg-turbo' : 'sharp';
    this.spec = { kind: 'image-folder', root, ...options, decoder: this.decoder, listing };
  }

  static async open(
    root: string,
    options: ImageFolderOptions = {},
    listing?: ImageFolderListing,
  ): Promise<ImageFolder> {
    if (typeof root !== 'string' || root === '') {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `imageFolder: root must be a directory path, got ${JSON.stringify(root)}`,
        {
          input: 'root',
        },
      );
    }
    const resolved = { ...defaultImageFolderOptions, ...stripUndefined(options) };
    const extensions = resolved.extensions.map((e) => e.toLowerCase());
    if (extensions.length === 0 || !extensions.every((e) => e.startsWith('.'))) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `imageFolder: extensions must be a non-empty list like ['.jpg', '.png'], got ${JSON.stringify(resolved.extensions)}`,
        { input: 'extensions' },
      );
    }
    const native = jpegDecoder(resolved.decoder);
    const absRoot = resolve(root);
    const skipped: SkippedFile[] = [];
    let found = listing;
    if (!found) {
      found = await scan(absRoot, extensions);
      if (resolved.skipCorrupt) found = await verify(absRoot, found, skipped, options.onProgress);
    }
    return new ImageFolder(absRoot, { ...resolved, extensions }, found, skipped, native);
  }

  /** Digest of the relative file list and labels (computed on first use). */
  get fingerprint(): string {
    this.fp ??= fingerprintOf(this.name, this.length, null, [
      this.classes.join('\n'),
      '\0',
      this.files.join('\n'),
      '\0',
      new Uint8Array(this.labels.buffer, this.labels.byteOffset, this.labels.byteLength),
    ]);
    return this.fp;
  }

  /** Absolute path of sample `index`. */
  path(index: number): string {
    checkIndex(this.name, this.length, index);
    return join(this.root, this.files[index]!);
  }

  async get(index: number): Promise<{ index: number; image: RawImage; label: number }> {
    const path = this.path(index);
    const bytes = await readImage(path);
    return { index, image: await decode(bytes, path), label: this.labels[index]! };
  }

  async getResized(
    index: number,
    plan: (width: number, height: number) => ResizePlan,
  ): Promise<{ index: number; image: RawImage; label: number }> {
    const { image } = await this.getResizedInto(index, plan, () => false, null);
    return { index, image: image!, label: this.labels[index]! };
  }

  async getResizedInto(
    index: number,
    plan: (width: number, height: number) => ResizePlan,
    mirror: () => boolean,
    slot: ((height: number, width: number, channels: number) => BatchSlot) | null,
  ): Promise<{ index: number; label: number; image: RawImage | null; mirrored: boolean }> {
    const path = this.path(index);
    const label = this.labels[index]!;
    const bytes = await readImage(path);
    const size = this.nativeResize ? jpegSize(bytes) : null;
    if (size === null) {
      // Not a JPEG (PNG/WebP may carry alpha, which Pillow drops before resizing while libvips
      // resizes premultiplied), or native resizing is off: decode, then resize in JavaScript.
      const image = await decode(bytes, path);
      const p = plan(image.width, image.height);
      return { index, label, image: resizedCrop(image, p.crop, p.height, p.width), mirrored: mirror() };
    }
    const p = plan(size.width, size.height);
    const mirrored = mirror();
    if (this.native) {
      const { crop } = p;
      // Into the batch as floats when there is a slot, else as an 8-bit image.
      const image: RawImage | null = slot
        ? null
        : { data: new Uint8Array(p.height * p.width * 3), height: p.height, width: p.width, channels: 3 };
      const into = slot ? slot(p.height, p.width, 3) : { dest: image!.data, offset: 0 };
      try {
        await this.native.decodeResized(
          bytes,
          crop.left,
          crop.top,
          crop.width,
          crop.height,
          p.width,
          p.height,
          into.dest,
          into.offset,
          mirrored,
        );
        return { index, label, image, mirrored: image === null ? mirrored : false };
      } catch (error) {
        const e = error as Error & { code?: string };
        // CMYK/YCCK JPEGs: sharp converts them; anything else is the file's fault (or a bad crop).
        if (e.code !== 'UNSUPPORTED') {
          // The decoder's codes are core's: CORRUPT_INPUT, INVALID_ARGUMENT, OUT_OF_MEMORY.
          if (e.code === 'CORRUPT_INPUT')
            throw undecodable(path, bytes, `libjpeg-turbo: ${oneLine(e.message)}`, error);
          const code = e.code === 'OUT_OF_MEMORY' ? e.code : 'INVALID_ARGUMENT';
          throw new CompressError(code, `imageFolder: cannot decode ${path}: ${e.message}`, {
            input: path,
            cause: error,
          });
        }
        const image = resizedCrop(await decode(bytes, path), crop, p.height, p.width);
        return { index, label, image, mirrored };
      }
    }
    const { crop } = p;
    let pipeline = open(bytes, path);
    if (crop.top !== 0 || crop.left !== 0 || crop.width !== size.width || crop.height !== size.height) {
      pipeline = pipeline.extract({ left: crop.left, top: crop.top, width: crop.width, height: crop.height });
    }
    if (p.width !== crop.width || p.height !== crop.height) {
      pipeline = pipeline.resize(p.width, p.height, { fit: 'fill', kernel: 'linear' });
    }
    return { index, label, image: await toRgb(pipeline, path, bytes), mirrored };
  }
}

/** Resolves the `decoder` option: the compiled decoder, or null for sharp. */
function jpegDecoder(decoder: JpegDecoder | 'auto'): JpegNative | null {
  if (decoder === 'sharp') return null;
  if (decoder !== 'auto' && decoder !== 'libjpeg-turbo') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `imageFolder: decoder must be 'auto', 'libjpeg-turbo' or 'sharp', got ${JSON.stringify(decoder)}`,
      { input: 'decoder' },
    );
  }
  const { native, error } = loadJpegNative();
  if (native === null && decoder === 'libjpeg-turbo') {
    throw new CompressError(
      'BACKEND_UNAVAILABLE',
      `imageFolder: decoder 'libjpeg-turbo' needs this package's compiled JPEG decoder, but ${error}. Build it with \`pnpm --filter @compress/data build\` (needs a C compiler and libjpeg-turbo's headers: apt-get install gcc libjpeg62-turbo-dev), or use decoder: 'sharp'`,
      { input: 'decoder' },
    );
  }
  return native;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Opens a folder of images laid out as torchvision's ImageFolder (see {@link ImageFolder} and
 * {@link ImageFolderOptions}).
 */
export function imageFolder(root: string, options: ImageFolderOptions = {}): Promise<ImageFolder> {
  return ImageFolder.open(root, options);
}
