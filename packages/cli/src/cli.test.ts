// The command line as a user meets it: every failure is one message naming the input, a documented
// exit code, one `{ "error": … }` object on stdout with --json, no stack trace (unless --debug), and
// nothing lost or changed by a refused command. Each case runs `compress-ssl` as a subprocess.
import { mkdir, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@compress/core';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, expectOneMessage, projectionTeacherSource, type Ran } from './cli-harness.test-util.js';
import { exitCodes } from './errors.js';

let dir: string;

/** The same through --json: exactly one line on stdout, the error object. */
function expectJsonError(r: Ran, code: string, pattern: RegExp): void {
  const lines = r.stdout.trim().split('\n');
  expect(lines, r.stdout).toHaveLength(1);
  const parsed = JSON.parse(lines[0]!) as { error: { code: string; message: string } };
  expect(parsed.error.code).toBe(code);
  expect(parsed.error.message).toMatch(pattern);
}

const module = (name: string, source: string) => {
  const file = join(dir, name);
  return writeFile(file, source).then(() => file);
};

const goodTeacher = projectionTeacherSource();

/** Fashion-MNIST, a 256-image subset, a tiny student, 6 steps, a checkpoint every 2; loader workers on. */
const tiny = {
  data: { trainSubset: 256, workers: 1 },
  student: { arch: 'alexnet-small', width: 0.125 },
  loss: { queueSize: 64 },
  optim: { batchSize: 32, epochs: 1, maxSteps: 6, milestones: [] },
  schedule: { checkpointEvery: 2, logEvery: 1, monitorEvery: 0, monitorSize: 0 },
};
let config: string;
let good: string;

/** `compress-ssl train` on the tiny config with `teacher`, into `out`, plus `more` flags. */
const train = (teacher: string, out: string, ...more: string[]) =>
  cli(['train', '--config', config, '--teacher', teacher, '--out', out, ...more]);

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'compress-cli-'));
  config = join(dir, 'tiny.json');
  await writeFile(config, JSON.stringify(tiny));
  good = await module('good.mjs', goodTeacher);
});

