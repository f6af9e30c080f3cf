import { type Dataset, Rng, type Teacher } from '@compress/core';

/** `length` seeded random 16×16 gray images in 4 classes (label = index mod 4). */
export function randomDataset(length: number): Dataset {
  return {
    name: 'random',
    length,
    classes: ['a', 'b', 'c', 'd'],
    imageShape: [16, 16, 1],
    fingerprint: `random-${length}`,
    get(index) {
      const rng = new Rng(index);
      const data = Uint8Array.from({ length: 256 }, () => 1 + Math.floor(rng.next() * 254));
      return { index, label: index % 4, image: { data, height: 16, width: 16, channels: 1 } };
    },
  };
}

/** A custom teacher: 8 fixed projections of the pixels, weight `wave(pixel, output)`. */
export function projectionTeacher(wave: (p: number, j: number) => number): Teacher {
  return {
    dim: 8,
    async embed(batch) {
      const [b, h, w] = batch.shape;
      const data = new Float32Array(b * 8);
      for (let i = 0; i < b; i++)
        for (let p = 0; p < h * w; p++)
          for (let j = 0; j < 8; j++) data[i * 8 + j]! += batch.images[i * h * w + p]! * wave(p, j);
      return { rows: b, dim: 8, data };
    },
    dispose() {},
  };
}
