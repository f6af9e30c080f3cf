import { createRequire } from 'node:module';
import { CompressError, writeFileAtomic } from '@compress/core';
import type { Student } from '../models/student.js';
import type { GraphBuilder } from '../nn/graph.js';
import { ATTR_FLOAT, ATTR_INT, ATTR_INTS, FLOAT, INT64, ModelProto } from './schema.js';

export interface ExportOnnxOptions {
  /**
   * Layout of the model's input: `NCHW` (as PyTorch exports, and what onnxruntime users expect)
   * or `NHWC` (as the students and ImageBatch hold images; a Transpose is added). @default 'NCHW'
   */
  layout?: 'NCHW' | 'NHWC';
  /** A fixed batch size, or 0 for a dynamic `batch` dimension. @default 0 */
  batch?: number;
  /** ONNX opset. @default 13 */
  opset?: number;
}

const version: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

interface Node {
  input: string[];
  output: string[];
  name: string;
  opType: string;
  attribute: { name: string; type: number; i?: number; f?: number; ints?: number[] }[];
}

class Builder implements GraphBuilder {
  readonly nodes: Node[] = [];
  readonly initializers: { name: string; dims: number[]; dataType: number; rawData: Uint8Array }[] = [];
  private count = 0;

  private fresh(hint: string): string {
    return `${hint}_${this.count++}`;
  }

  constant(hint: string, data: Float32Array, dims: number[]): string {
    const name = this.fresh(hint);
    const copy = Float32Array.from(data);
    this.initializers.push({ name, dims, dataType: FLOAT, rawData: new Uint8Array(copy.buffer) });
    return name;
  }

  constantInt64(hint: string, values: number[]): string {
    const name = this.fresh(hint);
    const raw = new BigInt64Array(values.map((v) => BigInt(v)));
    this.initializers.push({
      name,
      dims: [values.length],
      dataType: INT64,
      rawData: new Uint8Array(raw.buffer),
    });
    return name;
  }

  node(
    opType: string,
    inputs: string[],
    attributes: Record<string, number | number[]> = {},
    hint?: string,
  ): string {
    const out = this.fresh(hint ?? opType.toLowerCase());
    const attribute = Object.entries(attributes).map(([name, v]) =>
      Array.isArray(v)
        ? { name, type: ATTR_INTS, ints: v }
        : Number.isInteger(v) && name !== 'epsilon'
          ? { name, type: ATTR_INT, i: v }
          : { name, type: ATTR_FLOAT, f: v },
    );
    this.nodes.push({ input: inputs, output: [out], name: out, opType, attribute });
    return out;
  }
}

/**
 * The student in eval mode (BatchNorm folded into the convolutions) as an ONNX model:
 * input `input` (B×C×H×W, or B×H×W×C with layout NHWC, normalised as `student.spec` says),
 * output `features` (B×Ds). The student's name, options, mean and std are in the metadata.
 */
export function toOnnx(student: Student, options: ExportOnnxOptions = {}): Uint8Array {
  const layout = options.layout ?? 'NCHW';
  const batch = options.batch ?? 0;
  const opset = options.opset ?? 13;
  if (layout !== 'NCHW' && layout !== 'NHWC') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `exportOnnx: layout must be NCHW or NHWC, found ${String(layout)}`,
      { input: 'layout' },
    );
  }
  const wasTraining = student.training;
  student.eval();
  try {
    const g = new Builder();
    const { inputSize: s, channels: c, featureDim } = student.spec;
    const first = layout === 'NHWC' ? g.node('Transpose', ['input'], { perm: [0, 3, 1, 2] }) : 'input';
    const last = student.toGraph(g, first);
    g.nodes.push({
      input: [last],
      output: ['features'],
      name: 'features',
      opType: 'Identity',
      attribute: [],
    });
    const dim = (v: number | string) => (typeof v === 'string' ? { dimParam: v } : { dimValue: v });
    const b = batch > 0 ? batch : 'batch';
    const inShape = layout === 'NCHW' ? [b, c, s, s] : [b, s, s, c];
    const valueInfo = (name: string, shape: (number | string)[]) => ({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: shape.map(dim) } } },
    });
    const model = {
      irVersion: 8,
      producerName: '@compress/students',
      producerVersion: version,
      opsetImport: [{ domain: '', version: opset }],
      graph: {
        name: student.spec.name,
        node: g.nodes,
        initializer: g.initializers,
        input: [valueInfo('input', inShape)],
        output: [valueInfo('features', [b, featureDim])],
      },
      metadataProps: [
        { key: 'compress.student', value: student.spec.name },
        { key: 'compress.options', value: JSON.stringify(student.options) },
        { key: 'compress.layout', value: layout },
        { key: 'compress.mean', value: JSON.stringify(student.spec.mean) },
        { key: 'compress.std', value: JSON.stringify(student.spec.std) },
      ],
    };
    const err = ModelProto.verify(model);
    if (err)
      throw new CompressError('CORRUPT_INPUT', `exportOnnx: internal error building the model: ${err}`);
    return ModelProto.encode(ModelProto.fromObject(model)).finish();
  } finally {
    student.train(wasTraining);
  }
}

/** Writes {@link toOnnx}'s model to `path` atomically. */
export async function exportOnnx(
  student: Student,
  path: string,
  options: ExportOnnxOptions = {},
): Promise<void> {
  await writeFileAtomic(path, toOnnx(student, options));
}
