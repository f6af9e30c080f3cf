import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from './backend.js';
import { loadStudent, readCheckpoint, restoreCheckpoint, saveCheckpoint } from './checkpoint.js';
import { KeyEncoder } from './ema.js';
import { createStudent } from './models/registry.js';
import { SGD } from './sgd.js';
import { trainStep } from './train.js';

describe('checkpoints', () => {
  let dir: string;
  beforeAll(async () => {
    await selectBackend({ backend: 'wasm', log: () => {} });
    dir = await mkdtemp(join(tmpdir(), 'compress-students-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('restores weights, BatchNorm statistics, key encoder and momentum buffers bit for bit', async () => {
    const student = createStudent('mobilenetv2-small', { seed: 2, inputSize: 16 });
    const key = KeyEncoder.of(student);
    const head = tf.variable(tf.randomNormal([1280, 4], 0, 0.01, 'float32', 3));
    const optimizer = new SGD({ lr: 0.03 });
    const x = tf.randomNormal([4, 16, 16, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
    const loss = () => tf.mean(tf.square(tf.matMul(student.features(x), head))) as tf.Scalar;
    for (let i = 0; i < 2; i++) {
      trainStep(student, loss, { optimizer, extraVariables: [head] });
      key.update(student);
    }
    const file = join(dir, 'a.ckpt');
    await saveCheckpoint(file, {
      student,
      key: key.model,
      optimizer,
      variables: { head },
      meta: { epoch: 3, step: 17 },
    });

    const student2 = createStudent('mobilenetv2-small', { seed: 2, inputSize: 16 }, { initialize: false });
    const key2 = createStudent('mobilenetv2-small', { seed: 2, inputSize: 16 }, { initialize: false });
    const head2 = tf.variable(tf.zeros([1280, 4]));
    const optimizer2 = new SGD({ lr: 1 });
    const meta = await restoreCheckpoint(file, {
      student: student2,
      key: key2,
      optimizer: optimizer2,
      variables: { head: head2 },
    });
    expect(meta).toEqual({ epoch: 3, step: 17 });
    expect(optimizer2.lr).toBe(0.03);
    for (const [a, b] of [
      [student, student2],
      [key.model, key2],
    ] as const) {
      for (const [i, [, v]] of b.stateDict().entries()) {
        expect(Array.from(v.dataSync())).toEqual(Array.from(a.stateDict()[i]![1].dataSync()));
      }
    }
    expect(optimizer2.buffers.size).toBe(optimizer.buffers.size);
    for (const [i, [, v]] of student.namedParameters().entries()) {
      const v2 = student2.namedParameters()[i]![1];
      expect(Array.from(optimizer2.buffers.get(v2)!.dataSync())).toEqual(
        Array.from(optimizer.buffers.get(v)!.dataSync()),
      );
    }
    // the same forward, bit for bit, in eval and in train mode; and the same next step
    for (const train of [false, true]) {
      student.train(train);
      student2.train(train);
      const a = tf.tidy(() => student.features(x));
      const b = tf.tidy(() => student2.features(x));
      expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
      tf.dispose([a, b]);
    }
    const l1 = trainStep(student, loss, { optimizer, extraVariables: [head] }).loss;
    const l2 = trainStep(
      student2,
      () => tf.mean(tf.square(tf.matMul(student2.features(x), head2))) as tf.Scalar,
      {
        optimizer: optimizer2,
        extraVariables: [head2],
      },
    ).loss;
    expect(l2).toBe(l1);

    const loaded = await loadStudent(file);
    expect(loaded.spec.name).toBe('mobilenetv2-small');
    const { header, data } = await readCheckpoint(file);
    const first = header.tensors[0]!;
    expect(first.name).toBe('student.features.0.0.weight');
    const n = first.shape.reduce((p, q) => p * q, 1);
    expect(Array.from(loaded.trainableVariables()[0]!.dataSync())).toEqual(
      Array.from(data.subarray(first.offset, first.offset + n)),
    );
    for (const m of [student, student2, key.model, key2, loaded]) m.dispose();
    tf.dispose([head, head2, x]);
    optimizer.dispose();
    optimizer2.dispose();
  }, 120_000);

  it('rejects another architecture, another file kind and a truncated file, saying which', async () => {
    const a = createStudent('alexnet-small', { seed: 1 });
    const file = join(dir, 'b.ckpt');
    await saveCheckpoint(file, { student: a });
    const other = createStudent('alexnet-small', { seed: 2 }, { initialize: false });
    await expect(restoreCheckpoint(file, { student: other })).rejects.toThrow(
      `${file}: the student is alexnet-small {"seed":1,"channels":1,"inputSize":28,"head":0,"width":1}, the model given is alexnet-small {"seed":2,"channels":1,"inputSize":28,"head":0,"width":1}`,
    );
    const bytes = await readFile(file);
    await writeFile(join(dir, 'c.ckpt'), bytes.subarray(0, bytes.length - 8));
    await expect(readCheckpoint(join(dir, 'c.ckpt'))).rejects.toThrow('(truncated?)');
    await writeFile(join(dir, 'd.ckpt'), 'hello world, not a checkpoint');
    await expect(readCheckpoint(join(dir, 'd.ckpt'))).rejects.toThrow(
      'is not a compress student checkpoint (expected magic CMPRSCKP)',
    );
    await expect(readCheckpoint(join(dir, 'missing.ckpt'))).rejects.toThrow('no such file or directory');
    a.dispose();
    other.dispose();
  });
});
