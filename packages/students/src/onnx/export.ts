import { createRequire } from 'node:module';
import { CompressError, writeFileAtomic } from '@compress/core';
import { encodeOnnxModel, INT64, type OnnxInitializer, type OnnxNode } from '@compress/onnx';
import type { Student } from '../models/student.js';
import type { GraphBuilder } from '../nn/graph.js';

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

class Builder implements GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxInitializer[] = [];
  private count = 0;

  private fresh(hint: string): string {
    return `${hint}_${this.count++}`;
  }

  constant(hint: string, data: Float32Array, dims: number[]): string {
    const name = this.fresh(hint);
    this.initializers.push({ name, dims, values: Float32Array.from(data) });
    return name;
  }

  constantInt64(hint: string, values: number[]): string {
    const name = this.fresh(hint);
    this.initializers.push({ name, elemType: INT64, dims: [values.length], values });
    return name;
  }

  node(
    opType: string,
    inputs: string[],
    attributes: Record<string, number | number[]> = {},
    hint?: string,
  ): string {
    const out = this.fresh(hint ?? opType.toLowerCase());
    const node: Required<Pick<OnnxNode, 'ints' | 'floats' | 'intLists'>> & OnnxNode = {
      opType,
      inputs,
      outputs: [out],
      name: out,
      ints: {},
      floats: {},
      intLists: {},
    };
    for (const [name, v] of Object.entries(attributes)) {
      if (Array.isArray(v)) node.intLists[name] = v;
      else if (Number.isInteger(v) && name !== 'epsilon') node.ints[name] = v;
      else node.floats[name] = v;
    }
    this.nodes.push(node);
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
    g.nodes.push({ opType: 'Identity', inputs: [last], outputs: ['features'], name: 'features' });
    const b = batch > 0 ? batch : 'batch';
    const inShape = layout === 'NCHW' ? [b, c, s, s] : [b, s, s, c];
    return encodeOnnxModel(
      {
        name: student.spec.name,
        opset,
        nodes: g.nodes,
        initializers: g.initializers,
        inputs: [{ name: 'input', shape: inShape }],
        outputs: [{ name: 'features', shape: [b, featureDim] }],
      },
      {
        irVersion: 8,
        producerName: '@compress/students',
        producerVersion: version,
        metadata: {
          'compress.student': student.spec.name,
          'compress.options': JSON.stringify(student.options),
          'compress.layout': layout,
          'compress.mean': JSON.stringify(student.spec.mean),
          'compress.std': JSON.stringify(student.spec.std),
          'compress.normalization': normalization,
          'compress.onnxTeacherOptions': JSON.stringify({
            inputLayout: layout,
            normalize:
              normalization === 'inside' ? 'none' : { mean: student.spec.mean, std: student.spec.std },
          }),
        },
      },
    );
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
