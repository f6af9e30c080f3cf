import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompressError } from '@compress/core';
import {
  createStudent,
  loadStudent,
  readCheckpoint,
  saveCheckpoint,
  selectBackend,
} from '@compress/students';
import { RunDir, readStateFile, writeStateFile } from '@compress/train';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from './config.js';
import { evaluateSource } from './evaluate.js';
import type { Reporter } from './progress.js';
import type { Splits } from './resources.js';

const silent: Reporter = { info: () => {}, progress: () => {}, done: () => {} };

/** Flips `count` bytes spread evenly over the tensor data of the checkpoint at `file`. */
async function flipTensorData(file: string, count: number): Promise<void> {
  const bytes = await readFile(file);
  const start = bytes.readUInt32LE(12); // the container's data area: the first tensor's section
  const step = Math.floor((bytes.length - start) / count);
  expect(step).toBeGreaterThan(0);
  for (let i = 0; i < count; i++) bytes[start + i * step]! ^= 0xa5;
  await writeFile(file, bytes);
}

async function rejection(promise: Promise<unknown>): Promise<CompressError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CompressError);
  return error as CompressError;
}

describe('damaged checkpoints are refused, not evaluated', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'compress-integrity-'));
    await selectBackend({ backend: 'wasm', log: () => {} });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a checkpoint with 3000 flipped bytes of tensor data: CORRUPT_INPUT naming the file and the tensor', async () => {
    const student = createStudent('alexnet-small', { seed: 3, width: 0.25 });
    const file = join(dir, 'student.ckpt');
    await saveCheckpoint(file, { student, meta: { epoch: 1 } });
    student.dispose();
    const { header } = await readCheckpoint(file);
    (await loadStudent(file)).dispose(); // intact, it loads

    await flipTensorData(file, 3000);
    // what `compress-ssl export` calls (through bin.ts's checkpointOf for a .ckpt path)
    const error = await rejection(loadStudent(file));
    expect(error.code).toBe('CORRUPT_INPUT');
    expect(error.input).toBe(file);
    expect(error.message).toMatch(
      new RegExp(
        `^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: section '${header.tensors[0]!.name}' checksum mismatch \\(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\\): the file is damaged; `,
      ),
    );
  });

  it('the latest checkpoint of a run directory, as eval finds it: the student and the trainer state', async () => {
    const run = await RunDir.open(join(dir, 'run'));
    const student = createStudent('alexnet-small', { seed: 5, width: 0.25 });
    await run.saveCheckpoint(4, async (d) => {
      await writeStateFile(join(d, 'state.bin'), { queue: new Float32Array(4096).fill(0.5), pointer: 3 });
      await saveCheckpoint(join(d, 'student.ckpt'), { student, meta: { globalStep: 4 } });
    });
    student.dispose();
    // bin.ts's checkpointOf for a run directory
    const latest = await (await RunDir.openExisting(join(dir, 'run'))).latestCheckpoint();
    const file = join(latest!.dir, 'student.ckpt');
    const state = join(latest!.dir, 'state.bin');
    await flipTensorData(file, 3000);

    // `compress-ssl eval` loads the student in evaluateSource before it touches the data
    const error = await rejection(
      evaluateSource({
        config: {} as Config,
        splits: {} as Splits,
        source: { kind: 'student', checkpoint: file },
        name: 'student',
        outDir: join(dir, 'eval'),
        reporter: silent,
      }),
    );
    expect(error.code).toBe('CORRUPT_INPUT');
    expect(error.input).toBe(file);
    expect(error.message).toContain(`${file}: section 'student.`);
    expect(error.message).toContain('checksum mismatch');

    // the trainer state beside it (read by `train --resume`)
    expect((await readStateFile<{ pointer: number }>(state)).pointer).toBe(3);
    const bytes = await readFile(state);
    for (let i = 1; i <= 3000; i++) bytes[bytes.length - i * 5]! ^= 0x3c;
    await writeFile(state, bytes);
    const stateError = await rejection(readStateFile(state));
    expect(stateError.code).toBe('CORRUPT_INPUT');
    expect(stateError.message).toMatch(
      /: section 'queue' checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\): the file is damaged; /,
    );
    expect(stateError.message.startsWith(`${state}: `)).toBe(true);
  });
});
