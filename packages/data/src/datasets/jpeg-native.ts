import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * The compiled libjpeg-turbo decoder (`native/jpeg_crop.c`, built by `scripts/build-native.mjs`):
 * decodes only the part of a JPEG a crop needs and resizes it with Pillow's bilinear filter,
 * bit-exact to torchvision's PIL path, writing floats (÷ 255) into a batch.
 */
/**
 * Arguments of a decode: the JPEG, the crop window in stored-image pixels, the output size, and
 * where to write `outHeight × outWidth × 3` values — floats (8-bit value ÷ 255) into a
 * Float32Array or 8-bit values into a Uint8Array — mirrored left–right when `mirror`.
 */
export type DecodeResizedArgs = [
  jpeg: Uint8Array,
  left: number,
  top: number,
  cropWidth: number,
  cropHeight: number,
  outWidth: number,
  outHeight: number,
  dest: Float32Array | Uint8Array,
  offset: number,
  mirror: boolean,
];

export interface JpegNative {
  /** On libuv's thread pool; rejects with an Error whose `code` is CORRUPT_INPUT, UNSUPPORTED, INVALID_ARGUMENT or OUT_OF_MEMORY. */
  decodeResized(...args: DecodeResizedArgs): Promise<void>;
  /** The same on the calling thread; throws those errors. */
  decodeResizedSync(...args: DecodeResizedArgs): void;
  /**
   * Advises the kernel to back the 2 MiB-aligned interior of a large, untouched array with
   * transparent huge pages; returns the bytes advised (0 where unsupported).
   */
  adviseHugePages(array: ArrayBufferView): number;
  /** libjpeg API version the decoder was compiled against (62 for libjpeg-turbo's default). */
  jpegLibVersion: number;
}

/** Where the build puts the compiled decoder (the same path from `src/` and from `dist/`). */
export const jpegNativePath = fileURLToPath(new URL('../../native/build/jpeg_crop.node', import.meta.url));

let loaded: { native: JpegNative | null; error: string } | undefined;

/** The compiled decoder, or `null` with the reason (not built, or it does not load). */
export function loadJpegNative(): { native: JpegNative | null; error: string } {
  if (loaded === undefined) {
    try {
      const native = createRequire(import.meta.url)(jpegNativePath) as JpegNative;
      loaded = { native, error: '' };
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      loaded = {
        native: null,
        error: e.code === 'MODULE_NOT_FOUND' ? `${jpegNativePath} is not built` : e.message,
      };
    }
  }
  return loaded;
}

/** Arrays from this size on are worth backing with huge pages (two of them at least). */
const HUGE_PAGE_MIN_BYTES = 4 << 20;

/**
 * A zeroed Float32Array for a batch. Large ones are advised onto transparent huge pages when the
 * package's native addon is built (Linux): the first write into fresh memory otherwise takes one
 * page fault per 4 KiB — for a 154 MB batch of 224×224 RGB images that costs more than decoding
 * the images on a virtual machine.
 */
export function newBatchArray(length: number): Float32Array {
  const array = new Float32Array(length);
  if (length * 4 >= HUGE_PAGE_MIN_BYTES) loadJpegNative().native?.adviseHugePages(array);
  return array;
}
