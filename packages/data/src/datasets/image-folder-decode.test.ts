import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompressError } from '@compress/core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoader } from '../loader.js';
import type { LoaderBatch } from '../pipeline.js';
import { compose } from '../transforms/compose.js';
import { centerCrop, resize } from '../transforms/geometry.js';
import { toFloat } from '../transforms/pixel.js';
import { randomResizedCrop } from '../transforms/random-resized-crop.js';
import { describeImageBytes, imageFolder } from './image-folder.js';
import { loadJpegNative } from './jpeg-native.js';

const dir = mkdtempSync(join(tmpdir(), 'compress-data-decode-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function raw(w: number, h: number): sharp.SharpOptions {
  return { raw: { width: w, height: h, channels: 3 } };
}
function pixels(w: number, h: number): Buffer {
  const px = Buffer.alloc(w * h * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 7) % 251;
  return px;
}

/** One ImageFolder per bad file (a class `a` holding only that file), and what its error says. */
const cases: { name: string; file: string; found: string | RegExp }[] = [
  { name: 'a zero-byte JPEG', file: 'empty.jpg', found: 'the file is empty (0 bytes)' },
  { name: 'a zero-byte PNG', file: 'empty.png', found: 'the file is empty (0 bytes)' },
  {
    name: 'a text file named .jpg',
    file: 'text.jpg',
    found:
      'not a JPEG, PNG or WebP file (18 bytes, starting with 74 68 69 73 20 69 73 20 "this is not a JPEG")',
  },
  {
    name: 'a truncated JPEG',
    file: 'truncated.jpg',
    found: /a JPEG file of \d+ bytes without its end-of-image marker: truncated \((libjpeg-turbo|sharp): \S/,
  },
  {
    name: 'a truncated PNG',
    file: 'truncated.png',
    found: /a PNG file of \d+ bytes without its IEND chunk: truncated \(sharp: \S/,
  },
];

beforeAll(async () => {
  const jpeg = await sharp(pixels(48, 40), raw(48, 40)).jpeg().toBuffer();
  const png = await sharp(pixels(48, 40), raw(48, 40)).png().toBuffer();
  const contents: Record<string, Uint8Array> = {
    'empty.jpg': new Uint8Array(0),
    'empty.png': new Uint8Array(0),
    'text.jpg': new TextEncoder().encode('this is not a JPEG'),
    'truncated.jpg': jpeg.subarray(0, jpeg.length >> 1),
    'truncated.png': png.subarray(0, png.length >> 1),
  };
  for (const c of cases) {
    mkdirSync(join(dir, c.file, 'a'), { recursive: true });
    writeFileSync(join(dir, c.file, 'a', c.file), contents[c.file]!);
  }
});

function expectNamed(error: unknown, path: string, found: string | RegExp): void {
  expect(error).toBeInstanceOf(CompressError);
  const e = error as CompressError;
  expect(e.code).toBe('CORRUPT_INPUT');
  expect(e.input).toBe(path);
  expect(e.message.startsWith(`imageFolder: cannot decode ${path}: `)).toBe(true);
  if (typeof found === 'string') expect(e.message).toContain(`: ${found}`);
  else expect(e.message).toMatch(found);
  expect(e.message).toContain('; pass { skipCorrupt: true } to leave out files that do not decode');
  expect(e.message).not.toContain('\n');
}

async function firstError(it: AsyncIterable<LoaderBatch>): Promise<unknown> {
  try {
    for await (const _ of it) {
      // the only sample fails
    }
  } catch (error) {
    return error;
  }
  throw new Error('expected the loader to fail');
}

const decoders = loadJpegNative().native ? (['libjpeg-turbo', 'sharp'] as const) : (['sharp'] as const);
const transforms = {
  // a leading crop+resize goes into the decoder (getResized / getResizedInto)
  randomResizedCrop: () => randomResizedCrop(16, { scale: [0.2, 1] }),
  // resize, then crop in JavaScript
  'resize+centerCrop': () => compose([resize(20), centerCrop(16)]),
  // whole-image decode (get)
  toFloat: () => compose([toFloat()]),
};

describe('imageFolder decode errors name the file and say what it holds', () => {
  for (const c of cases) {
    for (const decoder of decoders) {
      it(`${c.name}, decoder ${decoder}: get, getResized, workers 0 and 1`, async () => {
        const root = join(dir, c.file);
        const path = join(root, 'a', c.file);
        const ds = await imageFolder(root, { decoder });
        expectNamed(await ds.get(0).catch((e) => e), path, c.found);
        expectNamed(
          await ds
            .getResized(0, (w, h) => ({
              crop: { top: 0, left: 0, height: h, width: w },
              height: 8,
              width: 8,
            }))
            .catch((e) => e),
          path,
          c.found,
        );
        for (const [name, transform] of Object.entries(transforms)) {
          for (const workers of [0, 1]) {
            const loader = createLoader(ds, {
              batchSize: 1,
              shuffle: false,
              workers,
              transform: transform(),
            });
            try {
              const error = await firstError(loader);
              try {
                expectNamed(error, path, c.found);
              } catch (failure) {
                throw new Error(`transform ${name}, workers ${workers}: ${(failure as Error).message}`);
              }
            } finally {
              await loader.close();
            }
          }
        }
      }, 60_000);
    }
  }

  it('skipCorrupt leaves the files out with the same reasons', async () => {
    const root = join(dir, 'mixed');
    mkdirSync(join(root, 'a'), { recursive: true });
    await sharp(pixels(20, 20), raw(20, 20))
      .jpeg()
      .toFile(join(root, 'a', 'good.jpg'));
    writeFileSync(join(root, 'a', 'zero.jpg'), new Uint8Array(0));
    const ds = await imageFolder(root, { skipCorrupt: true });
    expect(ds.files).toEqual(['a/good.jpg']);
    expect(ds.skipped.map((s) => s.reason)).toEqual([
      `imageFolder: cannot decode ${join(root, 'a', 'zero.jpg')}: the file is empty (0 bytes); pass { skipCorrupt: true } to leave out files that do not decode`,
    ]);
  });

  it('describes bytes', () => {
    expect(describeImageBytes(new Uint8Array(0))).toBe('the file is empty (0 bytes)');
    expect(describeImageBytes(Uint8Array.of(0))).toBe(
      'not a JPEG, PNG or WebP file (1 byte, starting with 00)',
    );
    expect(describeImageBytes(Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 1, 2, 0xff, 0xd9))).toBe(
      'a JPEG file of 8 bytes that does not decode (damaged data)',
    );
    const webp = new TextEncoder().encode('RIFF\x40\0\0\0WEBPVP8 ');
    expect(describeImageBytes(webp)).toBe('a WebP file of 16 bytes, 72 declared: truncated');
    expect(describeImageBytes(new TextEncoder().encode('<!DOCTYPE html><html>'))).toBe(
      'not a JPEG, PNG or WebP file (21 bytes, starting with 3c 21 44 4f 43 54 59 50 "<!DOCTYPE html><html>")',
    );
  });
});
