import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { CompressError, ioError, type ProgressListener, type RawImage } from '@compress/core';
import sharp from 'sharp';
import { resizedCrop } from '../transforms/resample.js';
import type { ResizePlan } from '../transforms/transform.js';
import {
  type BatchSlot,
  checkIndex,
  fingerprintOf,
  type ResizingDataset,
  type SpecDataset,
} from './common.js';
import { type JpegNative, loadJpegNative } from './jpeg-native.js';
import { jpegSize } from './jpeg-size.js';

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

async function read(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (error) {
    throw ioError(error, path, 'read image');
  }
}

/** Reads an image file; an empty one is CORRUPT_INPUT naming it. */
async function readImage(path: string): Promise<Uint8Array> {
  const bytes = await read(path);
  if (bytes.length === 0) throw undecodable(path, bytes);
  return bytes;
}

/**
 * What a file that does not decode holds, as far as its first and last bytes tell: empty, not an
 * image format decoded here, or a JPEG/PNG/WebP that ends early.
 */
export function describeImageBytes(bytes: Uint8Array): string {
  const n = bytes.length;
  if (n === 0) return 'the file is empty (0 bytes)';
  const size = `${n} byte${n === 1 ? '' : 's'}`;
  const has = (sig: readonly number[], at = 0) => sig.every((b, i) => bytes[at + i] === b);
  const find = (sig: readonly number[], from: number) => {
    for (let i = Math.max(0, from); i + sig.length <= n; i++) if (has(sig, i)) return true;
    return false;
  };
  if (n >= 3 && has([0xff, 0xd8, 0xff])) {
    // The end-of-image marker, allowing for some trailing bytes after it.
    return find([0xff, 0xd9], n - 4096)
      ? `a JPEG file of ${size} that does not decode (damaged data)`
      : `a JPEG file of ${size} without its end-of-image marker: truncated`;
  }
  if (n >= 8 && has([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) {
    return find([0x49, 0x45, 0x4e, 0x44], n - 64) // IEND
      ? `a PNG file of ${size} that does not decode (damaged data)`
      : `a PNG file of ${size} without its IEND chunk: truncated`;
  }
  if (n >= 12 && has([0x52, 0x49, 0x46, 0x46]) && has([0x57, 0x45, 0x42, 0x50], 8)) {
    const declared = (bytes[4]! | (bytes[5]! << 8) | (bytes[6]! << 16) | (bytes[7]! << 24)) >>> 0;
    return declared + 8 > n
      ? `a WebP file of ${size}, ${declared + 8} declared: truncated`
      : `a WebP file of ${size} that does not decode (damaged data)`;
  }
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  const text = Array.from(bytes.subarray(0, 24), (b) =>
    b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '',
  ).join('');
  const looksText = text.length >= Math.min(n, 24) * 0.9;
  return `not a JPEG, PNG or WebP file (${size}, starting with ${head}${looksText ? ` "${text}"` : ''})`;
}

/** CORRUPT_INPUT: `path` does not decode, saying what it holds and what the decoder said. */
function undecodable(path: string, bytes: Uint8Array, detail?: string, cause?: unknown): CompressError {
  return new CompressError(
    'CORRUPT_INPUT',
    `imageFolder: cannot decode ${path}: ${describeImageBytes(bytes)}${detail ? ` (${detail})` : ''}; pass { skipCorrupt: true } to leave out files that do not decode`,
    { input: path, ...(cause === undefined ? {} : { cause }) },
  );
}

function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, '; ').trim();
}

/** A sharp pipeline on `bytes`; sharp's own refusals (an empty buffer) name the file too. */
function open(bytes: Uint8Array, path: string): sharp.Sharp {
  try {
    return sharp(bytes, { failOn: 'warning' });
  } catch (error) {
    throw undecodable(path, bytes, `sharp: ${oneLine((error as Error).message)}`, error);
  }
}

async function decode(bytes: Uint8Array, path: string): Promise<RawImage> {
  return toRgb(open(bytes, path), path, bytes);
}

async function toRgb(pipeline: sharp.Sharp, path: string, bytes: Uint8Array): Promise<RawImage> {
  try {
    const { data, info } = await pipeline
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      height: info.height,
      width: info.width,
      channels: 3,
    };
  } catch (error) {
    throw undecodable(path, bytes, `sharp: ${oneLine((error as Error).message)}`, error);
  }
}

/** Python's `sorted` order for strings (code points; JavaScript compares UTF-16 units). */
function comparePython(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    x = x >= 0xe000 ? x - 0x800 : x >= 0xd800 ? x + 0x2000 : x;
    y = y >= 0xe000 ? y - 0x800 : y >= 0xd800 ? y + 0x2000 : y;
    return x - y;
  }
  return a.length - b.length;
}

