/**
 * Builds small ONNX models in memory for tests (a minimal protobuf writer for the few ModelProto
 * fields a graph needs), so tests run real onnxruntime sessions without checked-in model files.
 */

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

class Writer {
  bytes: number[] = [];
  varint(v: number | bigint): this {
    let x = BigInt.asUintN(64, BigInt(v));
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) b |= 0x80;
      this.bytes.push(b);
    } while (x !== 0n);
    return this;
  }
  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }
  int(field: number, v: number): this {
    return this.tag(field, 0).varint(v);
  }
  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(new Float32Array([v]).buffer);
    this.bytes.push(...b);
    return this;
  }
  bytesField(field: number, data: Uint8Array | number[]): this {
    this.tag(field, 2).varint(data.length);
    for (const b of data) this.bytes.push(b);
    return this;
  }
  string(field: number, s: string): this {
    return this.bytesField(field, Array.from(new TextEncoder().encode(s)));
  }
  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytesField(field, inner.bytes);
  }
}

function valueInfo(w: Writer, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, v.type ?? 1);
      tensor.message(2, (shape) => {
        for (const d of v.shape) {
          shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
        }
      });
    }),
  );
}

/** Serialises a graph as an ONNX model (IR version 8). */
export function buildOnnxModel(spec: GraphSpec): Uint8Array {
  const w = new Writer();
  w.int(1, 8); // ir_version
  w.string(2, 'compress-tests'); // producer_name
  w.message(7, (g) => {
    spec.nodes.forEach((node, i) => {
      g.message(1, (n) => {
        for (const x of node.inputs) n.string(1, x);
        for (const x of node.outputs) n.string(2, x);
        n.string(3, `n${i}`);
        n.string(4, node.op);
        for (const [name, value] of Object.entries(node.attributes ?? {})) {
          n.message(5, (a) => {
            a.string(1, name);
            if (typeof value === 'number')
              a.int(3, value).int(20, 2); // INT
            else if (Array.isArray(value)) {
              for (const v of value as number[]) a.int(8, v);
              a.int(20, 7); // INTS
            } else a.float(2, (value as { float: number }).float).int(20, 1); // FLOAT
          });
        }
      });
    });
    g.string(2, 'g');
    for (const init of spec.initializers ?? []) {
      g.message(5, (t) => {
        for (const d of init.dims) t.int(1, d);
        t.int(2, init.type ?? 1);
        t.string(8, init.name);
        if ((init.type ?? 1) === 7) {
          const raw = new Uint8Array(new BigInt64Array(init.values.map((v) => BigInt(v))).buffer);
          t.bytesField(9, raw);
        } else {
          t.bytesField(9, new Uint8Array(new Float32Array(init.values).buffer));
        }
      });
    }
    for (const v of spec.inputs) g.message(11, (m) => valueInfo(m, v));
    for (const v of spec.outputs) g.message(12, (m) => valueInfo(m, v));
  });
  w.message(8, (o) => o.string(1, '').int(2, spec.opset ?? 13));
  return new Uint8Array(w.bytes);
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
