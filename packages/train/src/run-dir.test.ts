import { chmod, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunDir } from './run-dir.js';
import { readStateFile, writeStateFile } from './state-file.js';

describe('RunDir', () => {
  it('switches latest only once a checkpoint is complete, and keeps the previous one on failure', async () => {
    const run = await RunDir.open(await mkdtemp(join(tmpdir(), 'run-')));
    await run.saveCheckpoint(10, async (dir) => writeFile(join(dir, 'a'), 'ten'));
    await expect(
      run.saveCheckpoint(20, async (dir) => {
        await writeFile(join(dir, 'a'), 'half');
        throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      }),
    ).rejects.toThrow(/cannot write checkpoint .*step-00000020: the disk is full/);
    const latest = await run.latestCheckpoint();
    expect(latest?.step).toBe(10);
    expect(await readFile(join(latest!.dir, 'a'), 'utf8')).toBe('ten');
    await run.saveCheckpoint(30, async (dir) => writeFile(join(dir, 'a'), 'thirty'));
    expect((await run.latestCheckpoint())?.step).toBe(30);
    expect((await readdir(run.file('checkpoints'))).sort()).toEqual(['latest.json', 'step-00000030']);
  });

  it('says when the run directory cannot be written', async () => {
    if (process.getuid?.() === 0) {
      // root writes anywhere: use a path under a regular file instead.
      const dir = await mkdtemp(join(tmpdir(), 'run-'));
      await writeFile(join(dir, 'file'), '');
      await expect(RunDir.open(join(dir, 'file', 'run'))).rejects.toThrow(
        /cannot use run directory .*file\/run: a parent path is not a directory/,
      );
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'run-'));
    await chmod(dir, 0o500);
    await expect(RunDir.open(join(dir, 'run'))).rejects.toThrow(/permission denied/);
  });

  it('round-trips state files with float arrays exactly', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'state-')), 's.bin');
    const state = {
      kind: 'x',
      step: 3,
      q: { values: Float32Array.from([1.5, -2, Math.PI]), pointer: 2 },
      head: null,
    };
    await writeStateFile(file, state);
    const back = await readStateFile<typeof state>(file);
    expect(back.step).toBe(3);
    expect(Array.from(back.q.values)).toEqual(Array.from(state.q.values));
    await writeFile(file, 'garbage!garbage!');
    await expect(readStateFile(file)).rejects.toThrow(/not a compress state file/);
  });
});
