import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStudent, exportOnnx, selectBackend } from '@compress/students';
import { RunDir } from '@compress/train';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { projectionTeacherSource } from './cli-harness.test-util.js';
import type { Config } from './config.js';
import { presetConfig } from './presets.js';
import type { Reporter } from './progress.js';
import { train } from './train.js';

const silent: Reporter = { info: () => {}, progress: () => {}, done: () => {} };
let dir: string;
let teacherModule: string;

const teacherSource = projectionTeacherSource();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'compress-train-'));
  teacherModule = join(dir, 'teacher.mjs');
  await writeFile(teacherModule, teacherSource);
  await selectBackend({ log: () => {} });
});

function tinyConfig(method: Config['method']): Config {
  const c = presetConfig('fashion-mnist', 'quick', method);
  c.data = { ...c.data, trainSubset: 256, workers: 0 };
  c.teacher.source = teacherModule;
  c.student = { ...c.student, arch: 'alexnet-small', width: 0.125 };
  c.loss.queueSize = 64;
  c.optim = { ...c.optim, batchSize: 32, epochs: 1, maxSteps: 6, milestones: [] };
  c.schedule = { checkpointEvery: 2, logEvery: 1, monitorEvery: 0, monitorSize: 0 };
  return c;
}

describe('train', () => {
  it('stopped mid-epoch and resumed, reaches the same weights and queues as an unbroken run (momentum)', async () => {
    const config = tinyConfig('momentum');
    const whole = await train({ config, out: join(dir, 'whole'), reporter: silent });
    expect(whole.steps).toBe(6);
    expect(Number.isFinite(whole.finalLoss)).toBe(true);

    const controller = new AbortController();
    const stopping: Reporter = {
      ...silent,
      progress: (e) => {
        if (e.done === 3) controller.abort();
      },
    };
    const first = await train({
      config,
      out: join(dir, 'broken'),
      reporter: stopping,
      signal: controller.signal,
    });
    expect(first).toMatchObject({ stopped: true, steps: 3 });
    await expect(train({ config, out: join(dir, 'broken'), reporter: silent })).rejects.toThrow(
      /already holds a run \(checkpoint at step 3\); pass --resume/,
    );
    const resumed = await train({ config, out: join(dir, 'broken'), reporter: silent, resume: true });
    expect(resumed).toMatchObject({ stopped: false, steps: 6 });
    expect((await readFile(resumed.checkpoint)).equals(await readFile(whole.checkpoint))).toBe(true);
    const state = (p: string) => readFile(join(p, '..', 'state.bin'));
    expect((await state(resumed.checkpoint)).equals(await state(whole.checkpoint))).toBe(true);
  }, 120_000);

  it('trains a smaller student with a released student as its teacher (pretrained:<name>)', async () => {
    const config = tinyConfig('momentum');
    config.teacher = { ...config.teacher, source: 'pretrained:fashion-mnist/momentum', threads: 1 };
    config.optim.maxSteps = 2;
    const r = await train({ config, out: join(dir, 'pretrained-teacher'), reporter: silent });
    expect([r.steps, Number.isFinite(r.finalLoss)]).toEqual([2, true]);
  }, 120_000);

  it('refuses to resume with other settings', async () => {
    const config = tinyConfig('momentum');
    const changed = { ...config, loss: { ...config.loss, temperature: 0.1 } };
    await expect(
      train({ config: changed, out: join(dir, 'whole'), reporter: silent, resume: true }),
    ).rejects.toThrow(/was made with other settings \(loss\.temperature: 0\.04 there, 0\.1 now\)/);
  });

  it('trains every baseline for a few steps', async () => {
    for (const method of ['one-queue', 'no-momentum', 'reg', 'reg-bn', 'supervised'] as const) {
      const config = tinyConfig(method);
      config.optim.maxSteps = 2;
      const r = await train({ config, out: join(dir, method), reporter: silent });
      expect([method, r.steps, Number.isFinite(r.finalLoss)]).toEqual([method, 2, true]);
    }
    const cc = tinyConfig('cc');
    cc.optim.maxSteps = 2;
    cc.loss.ccClusters = 8;
    expect((await train({ config: cc, out: join(dir, 'cc'), reporter: silent })).steps).toBe(2);
  }, 120_000);

  it('continues a run killed with SIGKILL from its last periodic checkpoint (the CLI)', async () => {
    const config = tinyConfig('no-momentum');
    config.optim.maxSteps = 8;
    const file = join(dir, 'kill.json');
    await writeFile(file, JSON.stringify(config));
    const bin = new URL('../dist/bin.js', import.meta.url).pathname;
    const out = join(dir, 'killed');
    const child = spawn(process.execPath, [bin, 'train', '--config', file, '--out', out, '--quiet'], {
      stdio: 'ignore',
    });
    await new Promise<void>((resolve, reject) => {
      const poll = setInterval(async () => {
        const text = await readFile(join(out, 'metrics.jsonl'), 'utf8').catch(() => '');
        if (text.includes('"step":5,')) {
          clearInterval(poll);
          child.kill('SIGKILL');
          resolve();
        }
      }, 50);
      child.on('exit', () => {
        clearInterval(poll);
        reject(new Error('the run finished before it could be killed'));
      });
    });
    await new Promise((r) => child.once('exit', r));
    const latest = await (await RunDir.open(out)).latestCheckpoint();
    expect(latest!.step).toBeGreaterThanOrEqual(4);
    expect(latest!.step).toBeLessThan(8);
    const resumed = await train({ config, out, reporter: silent, resume: true });
    const whole = await train({ config, out: join(dir, 'unkilled'), reporter: silent });
    expect((await readFile(resumed.checkpoint)).equals(await readFile(whole.checkpoint))).toBe(true);
  }, 120_000);

  it('starts the imagenet preset on a small ImageFolder with an ONNX teacher', async () => {
    const root = join(dir, 'imagenet');
    for (const split of ['train', 'val']) {
      for (const cls of ['n01', 'n02']) {
        await mkdir(join(root, split, cls), { recursive: true });
        for (let i = 0; i < 4; i++) {
          await sharp({
            create: {
              width: 64 + i * 8,
              height: 48,
              channels: 3,
              background: { r: 40 * i, g: cls === 'n01' ? 200 : 20, b: 90 },
            },
          })
            .jpeg()
            .toFile(join(root, split, cls, `${i}.jpg`));
        }
      }
    }
    const teacherNet = createStudent('resnet18', { width: 0.125, seed: 7 });
    const onnx = join(dir, 'teacher.onnx');
    await exportOnnx(teacherNet, onnx);
    teacherNet.dispose();
    const config = presetConfig('imagenet', 'quick', 'momentum');
    config.data = { ...config.data, root, workers: 0 };
    config.teacher = { ...config.teacher, source: onnx, providers: 'cpu', threads: 1 };
    config.student = { ...config.student, arch: 'resnet18', width: 0.125 };
    config.loss.queueSize = 6;
    config.optim = { ...config.optim, batchSize: 2, maxSteps: 2 };
    config.schedule.monitorSize = 0;
    const r = await train({ config, out: join(dir, 'imagenet-run'), reporter: silent });
    expect(r.steps).toBe(2);
    expect(Number.isFinite(r.finalLoss)).toBe(true);
  }, 120_000);
});
