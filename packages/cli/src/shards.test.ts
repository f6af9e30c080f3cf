// Sharded teacher caching and k-NN from the command line: N shard processes as a Kubernetes
// Indexed Job runs them ($JOB_COMPLETION_INDEX), merged into the unsharded file byte for byte; a
// killed shard resumes; incomplete or mixed shard sets are refused by name; a cache larger than
// the free space is refused before any work; k-NN over the shards equals the unsharded k-NN.
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, expectOneMessage, projectionTeacherSource } from './cli-harness.test-util.js';
import { shardOf } from './commands/cache-teacher.js';
import { exitCodes } from './errors.js';

let dir: string;

let good: string;
let killer: string;
let other: string;
let config: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'compress-shards-cli-'));
  good = join(dir, 'good.mjs');
  killer = join(dir, 'killer.mjs');
  other = join(dir, 'other.mjs');
  await writeFile(good, projectionTeacherSource('projection-16'));
  await writeFile(killer, projectionTeacherSource('projection-16', 16, 4));
  await writeFile(other, projectionTeacherSource('another-teacher'));
  config = join(dir, 'config.json');
  await writeFile(config, JSON.stringify({ data: { workers: 1 } }));
});

const args = (teacher: string, out: string, split = 'test') => [
  'cache-teacher',
  '--config',
  config,
  '--teacher',
  teacher,
  '--out',
  out,
  '--split',
  split,
];
const merge = (out: string, ...more: string[]) =>
  cli(['cache-teacher', 'merge', '--out', out, '--split', 'test', ...more]);

