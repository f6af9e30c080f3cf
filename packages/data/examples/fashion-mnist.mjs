// Loads Fashion-MNIST (Debian's dataset-fashion-mnist, or the directory given as the first
// argument), augments it as the fashion-mnist preset does, and prints a summary of a few batches.
//
//   pnpm --filter @compress/data build && node packages/data/examples/fashion-mnist.mjs [root]
import { compose, createLoader, fashionMnist, horizontalFlip, randomResizedCrop } from '@compress/data';

const root = process.argv[2];
const train = await fashionMnist(root ? { split: 'train', root } : { split: 'train' });
console.log(
  `${train.name}: ${train.length} images of ${train.imageShape.join('×')}, ${train.classes.length} classes`,
);
console.log(`fingerprint ${train.fingerprint}`);

const transform = compose([randomResizedCrop(28, { scale: [0.35, 1] }), horizontalFlip(0.5)]);
const loader = createLoader(train, { batchSize: 256, shuffle: true, seed: 0, transform });
console.log(`loader: ${loader.stepsPerEpoch} batches per epoch, ${loader.options.workers} worker thread(s)`);

const start = performance.now();
let images = 0;
for await (const batch of loader.iterate({ epoch: 0 })) {
  images += batch.indices.length;
  if (batch.step < 3) {
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    for (const v of batch.images) {
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
    }
    const counts = new Array(train.classes.length).fill(0);
    for (const l of batch.labels) counts[l]++;
    console.log(
      `step ${batch.step}: images ${batch.shape.join('×')} (NHWC), values ${min.toFixed(3)}…${max.toFixed(3)} mean ${(sum / batch.images.length).toFixed(3)}`,
    );
    console.log(
      `  first indices ${Array.from(batch.indices.subarray(0, 6)).join(', ')}; labels per class ${counts.join(' ')}`,
    );
  }
}
const seconds = (performance.now() - start) / 1000;
console.log(
  `one epoch: ${images} images in ${seconds.toFixed(1)} s (${Math.round(images / seconds)} images/s)`,
);
await loader.close();
