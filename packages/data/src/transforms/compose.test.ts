import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type RawImage, Rng } from '@compress/core';
import { afterAll, describe, expect, it } from 'vitest';
import { buildTransform, compose, moduleTransform } from './compose.js';
import { centerCrop, horizontalFlip, resize } from './geometry.js';
import { grayscaleToRgb, normalize, toFloat } from './pixel.js';
import { randomResizedCrop } from './random-resized-crop.js';
import type { TransformSpec } from './transform.js';

const dir = mkdtempSync(join(tmpdir(), 'compress-data-compose-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function image(h: number, w: number, c = 3): RawImage {
  const data = new Uint8Array(h * w * c);
  for (let i = 0; i < data.length; i++) data[i] = (i * 13) % 256;
  return { data, height: h, width: w, channels: c };
}

describe('compose', () => {
  it('applies the steps in order with one random stream, and flattens nested composes', () => {
    const t = compose([randomResizedCrop(16), compose([horizontalFlip(), toFloat()])]);
    expect(t.steps).toHaveLength(3);
    const img = image(40, 30);
    const r = new Rng(3);
    const manual = toFloat()(horizontalFlip()(randomResizedCrop(16)(img, r), r), r);
    expect(t(img, new Rng(3)).data).toEqual(manual.data);
  });

  it('has a JSON spec that rebuilds the same transform', async () => {
    const t = compose([
      randomResizedCrop(24, { scale: [0.2, 1] }),
      horizontalFlip(0.3),
      resize(20),
      centerCrop(16),
      grayscaleToRgb(),
      toFloat(),
      normalize([0.5], [0.25]),
    ]);
    const spec = JSON.parse(JSON.stringify(t.spec)) as TransformSpec;
    expect(spec).toEqual(t.spec);
    const rebuilt = await buildTransform(spec);
    const img = image(50, 40, 1);
    for (let seed = 0; seed < 5; seed++)
      expect(rebuilt(img, new Rng(seed)).data).toEqual(t(img, new Rng(seed)).data);
  });

  it('has no spec when a part is a plain function', () => {
    const t = compose([randomResizedCrop(8), (img) => img]);
    expect(t.spec).toBeNull();
  });

  it('rejects what is not a transform', () => {
    expect(() => compose([randomResizedCrop(8), 3 as never])).toThrow(
      'compose: transform 1 is not a function (got number)',
    );
  });
});

describe('moduleTransform', () => {
  const path = join(dir, 'invert.mjs');
  writeFileSync(
    path,
    `export function invert({ max }) {
       return (image) => ({ ...image, data: image.data.map((v) => max - v) });
     }
     export const notAFactory = 3;
     export function returnsNothing() {}`,
  );

  it('loads a factory from a module and keeps a spec that rebuilds it', async () => {
    const t = await moduleTransform(path, 'invert', { max: 255 });
    expect(t.spec).toEqual({
      kind: 'module',
      url: pathToFileURL(path).href,
      export: 'invert',
      options: { max: 255 },
    });
    const img = image(2, 2, 1);
    expect(Array.from(t(img, new Rng(0)).data)).toEqual(Array.from(img.data).map((v) => 255 - v));
    const again = await buildTransform(compose([t, horizontalFlip(1)]).spec!);
    expect(again(img, new Rng(0)).data).toEqual(horizontalFlip(1)(t(img, new Rng(0)), new Rng(0)).data);
  });

  it('says which module or export is wrong', async () => {
    await expect(moduleTransform(path, 'missing')).rejects.toThrow(
      `moduleTransform: module ${pathToFileURL(path).href} has no function export 'missing' (found: invert, notAFactory, returnsNothing)`,
    );
    await expect(moduleTransform(path, 'returnsNothing')).rejects.toThrow(
      `moduleTransform: export 'returnsNothing' of ${pathToFileURL(path).href} returned undefined, expected a transform function (image, rng) => image`,
    );
    await expect(moduleTransform(join(dir, 'nope.mjs'))).rejects.toThrow(
      `moduleTransform: cannot import module ${pathToFileURL(join(dir, 'nope.mjs')).href}`,
    );
  });
});

describe('buildTransform', () => {
  it('names the unknown kind and the known ones', async () => {
    await expect(buildTransform({ kind: 'colorJitter' } as never)).rejects.toThrow(
      'transform spec: unknown kind "colorJitter"; expected one of randomResizedCrop, horizontalFlip, resize, centerCrop, toFloat, normalize, grayscaleToRgb, compose, module',
    );
  });
});
