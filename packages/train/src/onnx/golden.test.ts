import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { LoaderBatch } from '@compress/data';
import { createStudent, type Student, selectBackend } from '@compress/students';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CompressObjective } from '../objective.js';
import { paperLoss } from '../options.js';
import { compareStates } from './compare.test-util.js';
import { OnnxEngine } from './engine.js';

/**
 * The onnxruntime step engine against PyTorch: golden values of 3 momentum CompRess steps written
 * by tooling/reference/step_goldens.py (PyTorch's modules, autograd and torch.optim.SGD; the key's
 * EMA, key features in train mode, the two queues), from the same initial weights, batches,
 * teacher features and queues. Compared within 1e-5 (compareStates).
 */
interface Tensor {
  shape: number[];
  data: string;
}
interface Case {
  arch: string;
  width: number;
  side: number;
  lrs: number[];
  batch: number;
  teacherDim: number;
  queueSize: number;
  temperature: number;
  keyMomentum: number;
  momentum: number;
  weightDecay: number;
  channels: number;
  mean: number[];
  std: number[];
  initial: Record<string, Tensor>;
  queues: { teacher: string; student: string };
  images: string[];
  teacher: string[];
  after: {
    student: Record<string, Tensor>;
    key: Record<string, Tensor>;
    momentum: Record<string, Tensor>;
    queues: { teacher: string; student: string; pointer: number };
    losses: number[];
  };
}

const golden = JSON.parse(
  gunzipSync(readFileSync(new URL('./step-goldens.json.gz', import.meta.url))).toString('utf8'),
) as { cases: Case[] };

