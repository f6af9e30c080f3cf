import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStudent, selectBackend } from '@compress/students';
import { beforeAll, describe, expect, it } from 'vitest';
import { TfjsEngine } from './engine.js';
import { createEngine } from './engine-choice.js';
import { projectionTeacher, randomDataset } from './fixtures.test-util.js';
import { OnnxEngine } from './onnx/engine.js';
import { paperLoss } from './options.js';
import { train } from './train.js';
import type { TrainOptions } from './trainer.js';

const dataset = randomDataset(64);
const teacher = projectionTeacher((p, j) => Math.cos(p * 0.21 + j));

const options: TrainOptions = {
  dataset,
  teacher,
  method: 'momentum',
  student: { arch: 'alexnet-small', width: 0.125 },
  seed: 5,
  loss: { queueSize: 32 },
  optim: { batchSize: 16, epochs: 2, maxSteps: 6, milestones: [1] },
  schedule: { checkpointEvery: 2, logEvery: 1, monitorEvery: 0 },
  workers: 0,
};

/** Trains into `dir`, stopping after step `stopAt` (a checkpoint is saved there) when given. */
async function run(dir: string, engine: 'onnxruntime' | 'tfjs', resume: boolean, stopAt?: number) {
  const signal = new AbortController();
  return train({
    ...options,
    engine,
    runDir: dir,
    resume,
    signal: signal.signal,
    onProgress: (e) => {
      if (e.done === stopAt) signal.abort();
    },
  });
}
const weights = (s: { trainableVariables(): { dataSync(): ArrayLike<number> }[] }) =>
  s.trainableVariables().map((v) => Array.from(v.dataSync()));

describe('the step engine choice', () => {
  beforeAll(async () => {
    await selectBackend({ log: () => {} });
  });

  it('creates the engine asked for; auto is onnxruntime where it is installed; a bad name is refused', () => {
    const lines: string[] = [];
    const student = createStudent('alexnet-small', { seed: 1, inputSize: 16, width: 0.125 });
    const base = {
      method: 'momentum' as const,
      optim: { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 },
      seed: 1,
      loss: { ...paperLoss, queueSize: 32 },
      batchSize: 16,
      teacherDim: 8,
      trainSize: 64,
      numClasses: 4,
      warn: () => {},
      threads: 1,
      log: (m: string) => lines.push(m),
    };
    for (const [choice, kind] of [
      ['tfjs', TfjsEngine],
      ['onnxruntime', OnnxEngine],
      ['auto', OnnxEngine],
    ] as const) {
      const engine = createEngine(choice, student, base);
      expect(engine).toBeInstanceOf(kind);
      engine.dispose();
    }
    expect(lines).toEqual([
      'step engine: tfjs',
      'step engine: onnxruntime, one graph per step (1 thread)',
      'step engine: onnxruntime, one graph per step (1 thread)',
    ]);
    expect(() => createEngine('fast' as 'auto', student, base)).toThrow(
      /engine must be 'auto', 'onnxruntime' or 'tfjs', found "fast"/,
    );
    student.dispose();
  });

  it('a killed run resumes bit-identically on onnxruntime; config.json says which engine ran', async () => {
    const whole = await mkdtemp(join(tmpdir(), 'compress-engine-whole-'));
    const a = await run(whole, 'onnxruntime', false);
    expect([a.steps, a.engine]).toEqual([6, 'onnxruntime']);
    const broken = await mkdtemp(join(tmpdir(), 'compress-engine-broken-'));
    const first = await run(broken, 'onnxruntime', false, 3);
    expect([first.steps, first.stopped]).toEqual([3, true]);
    first.student.dispose();
    const b = await run(broken, 'onnxruntime', true);
    expect(b.steps).toBe(6);
    expect(weights(b.student)).toEqual(weights(a.student));
    expect(b.finalLoss).toBe(a.finalLoss);
    const config = JSON.parse(await readFile(join(broken, 'config.json'), 'utf8'));
    expect(config.ran).toEqual({ engine: 'onnxruntime' });
    a.student.dispose();
    b.student.dispose();
  }, 120_000);

  it('checkpoints are the same files for both engines: a run resumes on the other engine', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'compress-engine-switch-'));
    const first = await run(dir, 'onnxruntime', false, 2);
    first.student.dispose();
    const tfjs = await run(dir, 'tfjs', true);
    expect([tfjs.steps, tfjs.engine]).toEqual([6, 'tfjs']);
    expect(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).ran).toEqual({ engine: 'tfjs' });
    // and the same 6 steps on tfjs alone end where the switched run does, to float32 rounding
    const alone = await run(await mkdtemp(join(tmpdir(), 'compress-engine-tfjs-')), 'tfjs', false);
    const [x, y] = [weights(tfjs.student).flat(), weights(alone.student).flat()];
    const scale = Math.max(...y.map(Math.abs));
    expect(Math.max(...x.map((v, i) => Math.abs(v - y[i]!))) / scale).toBeLessThan(1e-5);
    tfjs.student.dispose();
    alone.student.dispose();
  }, 120_000);
});
