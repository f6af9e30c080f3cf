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

const size = async (png: Buffer) => {
  const m = await sharp(png).metadata();
  return [m.format, m.width, m.height];
};

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