describe('compress-ssl failures', () => {
  const broken: [string, string, RegExp][] = [
    [
      'throws in embed',
      `export default { dim: 16, fingerprint: 'x', embed() { throw new Error('boom in embed'); }, dispose() {} };`,
      /teacher .*throws-in-embed\.mjs failed on batch 1 \(32 images from dataset index \d+\): boom in embed$/,
    ],
    [
      'rejects in embed',
      `export default { dim: 16, fingerprint: 'x', async embed() { await null; throw new Error('async boom'); }, dispose() {} };`,
      /teacher .*rejects-in-embed\.mjs failed on batch 1 .*: async boom$/,
    ],
    [
      'returns the wrong dim',
      `export default { dim: 16, fingerprint: 'x', async embed(b) { const n = b.shape[0]; return { rows: n, dim: 8, data: new Float32Array(n * 8) }; }, dispose() {} };`,
      /teacher .*returns-the-wrong-dim\.mjs on batch 1 .*expected 32×16 features \(batch size × its dim\), found 32×8/,
    ],
    [
      'returns a row too few',
      `export default { dim: 16, fingerprint: 'x', async embed(b) { const n = b.shape[0] - 1; return { rows: n, dim: 16, data: new Float32Array(n * 16) }; }, dispose() {} };`,
      /teacher .*returns-a-row-too-few\.mjs on batch 1 .*expected 32×16 features .*found 31×16/,
    ],
    [
      'throws at import',
      `throw new Error('boom at import');`,
      /teacher module .*throws-at-import\.mjs failed to load .*: boom at import$/,
    ],
    [
      'has a syntax error',
      'export default { dim: 16,, };',
      /teacher module .*has-a-syntax-error\.mjs failed to load: SyntaxError: Unexpected token/,
    ],
  ];
  for (const [what, source, pattern] of broken) {
    it(`a module teacher that ${what}: one message, exit ${exitCodes.external}, nothing left behind`, async () => {
      const teacher = await module(`${what.replaceAll(' ', '-')}.mjs`, source);
      const out = join(dir, `run-${what.replaceAll(' ', '-')}`);
      const r = await train(teacher, out, '--json');
      expectOneMessage(r, exitCodes.external, pattern);
      expectJsonError(r, 'EXTERNAL', pattern);
      expect(await exists(out), 'a failed start leaves no run directory').toBe(false);
    }, 60_000);
  }

  it('a module teacher that returns NaN at step 4: one message, and the checkpoint of step 2 stays', async () => {
    const teacher = await module(
      'nan-at-4.mjs',
      `let calls = 0;
export default { dim: 16, fingerprint: 'x', async embed(b) {
  const n = b.shape[0]; const d = new Float32Array(n * 16);
  for (let i = 0; i < d.length; i++) d[i] = Math.sin(i + b.indices[0]);
  if (++calls >= 4) d[5] = NaN;
  return { rows: n, dim: 16, data: d };
}, dispose() {} };`,
    );
    const out = join(dir, 'run-nan');
    const r = await train(teacher, out);
    expectOneMessage(
      r,
      exitCodes.external,
      /on batch 4 .*found NaN at row 0 .*column 5.*expected finite numbers/,
    );
    expect(await readdir(join(out, 'checkpoints'))).toContain('step-00000002');
    const resumed = await train(good, out, '--resume', '--quiet');
    // the run's config names the teacher it was made with: another teacher is refused, not mixed in
    expectOneMessage(resumed, exitCodes.input, /was made with other settings \(teacher\.source: /);
  }, 60_000);

  it('training that diverges says at which step and which settings usually cause it', async () => {
    const out = join(dir, 'run-diverged');
    const r = await train(good, out, '--temperature', '1e-9');
    expectOneMessage(
      r,
      exitCodes.failed,
      /training diverged at step \d+ .*learning rate too high \(lr 0\.01; .*\) or a temperature too small \(T 1e-9; the paper: 0\.04\)/,
    );
  }, 60_000);

  it('a flag with a bad value is named as a flag, not as the config file', async () => {
    for (const [value, pattern] of [
      ['abc', /^compress-ssl: --lr: expected a number, found "abc"$/],
      ['-1', /^compress-ssl: --lr -1: "optim\.lr": Too small/],
    ] as const) {
      const r = await train(good, join(dir, 'x'), '--lr', value);
      expectOneMessage(r, exitCodes.usage, pattern);
      expect(r.stderr).not.toContain('tiny.json');
    }
  }, 60_000);

  it('a refused --resume changes nothing in the run directory', async () => {
    const out = join(dir, 'run-resume');
    const first = await train(good, out, '--max-steps', '2', '--quiet');
    expect(first.code, first.stderr).toBe(0);
    await rm(join(out, 'config.json'));
    const listing = async () => {
      const names = await readdir(out, { recursive: true });
      return Promise.all(names.sort().map(async (n) => [n, (await stat(join(out, n))).mtimeMs]));
    };
    const before = await listing();
    const r = await train(good, out, '--max-steps', '2', '--batch-size', '16', '--resume');
    expectOneMessage(
      r,
      exitCodes.input,
      /its checkpoint at step 2 was made with other settings \(optim\.batchSize: 32 there, 16 now\)/,
    );
    expect(await listing()).toEqual(before);
  }, 60_000);

  it('a damaged feature cache is refused naming the file and the rows', async () => {
    const out = join(dir, 'cache');
    const cached = await cli([
      'cache-teacher',
      '--config',
      config,
      '--teacher',
      good,
      '--out',
      out,
      '--quiet',
    ]);
    expect(cached.code, cached.stderr).toBe(0);
    const file = join(out, 'teacher-train.fcache');
    const handle = await open(file, 'r+');
    await handle.write(new Uint8Array(3000).fill(0x7f), 0, 3000, 4096 + 1000); // finite garbage in row 7 on
    await handle.close();
    const r = await train(file, join(dir, 'run-cache'));
    expectOneMessage(
      r,
      exitCodes.input,
      /teacher-train\.fcache: section 'rows 0–\d+' checksum mismatch .*cache the features again/,
    );
  }, 60_000);

  it('a damaged student checkpoint is refused by eval and export, naming the file and the section', async () => {
    const out = join(dir, 'run-damaged');
    const trained = await train(good, out, '--max-steps', '2', '--quiet');
    expect(trained.code, trained.stderr).toBe(0);
    const file = join(out, 'checkpoints', 'step-00000002', 'student.ckpt');
    const { size } = await stat(file);
    const handle = await open(file, 'r+');
    const rng = new Rng(5);
    for (let i = 0; i < 3000; i++) {
      const at = size - 1 - Math.floor(rng.uniform() * (size / 2)); // in the tensor data
      await handle.write(new Uint8Array([Math.floor(rng.uniform() * 256)]), 0, 1, at);
    }
    await handle.close();
    const evaluated = await cli([
      'eval',
      'knn',
      '--checkpoint',
      out,
      '--config',
      config,
      '--out',
      join(dir, 'eval-damaged'),
    ]);
    expectOneMessage(
      evaluated,
      exitCodes.input,
      /student\.ckpt: section '.+' checksum mismatch .*the file is damaged/,
    );
    const exported = await cli([
      'export',
      'onnx',
      '--checkpoint',
      file,
      '--out',
      join(dir, 'export-damaged'),
    ]);
    expectOneMessage(exported, exitCodes.input, /student\.ckpt: section '.+' checksum mismatch/);
  }, 60_000);

  it('cache-teacher refuses --train-subset instead of caching every image', async () => {
    const out = join(dir, 'cache-subset');
    const r = await cli([
      'cache-teacher',
      '--config',
      config,
      '--teacher',
      good,
      '--out',
      out,
      '--train-subset',
      '2000',
    ]);
    expectOneMessage(
      r,
      exitCodes.usage,
      /--train-subset 2000: a feature cache holds every image of its split/,
    );
    expect(await exists(out)).toBe(false);
  }, 30_000);

  it('refuses an output on /proc at once', async () => {
    const r = await train(good, '/proc/compress-run');
    expectOneMessage(r, exitCodes.usage, /\/proc is on the kernel's proc file system/);
    expect(r.ms).toBeLessThan(20_000);
  }, 30_000);

  it('reading commands never create their input: eval with a mistyped --checkpoint', async () => {
    const typo = join(dir, 'runs', 'typo');
    const r = await cli(['eval', 'knn', '--checkpoint', typo, '--out', join(dir, 'eval-out')]);
    expectOneMessage(r, exitCodes.input, /runs\/typo: no such run directory or checkpoint file/);
    expect(await exists(join(dir, 'runs'))).toBe(false);
    expect(await exists(join(dir, 'eval-out'))).toBe(false);
  }, 30_000);

  it('--debug adds the stack trace, and --help says so with the exit codes', async () => {
    const teacher = join(dir, 'throws-in-embed.mjs');
    const r = await train(teacher, join(dir, 'dbg'), '--debug');
    expect(r.code).toBe(exitCodes.external);
    expect(r.stderr).toMatch(/^\s+at /m);
    const help = await cli(['--help']);
    expect(help.stdout).toContain('--debug');
    expect(help.stdout).toMatch(/Exit codes:[\s\S]*4 +a teacher or dataset module of yours/);
  }, 60_000);
});

describe('compress-ssl on image folders', () => {
  const folderConfig = {
    preset: 'imagenet',
    data: { dataset: 'image-folder', workers: 1 },
    student: { arch: 'alexnet-small', width: 0.125 },
    loss: { queueSize: 4 },
    optim: { batchSize: 2, epochs: 4, maxSteps: 12, milestones: [] },
    schedule: { checkpointEvery: 2, logEvery: 1, monitorEvery: 0, monitorSize: 0 },
  };
  let folderFile: string;

  async function folder(name: string, layout: Record<string, string[]>): Promise<string> {
    const root = join(dir, name);
    for (const [split, classes] of Object.entries(layout)) {
      for (const cls of classes) {
        await mkdir(join(root, split, cls), { recursive: true });
        for (let i = 0; i < 3; i++) {
          await sharp({
            create: { width: 40, height: 32, channels: 3, background: { r: 60 * i, g: 100, b: 9 } },
          })
            .jpeg()
            .toFile(join(root, split, cls, `${i}.jpg`));
        }
      }
    }
    return root;
  }

  beforeAll(async () => {
    folderFile = join(dir, 'folder.json');
    await writeFile(folderFile, JSON.stringify(folderConfig));
  });

  const trainOn = (root: string, ...more: string[]) =>
    cli([
      'train',
      '--config',
      folderFile,
      '--data-root',
      root,
      '--teacher',
      good,
      '--out',
      join(dir, `run-${root.split('/').pop()}`),
      ...more,
    ]);

  it('refuses train and val with other class lists, naming the classes on each side', async () => {
    const root = await folder('mixed', { train: ['a', 'b', 'c'], val: ['a', 'b', 'd'] });
    expectOneMessage(
      await trainOn(root),
      exitCodes.input,
      /val\/ has class \[d\] that train\/ lacks; train\/ has \[c\] that val\/ lacks/,
    );
  }, 60_000);

  it('refuses a single class', async () => {
    const root = await folder('single', { train: ['a'], val: ['a'] });
    expectOneMessage(
      await trainOn(root),
      exitCodes.usage,
      /train\/ has 1 class \[a\]; training or evaluating with labels needs at least 2/,
    );
  }, 60_000);

  it('names an empty image, also when a loader worker decodes it; --skip-corrupt leaves it out', async () => {
    const root = await folder('empty', { train: ['a', 'b'], val: ['a', 'b'] });
    await writeFile(join(root, 'train', 'b', 'empty.jpg'), '');
    expectOneMessage(
      await trainOn(root),
      exitCodes.input,
      /cannot decode .*train\/b\/empty\.jpg: the file is empty \(0 bytes\); pass --skip-corrupt to leave out files that do not decode/,
    );
    const skipped = await trainOn(root, '--skip-corrupt', '--quiet', '--out', join(dir, 'run-skipped'));
    expect(skipped.code, skipped.stderr).toBe(0);
  }, 60_000);
});
