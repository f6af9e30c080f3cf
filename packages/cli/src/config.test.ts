import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from './config.js';
import { parseNormalize } from './flags.js';
import { resolveConfig } from './options.js';
import { presetConfig } from './presets.js';

describe('config', () => {
  it('resolves preset, budget and method, then file, then flags', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'run.yaml');
    await writeFile(file, 'budget: quick\nloss:\n  temperature: 0.07\noptim:\n  lr: 0.02\n');
    const c = await resolveConfig({ config: file, lr: '0.03', method: 'one-queue' });
    expect(c.preset).toBe('fashion-mnist');
    expect(c.budget).toBe('quick');
    expect(c.method).toBe('one-queue');
    expect(c.loss.temperature).toBe(0.07);
    expect(c.optim.lr).toBe(0.03);
    expect(c.optim.maxSteps).toBe(presetConfig('fashion-mnist', 'quick', 'momentum').optim.maxSteps);
    expect(c.loss.queueSize).toBe(8192);
  });

  it("keeps the paper's settings in the imagenet preset", () => {
    const c = presetConfig('imagenet', 'full', 'momentum');
    expect(c.loss).toMatchObject({ temperature: 0.04, queueSize: 128000, keyMomentum: 0.999 });
    expect(c.optim).toMatchObject({
      batchSize: 256,
      epochs: 130,
      lr: 0.01,
      momentum: 0.9,
      weightDecay: 1e-4,
      milestones: [90, 120],
      gamma: 0.2,
    });
    expect(c.augment).toMatchObject({ size: 224, scale: [0.08, 1], flip: true });
  });

  it('names an unknown key, with the key it probably meant', () => {
    const c = presetConfig('fashion-mnist', 'quick', 'momentum') as unknown as Record<
      string,
      Record<string, unknown>
    >;
    c.optim!.lrr = 0.1;
    expect(() => validateConfig(c, 'run.yaml')).toThrow(
      /run\.yaml: unknown key "optim\.lrr" \(did you mean "optim\.lr"\?\); known keys of optim: batchSize, epochs, lr,/,
    );
  });

  it('names a bad value', async () => {
    const c = presetConfig('fashion-mnist', 'quick', 'momentum') as unknown as Record<
      string,
      Record<string, unknown>
    >;
    c.loss!.temperature = -1;
    expect(() => validateConfig(c)).toThrow(/config: "loss\.temperature": Too small/);
    await expect(resolveConfig({ method: 'distill' })).rejects.toThrow(
      '--method: expected one of momentum, no-momentum, one-queue, reg, reg-bn, cc, supervised, found "distill"',
    );
    await expect(resolveConfig({ epochs: '2.5' })).rejects.toThrow(
      '--epochs: expected an integer, found "2.5"',
    );
    await expect(resolveConfig({ config: '/nonexistent/run.yaml' })).rejects.toThrow(
      /config file \/nonexistent\/run\.yaml cannot be read/,
    );
  });

  it('takes the teacher thread count from --teacher-threads', async () => {
    expect((await resolveConfig({ teacherThreads: '2' })).teacher.threads).toBe(2);
    await expect(resolveConfig({ teacherThreads: 'two' })).rejects.toThrow(
      '--teacher-threads: expected an integer, found "two"',
    );
    await expect(resolveConfig({ teacherThreads: '-1' })).rejects.toThrow(/teacher\.threads/);
  });

  it('parses --teacher-normalize', () => {
    expect(parseNormalize('imagenet')).toBe('imagenet');
    expect(parseNormalize('0.5,0.25')).toEqual({ mean: [0.5], std: [0.25] });
    expect(parseNormalize('1,2,3,4,5,6')).toEqual({ mean: [1, 2, 3], std: [4, 5, 6] });
    expect(() => parseNormalize('0.5')).toThrow(
      '--teacher-normalize: expected imagenet, none, "mean,std" or "m1,…,mC,s1,…,sC", found "0.5"',
    );
  });
});
