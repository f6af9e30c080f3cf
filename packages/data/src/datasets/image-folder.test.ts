import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@compress/core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomResizedCrop } from '../transforms/random-resized-crop.js';
import { resizedCrop } from '../transforms/resample.js';
import { imageFolder } from './image-folder.js';
import { jpegSize } from './jpeg-size.js';
import { openDataset } from './spec.js';

const dir = mkdtempSync(join(tmpdir(), 'compress-data-folder-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A smooth photo-like RGB image (gradients and waves) with a little texture. */
function photo(w: number, h: number, seed: number): Buffer {
  const buf = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const v = 50 * Math.sin(x / (9 + seed) + seed) * Math.cos(y / 13);
      buf[i] = Math.max(0, Math.min(255, (x * 200) / w + v + ((x * y) % 5)));
      buf[i + 1] = Math.max(0, Math.min(255, (y * 200) / h - v + 30));
      buf[i + 2] = Math.max(0, Math.min(255, 128 + v));
    }
  return buf;
}

const raw = (w: number, h: number, channels: 1 | 2 | 3 | 4) => ({ raw: { width: w, height: h, channels } });

// torchvision's order for this layout (checked with torchvision.datasets.folder.make_dataset):
// classes sorted by code point ('B_cls' < 'a_cls'); within a class, directories sorted by path
// ('sub' < 'sub-x' < 'sub/deep', since '-' < '/'), files sorted within each directory.
const expectedFiles = [
  'B_cls/q.webp',
  'a_cls/W.png',
  'a_cls/x.png',
  'c_cls/z.png',
  'c_cls/sub/a.jpg',
  'c_cls/sub-x/c.JPG',
  'c_cls/sub/deep/b.jpg',
];
const root = join(dir, 'photos');
const pngPixels = photo(20, 10, 1);

beforeAll(async () => {
  for (const d of ['B_cls', 'a_cls', 'c_cls/sub/deep', 'c_cls/sub-x'])
    mkdirSync(join(root, d), { recursive: true });
  await sharp(photo(30, 20, 0), raw(30, 20, 3))
    .webp({ lossless: true })
    .toFile(join(root, 'B_cls/q.webp'));
  await sharp(pngPixels, raw(20, 10, 3))
    .png()
    .toFile(join(root, 'a_cls/W.png'));
  // RGBA with transparent pixels: Pillow's convert('RGB') keeps the colour and drops alpha.
  const rgba = Buffer.alloc(4 * 4 * 4);
  for (let i = 0; i < 16; i++) rgba.set([i * 10, 255 - i * 10, 7, i % 2 ? 0 : 255], i * 4);
  await sharp(rgba, raw(4, 4, 4))
    .png()
    .toFile(join(root, 'a_cls/x.png'));
  // Grey PNG: expanded to three equal channels.
  await sharp(Buffer.from(Array.from({ length: 12 }, (_, i) => i * 20)), raw(4, 3, 1))
    .png()
    .toFile(join(root, 'c_cls/z.png'));
  await sharp(photo(500, 375, 2), raw(500, 375, 3))
    .jpeg({ quality: 95 })
    .toFile(join(root, 'c_cls/sub/a.jpg'));
  await sharp(photo(120, 90, 3), raw(120, 90, 3))
    .jpeg({ quality: 90, progressive: true })
    .toFile(join(root, 'c_cls/sub-x/c.JPG'));
  await sharp(photo(64, 48, 4), raw(64, 48, 3))
    .jpeg()
    .toFile(join(root, 'c_cls/sub/deep/b.jpg'));
  writeFileSync(join(root, 'stray.jpg'), 'not in a class folder');
  writeFileSync(join(root, 'a_cls/notes.txt'), 'not an image');
});

describe('imageFolder', () => {
  it('finds classes and files in torchvision’s order', async () => {
    const ds = await imageFolder(root);
    expect(ds.classes).toEqual(['B_cls', 'a_cls', 'c_cls']);
    expect(ds.files).toEqual(expectedFiles);
    expect(Array.from(ds.labels)).toEqual([0, 1, 1, 2, 2, 2, 2]);
    expect(ds.length).toBe(7);
    expect(ds.imageShape).toBeNull();
    expect(ds.name).toBe('image-folder/photos');
    expect(ds.fingerprint).toMatch(/^image-folder\/photos:7:var:sha256-[0-9a-f]{16}$/);
  });

  it('decodes PNG exactly, JPEG and WebP to RGB, drops alpha and expands grey', async () => {
    const ds = await imageFolder(root);
    const png = await ds.get(1);
    expect([png.index, png.label, png.image.height, png.image.width, png.image.channels]).toEqual([
      1, 1, 10, 20, 3,
    ]);
    expect(Buffer.from(png.image.data).equals(pngPixels)).toBe(true);

    const rgba = (await ds.get(2)).image;
    expect(rgba.channels).toBe(3);
    expect(Array.from(rgba.data.subarray(3, 6))).toEqual([10, 245, 7]); // pixel 1 was fully transparent

    const grey = (await ds.get(3)).image;
    expect(grey.channels).toBe(3);
    expect(Array.from(grey.data.subarray(3 * 5, 3 * 6))).toEqual([100, 100, 100]);

    const jpg = (await ds.get(4)).image;
    expect([jpg.height, jpg.width, jpg.channels]).toEqual([375, 500, 3]);
    const ref = photo(500, 375, 2);
    let diff = 0;
    for (let i = 0; i < ref.length; i++) diff += Math.abs(ref[i]! - jpg.data[i]!);
    expect(diff / ref.length).toBeLessThan(3); // JPEG quality 95

    const webp = (await ds.get(0)).image;
    expect(Buffer.from(webp.data).equals(photo(30, 20, 0))).toBe(true); // lossless
  });

  it('crops and resizes JPEGs in one sharp call, close to the Pillow-exact path', async () => {
    const native = await imageFolder(root, { decoder: 'sharp' });
    const exact = await imageFolder(root, { nativeResize: false });
    const t = randomResizedCrop(224);
    let sum = 0;
    let count = 0;
    let worst = 0;
    for (let seed = 0; seed < 6; seed++) {
      const a = (await native.getResized(4, (w, h) => t.plan!(w, h, new Rng(seed)))).image;
      const b = (await exact.getResized(4, (w, h) => t.plan!(w, h, new Rng(seed)))).image;
      const full = (await exact.get(4)).image;
      const ref = t(full, new Rng(seed));
      expect(Buffer.from(b.data).equals(Buffer.from(ref.data))).toBe(true); // nativeResize: false is the JS path
      expect([a.height, a.width, a.channels]).toEqual([224, 224, 3]);
      for (let i = 0; i < a.data.length; i++) {
        const d = Math.abs(a.data[i]! - b.data[i]!);
        sum += d;
        worst = Math.max(worst, d);
      }
      count += a.data.length;
    }
    // libvips' linear kernel vs Pillow's bilinear on the same crop windows.
    expect(sum / count).toBeLessThan(1); // measured 0.44 grey levels
    expect(worst).toBeLessThanOrEqual(12); // measured 5
  });

  it('resizes PNG and WebP with the Pillow-exact path even when nativeResize is on', async () => {
    const ds = await imageFolder(root);
    const plan = (w: number, h: number) => ({
      crop: { top: 1, left: 2, height: h - 2, width: w - 4 },
      height: 7,
      width: 9,
    });
    const got = (await ds.getResized(1, plan)).image;
    const full = (await ds.get(1)).image;
    expect(got.data).toEqual(resizedCrop(full, plan(20, 10).crop, 7, 9).data);
  });

  it('reopens from its spec without rescanning, and the fingerprint ignores where the folder is', async () => {
    const ds = await imageFolder(root);
    const again = await openDataset(JSON.parse(JSON.stringify(ds.spec)));
    expect((again as typeof ds).files).toEqual(ds.files);
    expect(again.fingerprint).toBe(ds.fingerprint);
    const copy = join(dir, 'copy', 'photos');
    cpSync(root, copy, { recursive: true });
    expect((await imageFolder(copy)).fingerprint).toBe(ds.fingerprint);
  });

  it('honours extensions, case-insensitively', async () => {
    const ds = await imageFolder(root, { extensions: ['.PNG', '.webp', '.jpg', '.txt'] });
    expect(ds.files).toEqual([
      'B_cls/q.webp',
      'a_cls/W.png',
      'a_cls/notes.txt',
      'a_cls/x.png',
      'c_cls/z.png',
      'c_cls/sub/a.jpg',
      'c_cls/sub-x/c.JPG',
      'c_cls/sub/deep/b.jpg',
    ]);
    await expect(imageFolder(root, { extensions: ['.jpg', '.webp'] })).rejects.toThrow(
      `imageFolder: found no valid file for the classes a_cls in ${root}. Supported extensions are: .jpg, .webp`,
    );
    await expect(imageFolder(root, { extensions: ['jpg'] })).rejects.toThrow(
      `imageFolder: extensions must be a non-empty list like ['.jpg', '.png'], got ["jpg"]`,
    );
  });
});

describe('imageFolder errors', () => {
  const bad = join(dir, 'bad');
  const broken = join(bad, 'cls/broken.jpg');
  const truncated = join(bad, 'cls/truncated.jpg');
  beforeAll(async () => {
    mkdirSync(join(bad, 'cls'), { recursive: true });
    await sharp(photo(40, 30, 5), raw(40, 30, 3))
      .jpeg()
      .toFile(join(bad, 'cls/good.jpg'));
    writeFileSync(broken, 'this is not a JPEG');
    const jpeg = await sharp(photo(40, 30, 6), raw(40, 30, 3))
      .jpeg()
      .toBuffer();
    writeFileSync(truncated, jpeg.subarray(0, jpeg.length >> 1));
  });

  it('names a file that does not decode', async () => {
    const ds = await imageFolder(bad);
    expect(ds.files).toEqual(['cls/broken.jpg', 'cls/good.jpg', 'cls/truncated.jpg']);
    await expect(ds.get(0)).rejects.toThrow(`imageFolder: cannot decode ${broken}: `);
    await expect(ds.get(0)).rejects.toThrow(
      '; pass { skipCorrupt: true } to leave out files that do not decode',
    );
    await expect(ds.get(2)).rejects.toThrow(`imageFolder: cannot decode ${truncated}: `);
    await expect(
      ds.getResized(2, (w, h) => ({ crop: { top: 0, left: 0, height: h, width: w }, height: 8, width: 8 })),
    ).rejects.toThrow(`imageFolder: cannot decode ${truncated}: `);
    expect((await ds.get(1)).image.width).toBe(40);
  });

  it('names a file that cannot be read', async () => {
    const ds = await imageFolder(bad);
    const gone = join(dir, 'gone');
    cpSync(bad, gone, { recursive: true });
    const g = await imageFolder(gone);
    rmSync(join(gone, 'cls/good.jpg'));
    await expect(g.get(1)).rejects.toThrow(
      `cannot read image ${join(gone, 'cls/good.jpg')}: no such file or directory`,
    );
    expect(ds.length).toBe(3);
  });

  it('skips and reports bad files with skipCorrupt', async () => {
    const events: number[] = [];
    const ds = await imageFolder(bad, { skipCorrupt: true, onProgress: (e) => events.push(e.done) });
    expect(ds.files).toEqual(['cls/good.jpg']);
    expect(ds.skipped.map((s) => s.path)).toEqual([broken, truncated]);
    expect(ds.skipped[0]!.reason).toContain(`imageFolder: cannot decode ${broken}`);
    expect(events.at(-1)).toBe(3);
  });

  it('rejects a missing root, a file, an empty folder and a class without images', async () => {
    const missing = join(dir, 'missing');
    await expect(imageFolder(missing)).rejects.toThrow(
      `cannot open image folder ${missing}: no such file or directory`,
    );
    await expect(imageFolder(broken)).rejects.toThrow(`imageFolder: ${broken} is not a directory`);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    writeFileSync(join(empty, 'loose.jpg'), 'x');
    await expect(imageFolder(empty)).rejects.toThrow(
      `imageFolder: no class folders in ${empty}; expected one sub-folder per class (${empty}/<class>/<image>), as torchvision's ImageFolder`,
    );
    const noImages = join(dir, 'no-images');
    mkdirSync(join(noImages, 'cats'), { recursive: true });
    mkdirSync(join(noImages, 'dogs'), { recursive: true });
    writeFileSync(join(noImages, 'dogs/readme.txt'), 'x');
    cpSync(join(bad, 'cls/good.jpg'), join(noImages, 'cats/a.jpg'));
    await expect(imageFolder(noImages)).rejects.toThrow(
      `imageFolder: found no valid file for the classes dogs in ${noImages}. Supported extensions are: .jpg, .jpeg, .png, .webp`,
    );
    await expect(imageFolder('')).rejects.toThrow('imageFolder: root must be a directory path, got ""');
  });

  it('fails when every file is bad, even with skipCorrupt', async () => {
    const allBad = join(dir, 'all-bad');
    mkdirSync(join(allBad, 'c'), { recursive: true });
    writeFileSync(join(allBad, 'c/a.png'), 'nope');
    await expect(imageFolder(allBad, { skipCorrupt: true })).rejects.toThrow(
      `imageFolder: none of the 1 image files in ${allBad} could be decoded (first: imageFolder: cannot decode ${join(allBad, 'c/a.png')}`,
    );
  });
});

describe('jpegSize', () => {
  it('reads the frame size of baseline and progressive JPEGs and refuses other bytes', async () => {
    for (const [w, h, progressive] of [
      [500, 375, false],
      [1, 1, false],
      [77, 300, true],
    ] as const) {
      const bytes = await sharp(photo(w, h, 1), raw(w, h, 3))
        .jpeg({ progressive })
        .withMetadata()
        .toBuffer();
      expect(jpegSize(bytes)).toEqual({ width: w, height: h });
    }
    expect(jpegSize(pngPixels)).toBeNull();
    expect(jpegSize(Uint8Array.from([0xff, 0xd8, 0xff]))).toBeNull();
  });
});
