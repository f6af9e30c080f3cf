#!/usr/bin/env node
// @compress/data benchmark: loader throughput against torchvision's DataLoader, in the same run.
//
//  1. ImageFolder of 2000 JPEG photos (500×375, made here with sharp, cached in the temp dir) →
//     randomResizedCrop(224) + horizontalFlip → batches of 256, with 1 and 2 workers. Batches are
//     handed back with loader.release() once read, as the trainer does; one row each shows the
//     loader without release() and with the sharp decoder.
//  2. Fashion-MNIST train → randomResizedCrop(28, scale 0.35–1) + horizontalFlip → batches of 256.
//
// torchvision runs the same pipelines (PIL, DataLoader with the same num_workers), with and without
// GLIBC_TUNABLES=glibc.malloc.hugetlb=1; the faster counts. The first epoch warms up and is not
// timed. Run under `flock /tmp/compress-bench.lock` so benchmarks do not overlap.
// Writes bench-results/data.json at the repository root.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import {
  compose,
  createLoader,
  fashionMnist,
  horizontalFlip,
  imageFolder,
  randomResizedCrop,
  resizedCrop,
} from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..', '..');
const python = process.env.COMPRESS_PYTHON ?? '/usr/bin/python3';
const fmnistRoot = process.env.COMPRESS_FASHION_MNIST ?? '/usr/share/datasets/fashion-mnist';
const EPOCHS = Number(process.env.BENCH_EPOCHS ?? 2);
const IMAGES = 2000;

/** 2000 photo-like JPEGs (smooth colour fields with grain, quality 90, ~90 kB each) in 10 classes. */
async function makePhotos() {
  const root = join(tmpdir(), `compress-bench-jpeg-500x375-${IMAGES}-v1`);
  if (existsSync(join(root, 'done'))) return root;
  const W = 500;
  const H = 375;
  let s = 12345;
  const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const grain = await Promise.all(
    [0, 1, 2, 3].map(() =>
      sharp({
        create: { width: W, height: H, channels: 3, noise: { type: 'gaussian', mean: 128, sigma: 40 } },
      })
        .raw()
        .toBuffer(),
    ),
  );
  const jobs = [];
  for (let c = 0; c < 10; c++) {
    mkdirSync(join(root, `class${c}`), { recursive: true });
    for (let k = 0; k < IMAGES / 10; k++) {
      const base = Buffer.alloc(25 * 19 * 3);
      for (let i = 0; i < base.length; i++) base[i] = Math.floor(rand() * 256);
      const file = join(root, `class${c}`, `${String(k).padStart(4, '0')}.jpg`);
      jobs.push(() =>
        sharp(base, { raw: { width: 25, height: 19, channels: 3 } })
          .resize(W, H, { kernel: 'cubic' })
          .composite([
            { input: grain[k % 4], raw: { width: W, height: H, channels: 3 }, blend: 'soft-light' },
          ])
          .jpeg({ quality: 90 })
          .toFile(file),
      );
    }
  }
  console.log(`making ${IMAGES} JPEG photos in ${root} …`);
  let next = 0;
  await Promise.all(
    [0, 1, 2, 3].map(async () => {
      while (next < jobs.length) await jobs[next++]();
    }),
  );
  writeFileSync(join(root, 'done'), '');
  return root;
}

