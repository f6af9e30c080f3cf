import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@compress/core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomResizedCrop } from '../transforms/random-resized-crop.js';
import { resizedCrop } from '../transforms/resample.js';
import { imageFolder } from './image-folder.js';
import { loadJpegNative, newBatchArray } from './jpeg-native.js';

// The decoder is built with the package (`pnpm build`); CI requires it (COMPRESS_REQUIRE_NATIVE=1).
const { native, error } = loadJpegNative();
if (native === null && process.env.COMPRESS_REQUIRE_NATIVE === '1') throw new Error(error);

// Pillow's crop+resize of small JPEGs (bytes included), written by scripts/pil-jpeg-golden.py.
const golden = JSON.parse(readFileSync(new URL('./pil-jpeg.golden.json', import.meta.url), 'utf8')) as {
  images: {
    name: string;
    width: number;
    height: number;
    jpeg: string;
    crops: {
      left: number;
      top: number;
      width: number;
      height: number;
      outWidth: number;
      outHeight: number;
      pixels: string;
    }[];
  }[];
};

const dir = mkdtempSync(join(tmpdir(), 'compress-data-jpeg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function photo(w: number, h: number, seed: number): Buffer {
  const buf = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const v = 50 * Math.sin(x / (9 + seed) + seed) * Math.cos(y / 13);
      buf.set(
        [(x * 200) / w + v + ((x * y) % 5), (y * 200) / h - v + 30, 128 + v + ((x * 7 + y * 3) % 11)],
        (y * w + x) * 3,
      );
    }
  return buf;
}