async function isDirectory(
  path: string,
  entry: { isDirectory(): boolean; isSymbolicLink(): boolean },
): Promise<boolean> {
  if (entry.isDirectory()) return true;
  if (!entry.isSymbolicLink()) return false;
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false; // a broken link counts as a file, as in os.walk
  }
}

async function listDir(path: string): Promise<import('node:fs').Dirent[]> {
  try {
    return await readdir(path, { withFileTypes: true });
  } catch (error) {
    throw ioError(error, path, 'list directory');
  }
}

/** torchvision's `find_classes` + `make_dataset`. */
async function scan(root: string, extensions: string[]): Promise<ImageFolderListing> {
  let rootStat: import('node:fs').Stats;
  try {
    rootStat = await stat(root);
  } catch (error) {
    throw ioError(error, root, 'open image folder');
  }
  if (!rootStat.isDirectory()) {
    throw new CompressError('INVALID_ARGUMENT', `imageFolder: ${root} is not a directory`, { input: root });
  }
  const classes: string[] = [];
  for (const entry of await listDir(root)) {
    if (await isDirectory(join(root, entry.name), entry)) classes.push(entry.name);
  }
  classes.sort(comparePython);
  if (classes.length === 0) {
    throw new CompressError(
      'NOT_FOUND',
      `imageFolder: no class folders in ${root}; expected one sub-folder per class (${root}/<class>/<image>), as torchvision's ImageFolder`,
      { input: root },
    );
  }
  const files: string[] = [];
  const labels: number[] = [];
  const empty: string[] = [];
  for (const [label, cls] of classes.entries()) {
    // os.walk(followlinks=True), sorted by directory path, files sorted within a directory.
    const dirs: { rel: string; names: string[] }[] = [];
    const seen = new Set<string>();
    const walk = async (rel: string): Promise<void> => {
      const abs = join(root, rel);
      const real = await realpath(abs).catch(() => abs);
      if (seen.has(real)) return; // a link cycle
      seen.add(real);
      const names: string[] = [];
      const subdirs: string[] = [];
      for (const entry of await listDir(abs)) {
        if (await isDirectory(join(abs, entry.name), entry)) subdirs.push(`${rel}/${entry.name}`);
        else names.push(entry.name);
      }
      dirs.push({ rel, names });
      for (const d of subdirs) await walk(d);
    };
    await walk(cls);
    dirs.sort((a, b) => comparePython(join(root, a.rel), join(root, b.rel)));
    const before = files.length;
    for (const { rel, names } of dirs) {
      names.sort(comparePython);
      for (const name of names) {
        const lower = name.toLowerCase();
        if (extensions.some((e) => lower.endsWith(e))) {
          files.push(`${rel}/${name}`);
          labels.push(label);
        }
      }
    }
    if (files.length === before) empty.push(cls);
  }
  if (empty.length > 0) {
    throw new CompressError(
      'NOT_FOUND',
      `imageFolder: found no valid file for the classes ${empty.join(', ')} in ${root}. Supported extensions are: ${extensions.join(', ')}`,
      { input: root },
    );
  }
  return { classes, files, labels };
}

/** Decodes every file once; returns the listing without the ones that fail. */
async function verify(
  root: string,
  listing: ImageFolderListing,
  skipped: SkippedFile[],
  onProgress?: ProgressListener,
): Promise<ImageFolderListing> {
  const ok = new Uint8Array(listing.files.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    for (let i = next++; i < listing.files.length; i = next++) {
      const path = join(root, listing.files[i]!);
      try {
        await decode(await readImage(path), path);
        ok[i] = 1;
      } catch (error) {
        skipped[i] = { path, reason: (error as Error).message };
      }
      done++;
      if (onProgress && (done % 256 === 0 || done === listing.files.length)) {
        onProgress({ phase: 'verify-images', done, total: listing.files.length, unit: 'images' });
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  const out: ImageFolderListing = { classes: listing.classes, files: [], labels: [] };
  for (let i = 0; i < ok.length; i++) {
    if (ok[i]) {
      out.files.push(listing.files[i]!);
      out.labels.push(listing.labels[i]!);
    }
  }
  // Keep `skipped` dense and in dataset order.
  const dense = skipped.filter(Boolean);
  skipped.length = 0;
  skipped.push(...dense);
  if (out.files.length === 0) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `imageFolder: none of the ${listing.files.length} image files in ${root} could be decoded (first: ${dense[0]?.reason ?? 'unknown'})`,
      { input: root },
    );
  }
  return out;
}

/**
 * Opens a folder of images laid out as torchvision's ImageFolder (see {@link ImageFolder} and
 * {@link ImageFolderOptions}).
 */
export function imageFolder(root: string, options: ImageFolderOptions = {}): Promise<ImageFolder> {
  return ImageFolder.open(root, options);
}