/** Our loader: one warm-up epoch, then EPOCHS timed; images/s and CPU seconds of the process. */
async function ours(dataset, transform, workers, { release = true } = {}) {
  const loader = createLoader(dataset, { batchSize: 256, transform, workers, seed: 0 });
  let n = 0;
  for await (const b of loader.iterate({ epoch: 0 })) {
    n += b.indices.length;
    if (release) loader.release(b);
  }
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  n = 0;
  let checksum = 0;
  for (let e = 1; e <= EPOCHS; e++) {
    for await (const b of loader.iterate({ epoch: e })) {
      n += b.indices.length;
      checksum += b.images[b.images.length >> 1];
      if (release) loader.release(b);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  await loader.close();
  return { images_per_s: n / seconds, cpu_s: (cpu.user + cpu.system) / 1e6, checksum };
}

function torchvision(mode, root, workers) {
  const runs = [];
  for (const hugetlb of [false, true]) {
    const env = { ...process.env };
    if (hugetlb) env.GLIBC_TUNABLES = 'glibc.malloc.hugetlb=1';
    else delete env.GLIBC_TUNABLES;
    try {
      const out = execFileSync(
        python,
        [join(here, 'torchvision_data.py'), mode, root, String(workers), String(EPOCHS)],
        {
          env,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      runs.push({ ...JSON.parse(out.trim().split('\n').at(-1)), hugetlb });
    } catch (error) {
      console.error(`torchvision ${mode} (workers ${workers}, hugetlb ${hugetlb}) failed: ${error.message}`);
    }
  }
  if (runs.length === 0) return null;
  return runs.reduce((a, b) => (b.images_per_s > a.images_per_s ? b : a));
}

/** Mean |difference| between a fused crop+resize and the Pillow-exact JS path, on real crops. */
async function nativeVsPillow(root, decoder) {
  const native = await imageFolder(root, { decoder });
  const exact = await imageFolder(root, { nativeResize: false });
  const t = randomResizedCrop(224);
  const { Rng } = await import('@compress/core');
  let sum = 0;
  let count = 0;
  for (let i = 0; i < 20; i++) {
    const index = i * 97;
    const a = (await native.getResized(index, (w, h) => t.plan(w, h, new Rng(i)))).image;
    const full = (await exact.get(index)).image;
    const p = t.plan(full.width, full.height, new Rng(i));
    const b = resizedCrop(full, p.crop, p.height, p.width);
    for (let k = 0; k < a.data.length; k++) sum += Math.abs(a.data[k] - b.data[k]);
    count += a.data.length;
  }
  return sum / count;
}

const rows = [];
function row(name, unit, o, ref, referenceName, extra = {}) {
  const ratio = ref ? o / ref : null;
  rows.push({ name, unit, ours: o, reference: ref, referenceName, ratio, higherIsBetter: true, ...extra });
  const f = (x) => (x === null || x === undefined ? 'missing' : x.toFixed(1));
  console.log(
    `${name.padEnd(46)} ${f(o).padStart(9)} ${f(ref).padStart(9)}  ${ratio === null ? 'missing' : `${ratio.toFixed(2)}×`}  ${unit}`,
  );
}

const startLoad = loadavg()[0];
console.log(
  `load average at start: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')} (other work on the machine affects the figures)`,
);
const photos = await makePhotos();
const photoSet = await imageFolder(photos);
console.log(`JPEG decoder: ${photoSet.decoder}`);
const photoTf = compose([randomResizedCrop(224), horizontalFlip()]);
const fm = await fashionMnist({ root: fmnistRoot });
const fmTf = compose([randomResizedCrop(28, { scale: [0.35, 1] }), horizontalFlip()]);

console.log(`\n${'benchmark'.padEnd(46)} ${'compress'.padStart(9)} ${'torchvis.'.padStart(9)}  ratio`);
let versions = {};
const photoRef = {};
for (const workers of [1, 2]) {
  const o = await ours(photoSet, photoTf, workers);
  const r = torchvision('imagefolder', photos, workers);
  photoRef[workers] = r;
  if (r) versions = { torch: r.torch, torchvision: r.torchvision, pillow: r.pillow };
  const name = `ImageFolder JPEG 500×375 → RRC224+flip, ${workers} worker${workers > 1 ? 's' : ''}`;
  const refName = `torchvision DataLoader num_workers=${workers}${r?.hugetlb ? ' (hugetlb malloc)' : ''}`;
  row(name, 'images/s', o.images_per_s, r?.images_per_s ?? null, refName, { decoder: photoSet.decoder });
  const oEff = (EPOCHS * IMAGES) / o.cpu_s; // images per CPU-second
  const rEff = r ? (EPOCHS * IMAGES) / r.cpu_s : null;
  row(`${name}, per CPU-second`, 'images/CPU-s', oEff, rEff, `torchvision (main process + workers)`);
}
{
  // The same with 2 workers, without handing batches back, and with the sharp decoder.
  const r = photoRef[2];
  const refName = `torchvision DataLoader num_workers=2${r?.hugetlb ? ' (hugetlb malloc)' : ''}`;
  const name = 'ImageFolder JPEG 500×375 → RRC224+flip, 2 workers';
  const kept = await ours(photoSet, photoTf, 2, { release: false });
  row(`${name}, batches not released`, 'images/s', kept.images_per_s, r?.images_per_s ?? null, refName);
  const viaSharp = await ours(await imageFolder(photos, { decoder: 'sharp' }), photoTf, 2);
  row(`${name}, sharp decoder`, 'images/s', viaSharp.images_per_s, r?.images_per_s ?? null, refName);
}
for (const workers of [1, 2]) {
  const o = await ours(fm, fmTf, workers);
  const r = torchvision('fashion-mnist', fmnistRoot, workers);
  row(
    `Fashion-MNIST train → RRC28+flip, ${workers} worker${workers > 1 ? 's' : ''}`,
    'images/s',
    o.images_per_s,
    r?.images_per_s ?? null,
    `torchvision DataLoader num_workers=${workers}${r?.hugetlb ? ' (hugetlb malloc)' : ''}`,
  );
}
const diff = await nativeVsPillow(photos, photoSet.decoder);
const sharpDiff = await nativeVsPillow(photos, 'sharp');
console.log(
  `\nfused crop+resize vs the Pillow-exact path on the same crops, mean |diff| in grey levels: ${photoSet.decoder} ${diff.toFixed(3)}, sharp ${sharpDiff.toFixed(3)}`,
);

const result = {
  package: '@compress/data',
  rows,
  machine: {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    sharp: sharp.versions.sharp,
    libvips: sharp.versions.vips,
    ...versions,
    loadAverageAtStart: Number(startLoad.toFixed(2)),
    timedEpochs: EPOCHS,
    jpegDecoder: photoSet.decoder,
    nativeVsPillowMeanAbsDiff: Number(diff.toFixed(3)),
    sharpVsPillowMeanAbsDiff: Number(sharpDiff.toFixed(3)),
  },
};
mkdirSync(join(repo, 'bench-results'), { recursive: true });
writeFileSync(join(repo, 'bench-results', 'data.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(`\nwrote ${join(repo, 'bench-results', 'data.json')}`);
