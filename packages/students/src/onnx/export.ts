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
  /**
   * Where the student's input normalisation `(x − mean) / std` (see `preprocess`) goes:
   * - `'inside'`: into the graph, so the model takes pixels in [0, 1] as compress's batches hold
   *   them (use it as a teacher with `normalize: 'none'`);
   * - `'none'`: the bare network, which expects input already normalised with `student.spec.mean`
   *   and `std` (use it as a teacher with `normalize: { mean, std }`).
   * Either way the model's metadata says which (`compress.normalization`).
   * @default 'inside'
   */
  normalization?: 'inside' | 'none';
  /**
   * A fixed batch size, or 0 for a dynamic `batch` dimension. A fixed one suits onnxruntime users
   * with one batch size; OnnxTeacher refuses it.
   * @default 0
   */
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
 * input `input` (B×C×H×W, or B×H×W×C with layout NHWC): pixels in [0, 1] with the normalisation
 * inside (the default), or normalised as `student.spec` says with `normalization: 'none'`;
 * output `features` (B×Ds). The metadata holds the student's name, options, layout, mean and std,
 * `compress.normalization` (`inside` | `none`) and `compress.onnxTeacherOptions` (the
 * OnnxTeacher options that feed it compress's batches).
 */
export function toOnnx(student: Student, options: ExportOnnxOptions = {}): Uint8Array {
  const layout = options.layout ?? 'NCHW';
  const batch = options.batch ?? 0;
  const opset = options.opset ?? 13;
  const normalization = options.normalization ?? 'inside';
  if (normalization !== 'inside' && normalization !== 'none') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `exportOnnx: normalization must be 'inside' or 'none', found ${JSON.stringify(normalization)}`,
      { input: 'normalization' },
    );
  }
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
    const { inputSize: s, channels: c, featureDim, mean, std } = student.spec;
    const nchw = layout === 'NHWC' ? g.node('Transpose', ['input'], { perm: [0, 3, 1, 2] }) : 'input';
    // (x − mean) / std as `preprocess` computes it, per channel of the NCHW tensor
    const perChannel = (values: readonly number[]) =>
      Float32Array.from({ length: c }, (_, i) => values[values.length === 1 ? 0 : i]!);
    const first =
      normalization === 'inside'
        ? g.node(
            'Div',
            [
              g.node('Sub', [nchw, g.constant('mean', perChannel(mean), [1, c, 1, 1])], {}, 'centred'),
              g.constant('std', perChannel(std), [1, c, 1, 1]),
            ],
            {},
            'normalised',
          )
        : nchw;
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
        { key: 'compress.normalization', value: normalization },
        {
          key: 'compress.onnxTeacherOptions',
          value: JSON.stringify({
            inputLayout: layout,
            normalize:
              normalization === 'inside' ? 'none' : { mean: student.spec.mean, std: student.spec.std },
          }),
        },
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
