import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectionTeacher, randomDataset } from './fixtures.test-util.js';
import { train } from './train.js';
import { Trainer, type TrainOptions } from './trainer.js';

const dataset = randomDataset(96);
const teacher = projectionTeacher((p, j) => Math.sin(p * 0.37 + j));

const options: TrainOptions = {
  dataset,
  teacher,
  method: 'momentum',
  student: { arch: 'alexnet-small', width: 0.125 },
  seed: 3,
  loss: { queueSize: 32 },
  optim: { batchSize: 16, epochs: 2, maxSteps: 8, milestones: [1] },
  schedule: { checkpointEvery: 3, logEvery: 1, monitorEvery: 0 },
  workers: 0,
};

describe('@compress/train', () => {
  it('Trainer steps one step at a time, across an epoch end and a milestone, to the same student as train()', async () => {
    const trainer = await Trainer.create(options);
    expect([trainer.stepsPerEpoch, trainer.totalSteps]).toEqual([6, 8]);
    const events = [];
    for await (const e of trainer.steps()) events.push(e);
    expect(events.map((e) => e.globalStep)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(events.map((e) => e.lr)).toEqual([...new Array(6).fill(0.01), 0.002, 0.002]);
    expect(events.filter((e) => e.endOfEpoch).map((e) => e.globalStep)).toEqual([6]);
    expect(events.every((e) => Number.isFinite(e.loss))).toBe(true);
    expect(await trainer.step()).toBeNull();
    await trainer.close();

    const dir = await mkdtemp(join(tmpdir(), 'compress-train-lib-'));
    const result = await train({ ...options, runDir: dir });
    expect(result).toMatchObject({ steps: 8, stopped: false, finalLoss: events.at(-1)!.loss });
    const weights = (s: typeof trainer.student) =>
      s.trainableVariables().map((v) => Array.from(v.dataSync()));
    expect(weights(result.student)).toEqual(weights(trainer.student));
    expect(await readdir(join(dir, 'checkpoints'))).toEqual(['latest.json', 'step-00000008']);
    expect(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))).toMatchObject({
      method: 'momentum',
      seed: 3,
    });
    trainer.student.dispose();
    result.student.dispose();
  }, 120_000);

  it('trains without a run directory and writes nothing; a teacher is required', async () => {
    const result = await train({ ...options, method: 'one-queue', optim: { ...options.optim, maxSteps: 2 } });
    expect([result.steps, result.checkpoint, Number.isFinite(result.finalLoss)]).toEqual([2, '', true]);
    result.student.dispose();
    await expect(train({ ...options, teacher: null })).rejects.toThrow(/the momentum method needs a teacher/);
  }, 60_000);
});
