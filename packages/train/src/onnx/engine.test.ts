import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FeatureMatrix, Rng } from '@compress/core';
import type { LoaderBatch } from '@compress/data';
import { createStudent, type Student, selectBackend } from '@compress/students';
import { beforeAll, describe, expect, it } from 'vitest';
import { type StepEngine, TfjsEngine, type TfjsEngineOptions } from '../engine.js';
import type { Method } from '../options.js';
import { paperLoss } from '../options.js';
import { compareStates } from './compare.test-util.js';
import { OnnxEngine } from './engine.js';

/**
 * The onnxruntime engine against the TensorFlow.js engine from the same weights and batches:
 * weights, optimizer buffers, running statistics, key encoder and queues after 3 steps, within
 * 1e-5 (see compareStates).
 */
const B = 16;
const TEACHER_DIM = 8;

function batches(
  steps: number,
  side: number,
  channels: number,
): { batch: LoaderBatch; teacher: FeatureMatrix }[] {
  const rng = new Rng(5);
  return Array.from({ length: steps }, (_, s) => {
    const images = rng.fillUniform(new Float32Array(B * side * side * channels), 0, 1);
    const teacher = rng.fillUniform(new Float32Array(B * TEACHER_DIM), -1, 1);
    return {
      batch: {
        images,
        shape: [B, side, side, channels],
        indices: Int32Array.from({ length: B }, (_, i) => s * B + i),
        labels: Int32Array.from({ length: B }, (_, i) => (i * 7 + s) % 4),
      } as LoaderBatch,
      teacher: { rows: B, dim: TEACHER_DIM, data: teacher },
    };
  });
}

function engineOptions(method: Method, student: Student): TfjsEngineOptions {
  return {
    method,
    optim: { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 },
    seed: 1,
    loss: { ...paperLoss, queueSize: 64, temperature: 0.07, keyMomentum: 0.9, ccClusters: 5 },
    batchSize: B,
    teacherDim: TEACHER_DIM,
    trainSize: 1000,
    numClasses: 4,
    pseudoLabels: Int32Array.from({ length: 1000 }, (_, i) => (i * 3) % 5),
    warn: () => {},
    student,
  } as TfjsEngineOptions;
}

/** Every saved tensor of an engine's checkpoint after `steps` steps, by name. */
async function run(
  engine: StepEngine,
  steps: ReturnType<typeof batches>,
  lrs: number[],
): Promise<Map<string, Float32Array>> {
  const losses: number[] = [];
  for (const [i, { batch, teacher }] of steps.entries()) {
    losses.push(engine.step(batch, engine.needsTeacher ? teacher : null, lrs[i]!).loss);
  }
  engine.sync();
  const dir = await mkdtemp(join(tmpdir(), 'compress-engine-'));
  await engine.state(dir, { method: engine.method, epoch: 0, step: steps.length, globalStep: steps.length });
  const { readCheckpoint } = await import('@compress/students');
  const { header, data } = await readCheckpoint(join(dir, 'student.ckpt'));
  const out = new Map<string, Float32Array>();
  for (const t of header.tensors) {
    out.set(t.name, data.subarray(t.offset, t.offset + t.shape.reduce((a, b) => a * b, 1)));
  }
  out.set('loss', Float32Array.from(losses));
  const state =
    (engine as unknown as { host?: TfjsEngine }).host?.objective ?? (engine as TfjsEngine).objective;
  const s = state.state() as {
    teacherQueue?: { values: Float32Array };
    studentQueue?: { values: Float32Array } | null;
  } | null;
  if (s?.teacherQueue) out.set('queue.teacher', s.teacherQueue.values);
  if (s?.studentQueue) out.set('queue.student', s.studentQueue.values);
  return out;
}

/**
 * Training BatchNorm students from their initialisation is ill-conditioned in float32 on any
 * engine: TensorFlow.js against itself, with a 1e-6 change of some pixels, moves mobilenetv2-small's
 * first-layer weights after 3 steps by 0.87 of their scale (its gradients alone by 1e-2), and
 * PyTorch against itself moves resnet18-small's by up to 10% (tooling/reference/step_goldens.py).
 * Their cases run at lr 0: the weights stay, the running statistics, queues and losses are compared,
 * and for resnet18-small the momentum buffers, i.e. the gradients summed over the steps (for
 * mobilenetv2-small not even those: `noBuffers`). SGD itself is held to 1e-5 by the alexnet-small
 * cases; the BatchNorm layers' gradients by the students package's layer tests.
 */
const cases: {
  method: Method;
  arch: string;
  side: number;
  channels: number;
  width: number;
  lr0?: boolean;
  noBuffers?: boolean;
}[] = [
  { method: 'momentum', arch: 'alexnet-small', side: 16, channels: 1, width: 0.125 },
  { method: 'no-momentum', arch: 'resnet18-small', side: 16, channels: 3, width: 0.125, lr0: true },
  {
    method: 'one-queue',
    arch: 'mobilenetv2-small',
    side: 16,
    channels: 3,
    width: 0.5,
    lr0: true,
    noBuffers: true,
  },
  { method: 'reg', arch: 'alexnet-small', side: 16, channels: 1, width: 0.125 },
  { method: 'reg-bn', arch: 'resnet18-small', side: 16, channels: 1, width: 0.125, lr0: true },
  { method: 'cc', arch: 'alexnet-small', side: 16, channels: 1, width: 0.125 },
  {
    method: 'supervised',
    arch: 'mobilenetv2-small',
    side: 16,
    channels: 1,
    width: 0.5,
    lr0: true,
    noBuffers: true,
  },
];

describe('OnnxEngine', () => {
  beforeAll(async () => {
    await selectBackend({
      log: () => {},
      ...(process.env.TEST_BACKEND ? { backend: process.env.TEST_BACKEND as 'cpu' } : {}),
      ...(process.env.TEST_KERNELS ? { kernels: process.env.TEST_KERNELS as 'wasm' } : {}),
    });
  });

  for (const c of cases) {
    it(`${c.method} on ${c.arch}: 3 steps equal the tfjs engine's (weights, buffers, key, queues)`, async () => {
      const make = () => {
        const s = createStudent(c.arch, { seed: 2, channels: c.channels, inputSize: c.side, width: c.width });
        return s;
      };
      const steps = batches(3, c.side, c.channels);
      const s1 = make();
      const tfjs = new TfjsEngine(s1, engineOptions(c.method, s1));
      const lrs = c.lr0 ? [0, 0, 0] : [0.05, 0.05, 0.01];
      const want = await run(tfjs, steps, lrs);
      const s2 = make();
      const onnx = OnnxEngine.create(s2, { ...engineOptions(c.method, s2), threads: 1 });
      const got = await run(onnx, steps, lrs);
      if (c.noBuffers)
        for (const name of [...want.keys()].filter((n) => n.startsWith('momentum.'))) want.delete(name);
      if (!c.noBuffers) expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      compareStates(got, want);
      tfjs.dispose();
      onnx.dispose();
      s1.dispose();
      s2.dispose();
    }, 120_000);
  }
});
