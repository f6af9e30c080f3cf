/**
 * The loader's worker thread: reopens the dataset and rebuilds the transform from their specs,
 * then turns batch requests `{ id, seed, epoch, step, indices }` into batches, transferred back
 * without copying. Several requests are worked on at once, so decoding of the next batch (on
 * sharp's native threads) overlaps batching of the current one.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CompressError } from '@compress/core';
import { newBatchArray } from './datasets/jpeg-native.js';
import { openDataset } from './datasets/spec.js';
import { loadBatch } from './pipeline.js';
import { buildTransform } from './transforms/compose.js';
import type { WorkerData, WorkerReply, WorkerRequest } from './worker-protocol.js';

const port = parentPort;
if (!port) throw new Error('@compress/data worker: must run as a worker thread');
const data = workerData as WorkerData;

const ready = (async () => {
  const dataset = await openDataset(data.dataset);
  const transform = data.transform === null ? null : await buildTransform(data.transform);
  return { dataset, transform };
})();
ready.catch(() => {}); // reported with each request below

function serialiseError(error: unknown): WorkerReply & { type: 'error' } {
  const e = error as Partial<CompressError> & Error;
  return {
    type: 'error',
    id: -1,
    spare: null,
    error: {
      code: e instanceof CompressError ? e.code : undefined,
      message: e?.message ?? String(error),
      input: e instanceof CompressError ? e.input : undefined,
      stack: e?.stack,
    },
  };
}

port.on('message', async (req: WorkerRequest) => {
  let spare = req.spare;
  const allocate = (length: number): Float32Array => {
    if (spare !== null && spare.byteLength === length * 4) {
      const images = new Float32Array(spare);
      spare = null;
      return images;
    }
    return newBatchArray(length);
  };
  try {
    const { dataset, transform } = await ready;
    const batch = await loadBatch(
      dataset,
      transform,
      req.seed,
      req.epoch,
      req.step,
      req.indices,
      data.concurrency,
      allocate,
    );
    const reply: WorkerReply = { type: 'batch', id: req.id, batch, spare };
    const transfer = [batch.images.buffer, batch.indices.buffer, batch.labels.buffer] as ArrayBuffer[];
    port.postMessage(reply, spare === null ? transfer : [...transfer, spare]);
  } catch (error) {
    port.postMessage({ ...serialiseError(error), id: req.id, spare }, spare === null ? [] : [spare]);
  }
});
