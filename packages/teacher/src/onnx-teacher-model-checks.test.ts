import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompressError } from '@compress/core';
import { randomImageBatch } from '@compress/core/testing';
import { readOnnxMetadata } from '@compress/onnx';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOnnxModel, linearTeacherModel } from './onnx-model.test-util.js';
import { OnnxTeacher } from './onnx-teacher.js';

const quiet = { log: false as const, providers: ['cpu'] as const, threads: 1 };

async function thrown(p: Promise<unknown>): Promise<CompressError> {
  try {
    await p;
  } catch (error) {
    expect(error).toBeInstanceOf(CompressError);
    return error as CompressError;
  }
  throw new Error('expected a rejection');
}

/** Appends `metadata_props` entries (ModelProto field 14) to a serialised model. */
function withMetadata(model: Uint8Array, entries: Record<string, string>): Uint8Array {
  const bytes = [...model];
  const varint = (out: number[], v: number) => {
    while (v >= 0x80) {
      out.push((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    out.push(v);
  };
  const str = (out: number[], field: number, s: string) => {
    const b = new TextEncoder().encode(s);
    out.push((field << 3) | 2);
    varint(out, b.length);
    out.push(...b);
  };
  for (const [key, value] of Object.entries(entries)) {
    const entry: number[] = [];
    str(entry, 1, key);
    str(entry, 2, value);
    bytes.push((14 << 3) | 2);
    varint(bytes, entry.length);
    bytes.push(...entry);
  }
  return new Uint8Array(bytes);
}

/** Mean over pixels of an NCHW image with the batch dimension `batch`. */
function poolModel(batch: number | string): Uint8Array {
  return buildOnnxModel({
    inputs: [{ name: 'images', shape: [batch, 3, 8, 8] }],
    outputs: [{ name: 'features', shape: [batch, 3] }],
    nodes: [
      {
        op: 'ReduceMean',
        inputs: ['images'],
        outputs: ['features'],
        attributes: { axes: [2, 3], keepdims: 0 },
      },
    ],
  });
}

describe('OnnxTeacher model checks', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'compress-onnx-checks-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const batch of [1, 32]) {
    it(`refuses a model exported with a fixed batch size of ${batch}, naming the file and how to re-export`, async () => {
      const file = join(dir, `fixed-${batch}.onnx`);
      await writeFile(file, poolModel(batch));
      const error = await thrown(OnnxTeacher.create(file, quiet));
      expect(error.code).toBe('UNSUPPORTED');
      expect(error.input).toBe(file);
      expect(error.message).toContain(
        `OnnxTeacher ${file}: input 'images' has a fixed batch size of ${batch} (shape [${batch}, 3, 8, 8]), expected a dynamic batch dimension`,
      );
      expect(error.message).toContain("dynamic_axes={'images': {0: 'batch'}, 'features': {0: 'batch'}}");
      expect(error.message).toContain('tooling/teacher-export/export_teacher.py --format');
    });
  }

  it('takes the same graph with a symbolic batch dimension', async () => {
    const teacher = await OnnxTeacher.create(poolModel('batch'), quiet);
    const f = await teacher.embed(randomImageBatch(5, [8, 8, 3], 1));
    expect([f.rows, f.dim]).toEqual([5, 3]);
    await teacher.dispose();
  });

  it('wraps an onnxruntime failure during embed into a CompressError naming the model', async () => {
    // Reshape to a constant [1, 3]: one image runs, two cannot be reshaped.
    const file = join(dir, 'reshape.onnx');
    await writeFile(
      file,
      buildOnnxModel({
        inputs: [{ name: 'images', shape: ['batch', 3, 8, 8] }],
        outputs: [{ name: 'features', shape: [1, 3] }],
        nodes: [
          {
            op: 'ReduceMean',
            inputs: ['images'],
            outputs: ['mean'],
            attributes: { axes: [2, 3], keepdims: 0 },
          },
          { op: 'Reshape', inputs: ['mean', 'shape'], outputs: ['features'] },
        ],
        initializers: [{ name: 'shape', dims: [2], values: [1, 3], type: 7 }],
      }),
    );
    const teacher = await OnnxTeacher.create(file, quiet);
    expect((await teacher.embed(randomImageBatch(1, [8, 8, 3], 2))).rows).toBe(1);
    const error = await thrown(teacher.embed(randomImageBatch(2, [8, 8, 3], 3)));
    expect(error.input).toBe(file);
    expect(error.message).toMatch(
      new RegExp(
        `^OnnxTeacher ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: onnxruntime could not run the model on NCHW \\[2, 3, 8, 8\\] \\(input 'images' declared \\[batch, 3, 8, 8\\], output 'features'\\): \\S`,
      ),
    );
    expect(error.message).not.toContain('\n');
    expect(error.message).toContain('Status Message: The input tensor cannot be reshaped');
    expect(error.message).not.toContain('onnxruntime_src');
    expect(error.cause).toBeDefined();
    // the queue goes on after a failed batch
    expect((await teacher.embed(randomImageBatch(1, [8, 8, 3], 4))).rows).toBe(1);
    await teacher.dispose();
  });

  it('reads the model metadata', async () => {
    const { bytes } = linearTeacherModel({});
    expect(readOnnxMetadata(bytes)).toEqual({});
    const meta = { 'compress.normalization': 'inside', 'compress.student': 'alexnet-small', ü: 'ß' };
    expect(readOnnxMetadata(withMetadata(bytes, meta))).toEqual(meta);
    const teacher = await OnnxTeacher.create(withMetadata(bytes, meta), quiet);
    expect(teacher.metadata).toEqual(meta);
    await teacher.dispose();
  });

  it('refuses normalising for a model whose metadata says it normalises inside', async () => {
    const { bytes } = linearTeacherModel({});
    const inside = withMetadata(bytes, { 'compress.normalization': 'inside' });
    const error = await thrown(OnnxTeacher.create(inside, { ...quiet, normalize: 'imagenet' }));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.input).toBe('normalize');
    expect(error.message).toBe(
      "OnnxTeacher <bytes>: normalize is 'imagenet', but the model's metadata (compress.normalization = inside) says it takes images in [0, 1] as they are (any normalisation is inside the model), so the images would be normalised twice; pass normalize: 'none' (CLI: --teacher-normalize none)",
    );
    const custom = await thrown(
      OnnxTeacher.create(inside, { ...quiet, normalize: { mean: [0.5], std: [0.5] } }),
    );
    expect(custom.message).toContain('normalize is { mean: [0.5], std: [0.5] }');
    // an identity normalisation is no normalisation
    await (await OnnxTeacher.create(inside, { ...quiet, normalize: { mean: [0], std: [1] } })).dispose();
    await (await OnnxTeacher.create(inside, quiet)).dispose();

    // tooling/teacher-export's metadata
    const exported = withMetadata(bytes, {
      'compress.onnxTeacherOptions': JSON.stringify({ inputLayout: 'NCHW', normalize: 'none' }),
    });
    const e2 = await thrown(OnnxTeacher.create(exported, { ...quiet, normalize: 'imagenet' }));
    expect(e2.message).toContain(
      `the model's metadata (compress.onnxTeacherOptions = {"inputLayout":"NCHW","normalize":"none"}) says it takes images in [0, 1]`,
    );
  });

  it('warns when the normalisation differs from the one a bare model declares', async () => {
    const { bytes } = linearTeacherModel({});
    const bare = withMetadata(bytes, {
      'compress.normalization': 'none',
      'compress.mean': '[0.286]',
      'compress.std': '[0.353]',
    });
    const lines: string[] = [];
    const log = (m: string) => lines.push(m);
    await (await OnnxTeacher.create(bare, { ...quiet, log })).dispose();
    expect(lines.filter((l) => l.includes('warning'))).toEqual([
      "OnnxTeacher <bytes>: warning: normalize is 'none' (the default), but the model's metadata (compress.normalization = none) says it expects input normalised with { mean: [0.286], std: [0.353] }; pass normalize: { mean: [0.286], std: [0.353] } (CLI: --teacher-normalize 0.286,0.353) unless you mean it",
    ]);
    lines.length = 0;
    await (
      await OnnxTeacher.create(bare, { ...quiet, log, normalize: { mean: [0.286], std: [0.353] } })
    ).dispose();
    expect(lines.filter((l) => l.includes('warning'))).toEqual([]);
    const imagenet = withMetadata(bytes, { 'compress.onnxTeacherOptions': '{"normalize":"imagenet"}' });
    await (
      await OnnxTeacher.create(imagenet, {
        ...quiet,
        log,
        normalize: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
      })
    ).dispose();
    expect(lines.filter((l) => l.includes('warning'))).toEqual([]);
  });
});
