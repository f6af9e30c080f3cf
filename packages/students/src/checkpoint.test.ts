import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompressError, crc32, decodeContainer, formatChecksum } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from './backend.js';
import {
  type CheckpointHeader,
  loadStudent,
  readCheckpoint,
  restoreCheckpoint,
  saveCheckpoint,
} from './checkpoint.js';
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
    await expect(readCheckpoint(join(dir, 'c.ckpt'))).rejects.toThrow(
      /: the file ends within section '.*': the file is truncated or damaged/,
    );
    await writeFile(join(dir, 'd.ckpt'), 'hello world, not a checkpoint');
    await expect(readCheckpoint(join(dir, 'd.ckpt'))).rejects.toThrow(
      'is not a compress student checkpoint (expected the magic "COMPRESS", or CMPRSCKP of versions 1 and 2)',
    );
    await expect(readCheckpoint(join(dir, 'missing.ckpt'))).rejects.toThrow('no such file or directory');
    a.dispose();
    other.dispose();
  });

  describe('the compress container (version 3)', () => {
    it('writes one aligned, checksummed section per tensor and names a damaged one', async () => {
      const student = createStudent('alexnet-small', { seed: 4, width: 0.25 });
      const optimizer = new SGD({ lr: 0.1 });
      const x = tf.randomNormal([2, 28, 28, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
      trainStep(student, () => tf.mean(tf.square(student.features(x))) as tf.Scalar, { optimizer });
      const file = join(dir, 'v3.ckpt');
      await saveCheckpoint(file, { student, optimizer, meta: { epoch: 7 } });
      const bytes = await readFile(file);
      expect(bytes.toString('latin1', 0, 8)).toBe('COMPRESS');
      const container = decodeContainer(new Uint8Array(bytes), file, {
        kind: 'compress-student-checkpoint',
        versions: [3],
        what: 'checkpoint',
      });
      expect(container.header.meta).toEqual({ epoch: 7 });
      const { header, data } = await readCheckpoint(file);
      expect(header.version).toBe(3);
      expect(header.tensors.map((t) => t.name)).toEqual(container.sections.map((c) => c.entry.name));
      expect(header.tensors.some((t) => t.name.startsWith('momentum.'))).toBe(true);
      const dataStart = bytes.readUInt32LE(12);
      for (const [i, { entry }] of container.sections.entries()) {
        expect((dataStart + entry.offset) % 64).toBe(0);
        const t = header.tensors[i]!;
        const n = t.shape.reduce((p, q) => p * q, 1);
        expect(new Uint8Array(data.buffer, t.offset * 4, n * 4)).toEqual(
          new Uint8Array(bytes.subarray(dataStart + entry.offset, dataStart + entry.offset + n * 4)),
        );
      }
      // the same contents give the same bytes
      await saveCheckpoint(join(dir, 'v3b.ckpt'), { student, optimizer, meta: { epoch: 7 } });
      expect((await readFile(join(dir, 'v3b.ckpt'))).equals(bytes)).toBe(true);
      const last = container.sections.at(-1)!.entry;
      const damaged = Buffer.from(bytes);
      damaged[dataStart + last.offset + 1]! ^= 0x10;
      await writeFile(join(dir, 'v3-bad.ckpt'), damaged);
      const e = await loadStudent(join(dir, 'v3-bad.ckpt')).then(
        () => undefined,
        (error: unknown) => error as CompressError,
      );
      expect(e?.code).toBe('CORRUPT_INPUT');
      expect(e?.message).toMatch(
        new RegExp(
          `^${escapeRegExp(join(dir, 'v3-bad.ckpt'))}: section '${escapeRegExp(last.name)}' checksum mismatch \\(stored ${formatChecksum(last.crc!)}, computed 0x[0-9a-f]{8}\\): the file is damaged; restore it from a copy, use an earlier checkpoint of its run, or train again$`,
        ),
      );
      // a version-3 file as written and as re-encoded in version 2 restore the same weights
      await writeFile(join(dir, 'v2.ckpt'), encodeV2(header, data));
      const a = await loadStudent(file);
      const b = await loadStudent(join(dir, 'v2.ckpt'));
      for (const [i, [, v]] of b.stateDict().entries()) {
        expect(Array.from(v.dataSync())).toEqual(Array.from(a.stateDict()[i]![1].dataSync()));
      }
      for (const m of [a, b, student]) m.dispose();
      optimizer.dispose();
      x.dispose();
    });
  });

  describe('version 2 ("CMPRSCKP" with checksums), still read', () => {
    let file: string;
    let good: Buffer;
    let header: CheckpointHeader;
    /** Where the JSON header ends (the CRC word follows) and where the tensor data starts. */
    let end: number;
    let start: number;
    beforeAll(async () => {
      const student = createStudent('alexnet-small', { seed: 4, width: 0.25 });
      const optimizer = new SGD({ lr: 0.1 });
      const x = tf.randomNormal([2, 28, 28, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
      trainStep(student, () => tf.mean(tf.square(student.features(x))) as tf.Scalar, { optimizer });
      file = join(dir, 'crc.ckpt');
      await saveCheckpoint(join(dir, 'crc-v3.ckpt'), { student, optimizer, meta: { epoch: 12345 } });
      const current = await readCheckpoint(join(dir, 'crc-v3.ckpt'));
      good = encodeV2(current.header, current.data);
      await writeFile(file, good);
      header = (await readCheckpoint(file)).header;
      end = 12 + good.readUInt32LE(8);
      start = end + 4;
      student.dispose();
      optimizer.dispose();
      x.dispose();
    });

    /** A copy of `good` changed by `flip`. */
    function flipped(flip: (bytes: Buffer) => void): Buffer {
      const bytes = Buffer.from(good);
      flip(bytes);
      return bytes;
    }

    /** Writes `bytes` under `name` and returns the error reading them gives. */
    async function damaged(name: string, bytes: Buffer): Promise<CompressError> {
      const path = join(dir, name);
      await writeFile(path, bytes);
      const error = await readCheckpoint(path).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(CompressError);
      expect((error as CompressError).code).toBe('CORRUPT_INPUT');
      expect((error as CompressError).input).toBe(path);
      // and the users of readCheckpoint refuse it as well
      await expect(loadStudent(path)).rejects.toThrow((error as Error).message);
      return error as CompressError;
    }

    it('reads version 2 with a CRC-32 of the header and of every tensor', () => {
      expect(header.version).toBe(2);
      expect(good.readUInt32LE(end)).toBe(crc32(good.subarray(0, end)));
      expect(end % 4).toBe(0);
      for (const t of header.tensors) {
        const n = t.shape.reduce((p, q) => p * q, 1);
        expect(t.crc).toBe(crc32(good.subarray(start + t.offset * 4, start + (t.offset + n) * 4)));
      }
      expect(header.tensors.some((t) => t.name.startsWith('momentum.'))).toBe(true);
    });

    it('refuses flipped bytes in the header, naming the file and the section', async () => {
      const metaAt = good.indexOf('12345', 12);
      expect(metaAt).toBeGreaterThan(12);
      // still valid JSON (epoch 12345 → 12335): only the checksum can tell
      let e = await damaged(
        'h1.ckpt',
        flipped((b) => {
          b[metaAt + 3] = '3'.charCodeAt(0);
        }),
      );
      expect(e.message).toMatch(
        new RegExp(
          `^${escapeRegExp(join(dir, 'h1.ckpt'))}: section 'header' checksum mismatch \\(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\\): the file is damaged; `,
        ),
      );
      // no longer JSON
      e = await damaged(
        'h2.ckpt',
        flipped((b) => {
          for (let i = 12; i < 40; i += 3) b[i]! ^= 0x5a;
        }),
      );
      expect(e.message).toContain(`${join(dir, 'h2.ckpt')}: section 'header' checksum mismatch`);
      // the tensor table: an offset changed
      e = await damaged(
        'h3.ckpt',
        flipped((b) => {
          const at = b.indexOf('"offset":0', 12);
          b[at + 9] = '4'.charCodeAt(0);
        }),
      );
      expect(e.message).toContain(`${join(dir, 'h3.ckpt')}: section 'header' checksum mismatch`);
      // the header's checksum word itself
      e = await damaged(
        'h4.ckpt',
        flipped((b) => {
          b[end + 1]! ^= 1;
        }),
      );
      expect(e.message).toContain(`${join(dir, 'h4.ckpt')}: section 'header' checksum mismatch`);
      // the header length
      e = await damaged(
        'h5.ckpt',
        flipped((b) => {
          b[8]! ^= 4;
        }),
      );
      expect(e.message).toContain(`${join(dir, 'h5.ckpt')}: section 'header'`);
    });

    it('refuses flipped bytes in the tensor data, naming the file and the tensor', async () => {
      const first = header.tensors[0]!;
      let e = await damaged(
        't1.ckpt',
        flipped((b) => {
          b[start + first.offset * 4 + 5]! ^= 0x10;
        }),
      );
      expect(e.message).toMatch(
        new RegExp(
          `^${escapeRegExp(join(dir, 't1.ckpt'))}: section 'tensor ${escapeRegExp(first.name)}' checksum mismatch \\(stored ${formatChecksum(first.crc!)}, computed 0x[0-9a-f]{8}\\): the file is damaged; `,
        ),
      );
      // a momentum buffer, and the very last byte of the file
      const momentum = header.tensors.find((t) => t.name.startsWith('momentum.'))!;
      e = await damaged(
        't2.ckpt',
        flipped((b) => {
          b[start + momentum.offset * 4]! ^= 0x80;
        }),
      );
      expect(e.message).toContain(`section 'tensor ${momentum.name}' checksum mismatch`);
      const last = header.tensors.at(-1)!;
      e = await damaged(
        't3.ckpt',
        flipped((b) => {
          b[b.length - 1]! ^= 0x01;
        }),
      );
      expect(e.message).toContain(`section 'tensor ${last.name}' checksum mismatch`);
      // 3000 bytes spread over the data
      e = await damaged(
        't4.ckpt',
        flipped((b) => {
          const step = Math.floor((b.length - start) / 3000);
          for (let i = 0; i < 3000; i++) b[start + i * step]! ^= 0xff;
        }),
      );
      expect(e.message).toContain(
        `${join(dir, 't4.ckpt')}: section 'tensor ${first.name}' checksum mismatch`,
      );
    });

    it('refuses a truncated file, in its data or in its header', async () => {
      let e = await damaged('cut1.ckpt', good.subarray(0, good.length - 100));
      expect(e.message).toContain('(truncated?)');
      e = await damaged('cut2.ckpt', good.subarray(0, start + 2));
      expect(e.message).toContain('(truncated?)');
      e = await damaged('cut3.ckpt', good.subarray(0, end + 2));
      expect(e.message).toContain(
        "the file ends before the checksum of section 'header': the file is truncated or damaged",
      );
      e = await damaged('cut4.ckpt', good.subarray(0, 40));
      expect(e.message).toMatch(/section 'header' is cut short .* the file is truncated or damaged/);
    });

    it('still reads a version-1 file (no checksums), unverified', async () => {
      // the version-1 layout: magic, u32 header length, JSON header (space-padded to 4 bytes), data
      const v1: CheckpointHeader = {
        ...header,
        version: 1,
        tensors: header.tensors.map(({ name, shape, offset }) => ({ name, shape, offset })),
      };
      let json = Buffer.from(JSON.stringify(v1));
      json = Buffer.concat([json, Buffer.from(' '.repeat((4 - ((12 + json.length) % 4)) % 4))]);
      const prefix = Buffer.alloc(12);
      prefix.write('CMPRSCKP', 0, 'latin1');
      prefix.writeUInt32LE(json.length, 8);
      const old = join(dir, 'v1.ckpt');
      await writeFile(old, Buffer.concat([prefix, json, good.subarray(start)]));
      const back = await readCheckpoint(old);
      expect(back.header.version).toBe(1);
      expect(back.header.meta).toEqual({ epoch: 12345 });
      expect(Buffer.from(back.data.buffer).equals(good.subarray(start))).toBe(true);
      const a = await loadStudent(file);
      const b = await loadStudent(old);
      for (const [i, [, v]] of b.stateDict().entries()) {
        expect(Array.from(v.dataSync())).toEqual(Array.from(a.stateDict()[i]![1].dataSync()));
      }
      a.dispose();
      b.dispose();
      // a version-1 file cut short is still refused
      const cut = join(dir, 'v1-cut.ckpt');
      await writeFile(cut, Buffer.concat([prefix, json, good.subarray(start, good.length - 4)]));
      await expect(readCheckpoint(cut)).rejects.toThrow('(truncated?)');
      // and a later version is refused as such
      const v3 = Buffer.from(JSON.stringify({ ...v1, version: 3 }));
      prefix.writeUInt32LE(v3.length, 8);
      await writeFile(join(dir, 'v3.ckpt'), Buffer.concat([prefix, v3]));
      await expect(readCheckpoint(join(dir, 'v3.ckpt'))).rejects.toThrow(
        'compress-student-checkpoint version 3 in the CMPRSCKP layout, this version of @compress/students reads versions 1 and 2 of that layout and version 3 in the compress container',
      );
    });
  });
});

/** Today's version-2 "CMPRSCKP" layout, as version 2 of @compress/students wrote it. */
function encodeV2(header: CheckpointHeader, data: Float32Array): Buffer {
  const tensors = header.tensors.map(({ name, shape, offset }) => {
    const n = shape.reduce((p, q) => p * q, 1);
    return { name, shape, offset, crc: crc32(data.subarray(offset, offset + n)) };
  });
  let json = Buffer.from(JSON.stringify({ ...header, version: 2, tensors }), 'utf8');
  json = Buffer.concat([json, Buffer.from(' '.repeat((4 - ((12 + json.length) % 4)) % 4))]);
  const prefix = Buffer.alloc(12);
  prefix.write('CMPRSCKP', 0, 'latin1');
  prefix.writeUInt32LE(json.length, 8);
  const headerCrc = Buffer.alloc(4);
  headerCrc.writeUInt32LE(crc32(json, crc32(prefix)));
  return Buffer.concat([
    prefix,
    json,
    headerCrc,
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  ]);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