describe.skipIf(native === null)('libjpeg-turbo crop decoder', () => {
  const n = native!;

  it('matches Pillow bit for bit (4:2:0, 4:2:2, 4:4:4, progressive, greyscale; crops, up- and downscaling)', () => {
    let cases = 0;
    for (const image of golden.images) {
      const jpeg = Buffer.from(image.jpeg, 'base64');
      for (const c of image.crops) {
        const dest = new Float32Array(c.outHeight * c.outWidth * 3);
        n.decodeResizedSync(jpeg, c.left, c.top, c.width, c.height, c.outWidth, c.outHeight, dest, 0, false);
        const want = Buffer.from(c.pixels, 'base64');
        const got = Uint8Array.from(dest, (v) => Math.round(v * 255));
        expect(Buffer.from(got).equals(want), `${image.name}, crop ${JSON.stringify(c).slice(0, 80)}`).toBe(
          true,
        );
        // Floats are exactly v / 255 (torchvision's ToTensor).
        for (let i = 0; i < got.length; i += 97) expect(dest[i]).toBe(Math.fround(got[i]! / 255));
        // Into 8-bit values: Pillow's bytes themselves.
        const bytes = new Uint8Array(want.length);
        n.decodeResizedSync(jpeg, c.left, c.top, c.width, c.height, c.outWidth, c.outHeight, bytes, 0, false);
        expect(Buffer.from(bytes).equals(want)).toBe(true);
        cases++;
      }
    }
    expect(cases).toBe(30);
  });

  const variants: [string, (s: sharp.Sharp) => sharp.Sharp][] = [
    ['4:2:0', (s) => s.jpeg({ quality: 88 })],
    ['4:4:4', (s) => s.jpeg({ quality: 92, chromaSubsampling: '4:4:4' })],
    ['progressive', (s) => s.jpeg({ quality: 80, progressive: true })],
    ['greyscale', (s) => s.toColourspace('b-w').jpeg({ quality: 90 })],
  ];
  const root = join(dir, 'variants');
  beforeAll(async () => {
    mkdirSync(join(root, 'cls'), { recursive: true });
    for (const [i, [name, encode]] of variants.entries()) {
      const w = 333 - i * 40;
      const h = 251 - i * 20;
      await encode(sharp(photo(w, h, i), { raw: { width: w, height: h, channels: 3 } })).toFile(
        join(root, 'cls', `${i}-${name}.jpg`),
      );
    }
  });

  it('gives the pixels of a full decode + the Pillow-exact resampler on many random crops, at edges too', async () => {
    const fast = await imageFolder(root, { decoder: 'libjpeg-turbo' });
    const exact = await imageFolder(root, { nativeResize: false });
    expect(fast.decoder).toBe('libjpeg-turbo');
    const t = randomResizedCrop(64, { scale: [0.02, 1] });
    for (let index = 0; index < variants.length; index++) {
      const full = (await exact.get(index)).image;
      for (let seed = 0; seed < 25; seed++) {
        const plan = (w: number, h: number) => {
          const p = t.plan!(w, h, new Rng(seed));
          // Every fourth crop touches the right and bottom edges.
          if (seed % 4 === 1) p.crop = { ...p.crop, left: w - p.crop.width, top: h - p.crop.height };
          return p;
        };
        const got = (await fast.getResized(index, plan)).image;
        const p = plan(full.width, full.height);
        const want = resizedCrop(full, p.crop, p.height, p.width);
        expect(
          Buffer.from(got.data).equals(Buffer.from(want.data)),
          `${variants[index]![0]} seed ${seed}`,
        ).toBe(true);
      }
    }
  });

  it('writes floats into a batch slot, mirrored when asked, and nothing outside it', async () => {
    const ds = await imageFolder(root, { decoder: 'libjpeg-turbo' });
    const plan = () => ({ crop: { top: 10, left: 20, height: 100, width: 150 }, height: 12, width: 16 });
    const per = 12 * 16 * 3;
    const dest = new Float32Array(3 * per).fill(-1);
    for (const [slot, mirror] of [
      [0, false],
      [2, true],
    ] as const) {
      const r = await ds.getResizedInto(
        0,
        plan,
        () => mirror,
        (h, w, c) => {
          expect([h, w, c]).toEqual([12, 16, 3]);
          return { dest, offset: slot * per };
        },
      );
      expect(r).toMatchObject({ index: 0, image: null, mirrored: mirror });
    }
    expect(dest.subarray(per, 2 * per).every((v) => v === -1)).toBe(true);
    const ref = (await ds.getResized(0, plan)).image;
    // The 8-bit output mirrors too.
    const jpeg = readFileSync(ds.path(0));
    const mirrored8 = new Uint8Array(per);
    n.decodeResizedSync(jpeg, 20, 10, 150, 100, 16, 12, mirrored8, 0, true);
    for (let y = 0; y < 12; y++)
      for (let x = 0; x < 16; x++)
        for (let c = 0; c < 3; c++) {
          const v = ref.data[(y * 16 + x) * 3 + c]! / 255;
          expect(dest[(y * 16 + x) * 3 + c]).toBe(Math.fround(v));
          expect(dest[2 * per + (y * 16 + (15 - x)) * 3 + c]).toBe(Math.fround(v));
          expect(mirrored8[(y * 16 + (15 - x)) * 3 + c]).toBe(ref.data[(y * 16 + x) * 3 + c]);
        }
  });

  it('runs decodes in parallel on the thread pool with the same result', async () => {
    const jpeg = Buffer.from(golden.images[0]!.jpeg, 'base64');
    const c = golden.images[0]!.crops[1]!;
    const per = c.outHeight * c.outWidth * 3;
    const dest = new Float32Array(8 * per);
    await Promise.all(
      Array.from({ length: 8 }, (_, k) =>
        n.decodeResized(
          jpeg,
          c.left,
          c.top,
          c.width,
          c.height,
          c.outWidth,
          c.outHeight,
          dest,
          k * per,
          false,
        ),
      ),
    );
    const want = Buffer.from(c.pixels, 'base64');
    for (let k = 0; k < 8; k++)
      expect(
        Buffer.from(Uint8Array.from(dest.subarray(k * per, (k + 1) * per), (v) => Math.round(v * 255))),
      ).toEqual(want);
  });

  it('leaves CMYK JPEGs to sharp', async () => {
    const cmyk = join(dir, 'cmyk');
    mkdirSync(join(cmyk, 'cls'), { recursive: true });
    await sharp(photo(40, 30, 9), { raw: { width: 40, height: 30, channels: 3 } })
      .toColourspace('cmyk')
      .jpeg()
      .toFile(join(cmyk, 'cls', 'a.jpg'));
    const ds = await imageFolder(cmyk, { decoder: 'libjpeg-turbo' });
    const plan = () => ({ crop: { top: 2, left: 3, height: 20, width: 30 }, height: 10, width: 15 });
    const got = (await ds.getResized(0, plan)).image;
    const full = (await ds.get(0)).image;
    expect(got.data).toEqual(resizedCrop(full, plan().crop, 10, 15).data);
  });

  it('refuses bad arguments and names what is wrong', () => {
    const jpeg = Buffer.from(golden.images[0]!.jpeg, 'base64'); // 61×45
    const dest = new Float32Array(16 * 16 * 3);
    const call =
      (...a: unknown[]) =>
      () =>
        (n.decodeResizedSync as (...x: unknown[]) => void)(...a);
    expect(call(jpeg, 0, 0, 61, 45, 16, 16, dest, 1, false)).toThrow('do not fit dest');
    expect(call(jpeg, 0, 0, 62, 45, 16, 16, dest, 0, false)).toThrow(
      'crop 62x45 at (0, 0) is outside the 61x45 image',
    );
    expect(call(jpeg, -1, 0, 10, 10, 16, 16, dest, 0, false)).toThrow('outside');
    expect(call(jpeg, 0, 0, 10, 10, 16, 16, new Float64Array(768), 0, false)).toThrow(
      'dest must be a Float32Array',
    );
    expect(call('jpeg', 0, 0, 10, 10, 16, 16, dest, 0, false)).toThrow('jpeg must be a Uint8Array');
    expect(call(jpeg, 0.5, 0, 10, 10, 16, 16, dest, 0, false)).toThrow('left must be an integer');
    expect(call(jpeg, 0, 0, 10, 10, 16, 16, dest, 0)).toThrow('10 arguments expected');
    let caught: (Error & { code?: string }) | undefined;
    try {
      n.decodeResizedSync(jpeg.subarray(0, 300), 0, 0, 10, 10, 16, 16, dest, 0, false);
    } catch (e) {
      caught = e as Error & { code?: string };
    }
    expect(caught?.code).toBe('CORRUPT_INPUT');
    expect(() => n.decodeResizedSync(Buffer.from('not a jpeg'), 0, 0, 1, 1, 1, 1, dest, 0, false)).toThrow(
      /Not a JPEG file/,
    );
  });
});

