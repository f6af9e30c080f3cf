import { featureMatrix, Rng } from '@compress/core';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import {
  barChartPng,
  clusterMontagePng,
  confusionHeatmapPng,
  embeddingScatterPng,
  lineChartPng,
} from './pictures.js';
import { palette } from './svg.js';

const size = async (png: Buffer) => {
  const m = await sharp(png).metadata();
  return [m.format, m.width, m.height];
};

/** The RGB of a `#rrggbb` colour. */
const rgb = (hex: string) => [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));

/**
 * Heights in pixels of the bars filled with `colour`, left to right: each maximal run of columns
 * holding that colour is one bar, measured in its middle column.
 */
async function barHeights(png: Buffer, colour: string): Promise<number[]> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const [r, g, b] = rgb(colour);
  const hit = (x: number, y: number) => {
    const o = (y * info.width + x) * 3;
    return (
      Math.abs(data[o]! - r!) <= 2 && Math.abs(data[o + 1]! - g!) <= 2 && Math.abs(data[o + 2]! - b!) <= 2
    );
  };
  const columnCount = (x: number) => {
    let n = 0;
    for (let y = 0; y < info.height; y++) if (hit(x, y)) n++;
    return n;
  };
  const heights: number[] = [];
  let start = -1;
  for (let x = 0; x <= info.width; x++) {
    const inBar = x < info.width && columnCount(x) > 14; // taller than the 12-px legend swatch
    if (inBar && start < 0) start = x;
    if (!inBar && start >= 0) {
      heights.push(columnCount(Math.floor((start + x - 1) / 2)));
      start = -1;
    }
  }
  return heights;
}

describe('pictures', () => {
  it('draws a confusion heat-map and refuses a wrong-sized matrix', async () => {
    const png = await confusionHeatmapPng([5, 1, 0, 7], ['c0', 'c1'], ['a', 'b'], { title: 't' });
    expect((await size(png))[0]).toBe('png');
    await expect(confusionHeatmapPng([1, 2, 3], ['a', 'b'], ['x', 'y'])).rejects.toThrow(
      'confusionHeatmapPng: matrix has 3 cells, expected 2×2',
    );
  });

  it('draws a montage of cluster members from a dataset', async () => {
    const rng = new Rng(0);
    const dataset = {
      name: 'toy',
      length: 40,
      classes: ['a', 'b'],
      imageShape: [8, 8, 1] as const,
      fingerprint: 'toy',
      get: (index: number) => ({
        index,
        label: index % 2,
        image: {
          data: Uint8Array.from({ length: 64 }, () => rng.int(256)),
          height: 8,
          width: 8,
          channels: 1,
        },
      }),
    };
    const png = await clusterMontagePng(
      dataset,
      Array.from({ length: 40 }, (_, i) => i % 4),
      {
        clusters: 3,
        perCluster: 5,
        tile: 16,
        rowLabel: (c) => `cluster ${c}`,
      },
    );
    const [, w, h] = await size(png);
    expect(h).toBe(3 * 18 + 2);
    expect(w).toBe(190 + 5 * 18 + 2);
  });

  it('draws bars whose heights are the values on the y range', async () => {
    const values = [80, 40, null, 100, 20];
    const png = await barChartPng(['a', 'b', 'c', 'd', 'e'], [{ name: 'NN', values }], { yRange: [0, 100] });
    const heights = await barHeights(png, palette(0));
    expect(heights).toHaveLength(4); // the null value draws no bar
    const full = heights[2]!; // the bar of 100 spans the plot
    const drawn = [80, 40, 100, 20];
    for (const [i, h] of heights.entries())
      expect(Math.abs(h - (drawn[i]! / 100) * full)).toBeLessThanOrEqual(1.5);
    // A second series is drawn in its own colour beside the first, bar for bar.
    const two = await barChartPng(
      ['a', 'b'],
      [
        { name: 'NN', values: [50, 100] },
        { name: 'CA', values: [25, 75] },
      ],
    );
    const [nn, ca] = [await barHeights(two, palette(0)), await barHeights(two, palette(1))];
    expect(nn).toHaveLength(2);
    expect(ca).toHaveLength(2);
    expect(Math.abs(nn[0]! * 2 - nn[1]!)).toBeLessThanOrEqual(2);
    expect(Math.abs(ca[0]! * 4 - nn[1]!)).toBeLessThanOrEqual(3);
    expect(Math.abs(ca[1]! / nn[1]! - 0.75)).toBeLessThan(0.01);
  });

  it('draws an embedding scatter, a bar chart and a line chart', async () => {
    const rng = new Rng(2);
    const f = featureMatrix(60, 5, rng.fillNormal(new Float32Array(300)));
    const labels = Array.from({ length: 60 }, (_, i) => i % 3);
    expect((await size(await embeddingScatterPng(f, labels, { title: 'umap' })))[0]).toBe('png');
    expect((await size(await barChartPng(['a', 'b'], [{ name: 'NN', values: [80, null] }])))[0]).toBe('png');
    expect(
      (
        await size(
          await lineChartPng([256, 1024, 4096], [{ name: 'NN', values: [70, 75, 80] }], { logX: true }),
        )
      )[0],
    ).toBe('png');
  });
});