const floats = (b64: string) => {
  const bytes = Buffer.from(b64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
};

/** A PyTorch tensor in tfjs's layout for a variable of shape `want` (conv, depthwise, linear, vector). */
function toTfjs(t: Tensor, want: readonly number[], name: string): Float32Array {
  const x = tf.tensor(floats(t.data), t.shape);
  const perms =
    t.shape.length === 4
      ? [
          [2, 3, 1, 0],
          [2, 3, 0, 1],
        ]
      : t.shape.length === 2
        ? [[1, 0]]
        : [[0]];
  for (const perm of perms) {
    const y = tf.transpose(x, perm);
    if (y.shape.join() === want.join()) return y.dataSync() as Float32Array;
  }
  throw new Error(`${name}: PyTorch shape [${t.shape}] does not map to [${want}]`);
}

/** Pairs PyTorch's state_dict entries with a student's variables: parameters in order, buffers in order. */
function pairs(student: Student, torch: Record<string, Tensor>): [string, Tensor, tf.Variable][] {
  const isBuffer = (n: string) => /running_(mean|var)$/.test(n);
  const torchParams = Object.entries(torch).filter(([n]) => !isBuffer(n));
  const torchBuffers = Object.entries(torch).filter(([n]) => isBuffer(n));
  const ours = student.namedParameters();
  const buffers = student.namedBuffers();
  const out: [string, Tensor, tf.Variable][] = [];
  if (torchParams.length > 0) {
    expect(torchParams.length).toBe(ours.length);
    for (const [i, [n, t]] of torchParams.entries()) out.push([n, t, ours[i]![1]]);
  }
  expect(torchBuffers.length).toBe(buffers.length);
  for (const [i, [n, t]] of torchBuffers.entries()) out.push([n, t, buffers[i]![1]]);
  return out;
}

describe('OnnxEngine against PyTorch (3 momentum CompRess steps)', () => {
  beforeAll(async () => {
    await selectBackend({ log: () => {} });
  });

  for (const c of golden.cases) {
    const what = c.lrs.some((lr) => lr > 0)
      ? 'weights, momentum buffers, key encoder, running statistics, queues and losses'
      : `at lr 0 (ill-conditioned from its initialisation): running statistics, queues, losses${Object.keys(c.after.momentum).length > 0 ? ', summed gradients' : ''}`;
    it(`${c.arch} ×${c.width}: ${what} equal PyTorch's`, async () => {
      const student = createStudent(c.arch, {
        seed: 0,
        channels: c.channels,
        inputSize: c.side,
        width: c.width,
      });
      expect(student.spec.mean).toEqual(c.mean);
      expect(student.spec.std).toEqual(c.std);
      for (const [name, t, v] of pairs(student, c.initial))
        v.assign(tf.tensor(toTfjs(t, v.shape, name), v.shape));
      const engine = OnnxEngine.create(student, {
        method: 'momentum',
        optim: { lr: 0, momentum: c.momentum, weightDecay: c.weightDecay },
        seed: 0,
        loss: {
          ...paperLoss,
          queueSize: c.queueSize,
          temperature: c.temperature,
          keyMomentum: c.keyMomentum,
        },
        batchSize: c.batch,
        teacherDim: c.teacherDim,
        trainSize: 100_000,
        numClasses: 10,
        warn: () => {},
        threads: 1,
      });
      const host = (
        engine as unknown as {
          host: { objective: CompressObjective; optimizer: { buffers: Map<tf.Variable, tf.Variable> } };
        }
      ).host;
      const loss = host.objective.loss_;
      for (const [queue, values] of [
        [loss.teacherQueue, c.queues.teacher],
        [loss.studentQueue!, c.queues.student],
      ] as const) {
        queue.load({ ...queue.state(), values: floats(values), pointer: 0 });
      }
      const losses: number[] = [];
      for (let s = 0; s < 3; s++) {
        const batch = {
          images: floats(c.images[s]!),
          shape: [c.batch, c.side, c.side, c.channels],
          indices: Int32Array.from({ length: c.batch }, (_, i) => i),
        } as unknown as LoaderBatch;
        const teacher = { rows: c.batch, dim: c.teacherDim, data: floats(c.teacher[s]!) };
        losses.push(engine.step(batch, teacher, c.lrs[s]!).loss);
      }
      engine.sync();
      const got = new Map<string, Float32Array>();
      const want = new Map<string, Float32Array>();
      for (const [name, t, v] of pairs(student, c.after.student)) {
        want.set(name, toTfjs(t, v.shape, name));
        got.set(name, v.dataSync() as Float32Array);
      }
      for (const [name, t, v] of pairs(host.objective.key!, c.after.key)) {
        want.set(`key.${name}`, toTfjs(t, v.shape, name));
        got.set(`key.${name}`, v.dataSync() as Float32Array);
      }
      const params = new Map(pairs(student, c.initial).map(([name, , v]) => [name, v]));
      for (const [name, t] of Object.entries(c.after.momentum)) {
        const v = params.get(name)!;
        want.set(`momentum.${name}`, toTfjs(t, v.shape, name));
        got.set(`momentum.${name}`, host.optimizer.buffers.get(v)!.dataSync() as Float32Array);
      }
      want.set('queue.teacher', floats(c.after.queues.teacher));
      got.set('queue.teacher', loss.teacherQueue.values());
      want.set('queue.student', floats(c.after.queues.student));
      got.set('queue.student', loss.studentQueue!.values());
      want.set('losses', Float32Array.from(c.after.losses));
      got.set('losses', Float32Array.from(losses));
      expect(loss.teacherQueue.pointer).toBe(c.after.queues.pointer);
      // mobilenetv2-small's features at its initialisation: float32 PyTorch is itself 1.1e-5 from
      // float64 PyTorch on them, and moves by 1.8e-4 under a 1e-6 change of the input; ours (a
      // third float32 computation) is 7e-5 from float32 PyTorch on the key encoder's rows
      compareStates(got, want, c.arch.startsWith('mobilenetv2') ? { 'queue.student': 2e-4 } : {});
      engine.dispose();
      student.dispose();
    }, 120_000);
  }
});