describe('compress-ssl cache-teacher --shards', () => {
  const whole = () => join(dir, 'whole');
  const sharded = () => join(dir, 'sharded');
  const shard = (i: number) => join(sharded(), `teacher-test.shard-${i}-of-3.fcache`);

  it('3 shard processes by $JOB_COMPLETION_INDEX merge into the unsharded file byte for byte; a killed shard resumes', async () => {
    // shard 1 is killed (SIGKILL) in its 4th teacher call, after 3 batches of 256
    const [one, s0, s1, s2] = await Promise.all([
      cli([...args(good, whole()), '--quiet']),
      cli([...args(good, sharded()), '--shards', '3', '--json'], { JOB_COMPLETION_INDEX: '0' }),
      cli([...args(killer, sharded()), '--shards', '3'], { JOB_COMPLETION_INDEX: '1' }),
      cli([...args(good, sharded()), '--shards', '3', '--json'], { JOB_COMPLETION_INDEX: '2' }),
    ]);
    expect(one.code, one.stderr).toBe(0);
    expect(s0.code, s0.stderr).toBe(0);
    expect(s2.code, s2.stderr).toBe(0);
    expect(s1.signal, s1.stderr).toBe('SIGKILL');
    // the size first, then images/s and an ETA through the reporter
    expect(s0.stderr).toMatch(
      /teacher-test\.shard-0-of-3\.fcache: shard 0 of 3 \(dataset indices 0…3332\), 3333 rows × 16 float32 = [\d.]+ KiB \(\d+ bytes\) with header and checksums/,
    );
    expect(s0.stderr).toMatch(/\[cache-teacher shard 0 of 3\] 3333\/3333 images [\d.]+\/s eta 0s/);
    expect(JSON.parse(s2.stdout)).toMatchObject({
      rows: 3334,
      shard: { index: 2, count: 3, start: 6666, end: 10000 },
    });

    const refused = await merge(sharded());
    expectOneMessage(
      refused,
      exitCodes.input,
      /teacher-test\.shard-1-of-3\.fcache is unfinished \(768 of 3333 rows written; run its shard again/,
    );
    expect(refused.stderr).toMatch(/shard 0 of 3 \(dataset indices 0…3332\): done/);
    expect(refused.stderr).toMatch(
      /shard 1 of 3 \(dataset indices 3333…6665\): unfinished, 768 of 3333 rows/,
    );

    const resumed = await cli([...args(good, sharded()), '--shard', '1/3', '--json', '--quiet']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ resumedFrom: 768, rows: 3333 });

    const merged = await merge(sharded(), '--json');
    expect(merged.code, merged.stderr).toBe(0);
    expect(JSON.parse(merged.stdout)).toMatchObject({ rows: 10000, dim: 16 });
    expect(merged.stderr).toMatch(/shard 2 of 3 \(dataset indices 6666…9999\): done/);
    const a = await readFile(join(sharded(), 'teacher-test.fcache'));
    const b = await readFile(join(whole(), 'teacher-test.fcache'));
    expect(a.length).toBe(b.length);
    expect(Buffer.compare(a, b), 'merged and unsharded files differ').toBe(0);
  }, 180_000);

  it('refuses missing, duplicate and foreign shards by name, and --shards without an index', async () => {
    const setOf = async (name: string, files: [string, string][]) => {
      const d = join(dir, name);
      await rm(d, { recursive: true, force: true });
      for (const [from, to] of files) {
        await copyFileInto(from, d, to);
      }
      return d;
    };
    const missing = await setOf('missing', [
      [shard(0), 'teacher-test.shard-0-of-3.fcache'],
      [shard(2), 'teacher-test.shard-2-of-3.fcache'],
    ]);
    expectOneMessage(
      await merge(missing),
      exitCodes.input,
      /1 of 3 shards missing: shard 1 \(teacher-test\.shard-1-of-3\.fcache\)/,
    );
    const duplicate = await setOf('duplicate', [
      [shard(0), 'teacher-test.shard-0-of-3.fcache'],
      [shard(1), 'teacher-test.shard-1-of-3.fcache'],
      [shard(2), 'teacher-test.shard-2-of-3.fcache'],
      [shard(2), 'teacher-test.shard-02-of-3.fcache'],
    ]);
    expectOneMessage(
      await merge(duplicate),
      exitCodes.input,
      /shard 2 of 3 appears 2 times: .*shard-02-of-3\.fcache, .*shard-2-of-3\.fcache/,
    );
    const foreign = await setOf('foreign', [
      [shard(0), 'teacher-test.shard-0-of-3.fcache'],
      [shard(2), 'teacher-test.shard-2-of-3.fcache'],
    ]);
    const made = await cli([...args(other, foreign), '--shard', '1/3', '--quiet']);
    expect(made.code, made.stderr).toBe(0);
    expectOneMessage(
      await merge(foreign),
      exitCodes.input,
      /foreign\/teacher-test\.shard-1-of-3\.fcache belongs to another shard set: its teacher is another-teacher, not projection-16/,
    );
    expect(await readdir(foreign)).not.toContain('teacher-test.fcache');

    const noIndex = await cli([...args(good, join(dir, 'no-index')), '--shards', '3']);
    expectOneMessage(noIndex, exitCodes.usage, /--shards 3: which shard\? .*JOB_COMPLETION_INDEX/);
  }, 120_000);

  it('refuses a cache larger than the free space before any work, naming both numbers', async () => {
    const wide = join(dir, 'wide.mjs');
    await writeFile(wide, projectionTeacherSource('wide', 2 ** 36, 1)); // killed if it were ever asked
    const out = join(dir, 'wide-out');
    const r = await cli([...args(wide, out), '--shards', '2', '--shard', '0']);
    expectOneMessage(
      r,
      exitCodes.failed,
      /teacher-test\.shard-0-of-2\.fcache needs [\d.]+ PiB \(\d+ bytes\), but its file system has [\d.]+ \w+ \(\d+ bytes\) free/,
    );
    expect(r.stderr).toMatch(/5000 rows × 68719476736 float32 = [\d.]+ PiB/);
    expect(await readdir(out)).toEqual([]);
  }, 60_000);

  it('eval knn over the train split as a shard set equals the unsharded k-NN', async () => {
    const base = join(dir, 'train-shards');
    const made = await Promise.all(
      [0, 1, 2].map((i) =>
        cli([...args(good, base, 'train'), '--shards', '3', '--quiet'], { JOB_COMPLETION_INDEX: String(i) }),
      ),
    );
    for (const m of made) expect(m.code, m.stderr).toBe(0);
    const [plain, sharded] = await Promise.all([
      cli([
        'eval',
        'knn',
        '--config',
        config,
        '--teacher',
        good,
        '--out',
        join(dir, 'eval-plain'),
        '--quiet',
      ]),
      cli([
        'eval',
        'knn',
        '--config',
        config,
        '--teacher',
        good,
        '--base-shards',
        base,
        '--out',
        join(dir, 'eval-sharded'),
        '--quiet',
      ]),
    ]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(sharded.code, sharded.stderr).toBe(0);
    const report = async (d: string) => JSON.parse(await readFile(join(dir, d, 'report.json'), 'utf8'));
    const p = await report('eval-plain');
    const s = await report('eval-sharded');
    expect(s.knn1).toEqual(p.knn1);
    expect(s.knn20).toEqual(p.knn20);
    expect(s.summary).toEqual(p.summary);
    expect(p.summary.nn).toBeGreaterThan(10); // above chance: real neighbours, not an empty report
  }, 300_000);
});

async function copyFileInto(from: string, d: string, name: string): Promise<void> {
  await mkdir(d, { recursive: true });
  await copyFile(from, join(d, name));
}

describe('shardOf', () => {
  it('reads --shard i/n, --shards n with --shard i, and $JOB_COMPLETION_INDEX', () => {
    expect(shardOf({})).toBeUndefined();
    expect(shardOf({}, { JOB_COMPLETION_INDEX: '2' })).toBeUndefined();
    expect(shardOf({ shard: '1/3' })).toEqual({ index: 1, count: 3 });
    expect(shardOf({ shards: '3', shard: '2' })).toEqual({ index: 2, count: 3 });
    expect(shardOf({ shards: '4' }, { JOB_COMPLETION_INDEX: '3' })).toEqual({ index: 3, count: 4 });
    expect(shardOf({ shards: '4', shard: '0' }, { JOB_COMPLETION_INDEX: '3' })).toEqual({
      index: 0,
      count: 4,
    });
    expect(() => shardOf({ shard: '1' })).toThrow(/say how many shards/);
    expect(() => shardOf({ shards: '3', shard: '1/4' })).toThrow(/says 4 shards, --shards says 3/);
    expect(() => shardOf({ shards: '3' }, { JOB_COMPLETION_INDEX: '3' })).toThrow(/index in 0…2/);
    expect(() => shardOf({ shards: 'x' })).toThrow(/--shards: the shard count must be a whole number/);
    expect(() => shardOf({ shards: '0', shard: '0' })).toThrow(/at least 1 shard/);
  });
});