describe.skipIf(native === null)('huge-page advice for batch arrays', () => {
  it('advises whole 2 MiB pages inside the array, nothing for small ones, and refuses non-arrays', () => {
    const n = native!;
    const big = new Float32Array(3 * 2 ** 20 + 123); // 12 MiB + a bit
    const advised = n.adviseHugePages(big);
    expect(advised % 2 ** 21).toBe(0);
    expect(advised).toBeLessThanOrEqual(big.byteLength);
    if (process.platform === 'linux') expect(advised).toBeGreaterThanOrEqual(big.byteLength - 2 * 2 ** 21);
    expect(n.adviseHugePages(new Float32Array(1000))).toBe(0);
    expect(() => (n.adviseHugePages as (x: unknown) => number)(5)).toThrow(
      'adviseHugePages: expected a typed array',
    );
  });

  it('newBatchArray gives zeroed arrays of the asked length, large or small', () => {
    for (const length of [10, 5 * 2 ** 20]) {
      const a = newBatchArray(length);
      expect(a).toBeInstanceOf(Float32Array);
      expect(a.length).toBe(length);
      expect(a[0]).toBe(0);
      expect(a[length - 1]).toBe(0);
    }
  });
});

describe('imageFolder decoder option', () => {
  it('reports which decoder it uses and refuses unknown ones', async () => {
    const root = join(dir, 'opt');
    mkdirSync(join(root, 'cls'), { recursive: true });
    writeFileSync(join(root, 'cls', 'a.jpg'), Buffer.from(golden.images[0]!.jpeg, 'base64'));
    expect((await imageFolder(root, { decoder: 'sharp' })).decoder).toBe('sharp');
    expect((await imageFolder(root)).decoder).toBe(native ? 'libjpeg-turbo' : 'sharp');
    await expect(imageFolder(root, { decoder: 'pillow' as 'sharp' })).rejects.toThrow(
      `imageFolder: decoder must be 'auto', 'libjpeg-turbo' or 'sharp', got "pillow"`,
    );
  });
});
