/**
 * Builds small ONNX models in memory for tests (with @compress/onnx's model writer), so tests run
 * real onnxruntime sessions without checked-in model files.
 */
import { encodeOnnxModel, FLOAT, INT64, type OnnxNode } from '@compress/onnx';

type Dim = number | string;

export interface ValueInfo {
  name: string;
  shape: readonly Dim[];
  /** ONNX TensorProto.DataType: 1 = float32, 7 = int64. @default 1 */
  type?: number;
}

export interface Node {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  /** Attributes: integers, floats or lists of integers. */
  attributes?: Record<string, number | readonly number[] | { float: number }>;
}

export interface Initializer {
  name: string;
  dims: readonly number[];
  /** float32 values, or int64 values when `type` is 7. */
  values: readonly number[];
  type?: number;
}

export interface GraphSpec {
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
  nodes: readonly Node[];
  initializers?: readonly Initializer[];
  opset?: number;
}

/** Serialises a graph as an ONNX model (IR version 8), with @compress/onnx's writer. */
export function buildOnnxModel(spec: GraphSpec): Uint8Array {
  const elemType = (t: number | undefined) => ((t ?? FLOAT) === INT64 ? INT64 : FLOAT);
  const nodes: OnnxNode[] = spec.nodes.map((node, i) => {
    const n: OnnxNode & Required<Pick<OnnxNode, 'ints' | 'floats' | 'intLists'>> = {
      opType: node.op,
      inputs: node.inputs,
      outputs: node.outputs,
      name: `n${i}`,
      ints: {},
      floats: {},
      intLists: {},
    };
    for (const [name, value] of Object.entries(node.attributes ?? {})) {
      if (typeof value === 'number') n.ints[name] = value;
      else if (Array.isArray(value)) n.intLists[name] = value as number[];
      else n.floats[name] = (value as { float: number }).float;
    }
    return n;
  });
  return encodeOnnxModel(
    {
      name: 'g',
      opset: spec.opset ?? 13,
      nodes,
      inputs: spec.inputs.map((v) => ({ name: v.name, elemType: elemType(v.type), shape: v.shape })),
      outputs: spec.outputs.map((v) => ({ name: v.name, elemType: elemType(v.type), shape: v.shape })),
      initializers: (spec.initializers ?? []).map((t) => ({
        name: t.name,
        elemType: elemType(t.type),
        dims: t.dims,
        values: t.values,
      })),
    },
    { irVersion: 8, producerName: 'compress-tests' },
  );
}

/**
 * A linear "teacher": global average pooling of an NCHW (or NHWC) image, then a fixed C×D matrix,
 * plus the per-channel mean and max as extra evidence of the layout. features = [mean_c · W | max_c].
 * Output [N, D + C] (or [N, D + C, 1, 1] with `keepDims`).
 */
export function linearTeacherModel(options: {
  layout?: 'NCHW' | 'NHWC';
  channels?: number;
  size?: Dim;
  dim?: number;
  keepDims?: boolean;
  symbolicOutput?: boolean;
}): { bytes: Uint8Array; weights: number[][] } {
  const layout = options.layout ?? 'NCHW';
  const c = options.channels ?? 3;
  const size = options.size ?? 8;
  const d = options.dim ?? 4;
  const weights = Array.from({ length: c }, (_, i) =>
    Array.from({ length: d }, (_, j) => (i + 1) * 0.5 - j * 0.25),
  );
  const spatial = layout === 'NCHW' ? [2, 3] : [1, 2];
  const nodes: Node[] = [
    { op: 'ReduceMean', inputs: ['images'], outputs: ['mean'], attributes: { axes: spatial, keepdims: 0 } },
    { op: 'ReduceMax', inputs: ['images'], outputs: ['max'], attributes: { axes: spatial, keepdims: 0 } },
    { op: 'MatMul', inputs: ['mean', 'W'], outputs: ['proj'] },
    {
      op: 'Concat',
      inputs: ['proj', 'max'],
      outputs: [options.keepDims ? 'flat' : 'features'],
      attributes: { axis: 1 },
    },
  ];
  if (options.keepDims) nodes.push({ op: 'Unsqueeze', inputs: ['flat', 'axes'], outputs: ['features'] });
  const inputShape = layout === 'NCHW' ? ['batch', c, size, size] : ['batch', size, size, c];
  const outDim: Dim = options.symbolicOutput ? 'd' : d + c;
  const bytes = buildOnnxModel({
    inputs: [{ name: 'images', shape: inputShape }],
    outputs: [{ name: 'features', shape: options.keepDims ? ['batch', outDim, 1, 1] : ['batch', outDim] }],
    nodes,
    initializers: [
      { name: 'W', dims: [c, d], values: weights.flat() },
      ...(options.keepDims ? [{ name: 'axes', dims: [2], values: [2, 3], type: 7 }] : []),
    ],
  });
  return { bytes, weights };
}
