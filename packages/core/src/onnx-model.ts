/**
 * A minimal writer of ONNX model files (protobuf wire format) for the small compute graphs that
 * compress runs on onnxruntime (the k-NN/k-means products of @compress/cluster, the loss of
 * @compress/losses). Only what those graphs need: nodes with int and float attributes, and
 * float32/int64 inputs and outputs with fixed or named dimensions. onnxruntime validates what it
 * loads, so a mistake here is an error at session creation, never a wrong result.
 * Also used for the convolution graphs of @compress/students.
 */

/** ONNX TensorProto.DataType values used here. */
export const FLOAT = 1;
export const INT64 = 7;

export interface OnnxValue {
  name: string;
  elemType: typeof FLOAT | typeof INT64;
  /** Fixed sizes, or names of dimensions given at run time. */
  shape: (number | string)[];
}

export interface OnnxNode {
  opType: string;
  inputs: string[];
  outputs: string[];
  /** Integer attributes (ONNX INT) and float attributes (ONNX FLOAT, written as float32). */
  ints?: Record<string, number>;
  floats?: Record<string, number>;
  /** Integer-list attributes (ONNX INTS): Conv's pads and strides, Transpose's perm. */
  intLists?: Record<string, readonly number[]>;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  inputs: OnnxValue[];
  outputs: OnnxValue[];
  /** Version of the default ("ai.onnx") operator set. */
  opset: number;
  /** Constant tensors (shapes, axes, pads, bounds), read by nodes like inputs. */
  initializers?: OnnxInitializer[];
}

/** A constant tensor of the graph: int64 values (shapes, axes, pads) or float32 values. */
export interface OnnxInitializer {
  name: string;
  elemType: typeof FLOAT | typeof INT64;
  dims: number[];
  values: readonly number[];
}

/** Serialises a graph as an ONNX ModelProto (IR version 7). */
export function encodeOnnxModel(graph: OnnxGraph): Uint8Array {
  const g = new Writer();
  for (const n of graph.nodes) g.message(1, encodeNode(n));
  g.string(2, graph.name);
  for (const t of graph.initializers ?? []) g.message(5, encodeInitializer(t));
  for (const v of graph.inputs) g.message(11, encodeValue(v));
  for (const v of graph.outputs) g.message(12, encodeValue(v));

  const opset = new Writer();
  opset.string(1, '');
  opset.varint(2, graph.opset);

  const m = new Writer();
  m.varint(1, 7); // ir_version
  m.string(2, 'compress'); // producer_name
  m.message(7, g.bytes()); // graph
  m.message(8, opset.bytes()); // opset_import
  return m.bytes();
}

function encodeNode(n: OnnxNode): Uint8Array {
  const w = new Writer();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(4, n.opType);
  for (const [name, value] of Object.entries(n.ints ?? {})) {
    const a = new Writer();
    a.string(1, name);
    a.varint(3, value); // i
    a.varint(20, 2); // type: INT
    w.message(5, a.bytes());
  }
  for (const [name, value] of Object.entries(n.floats ?? {})) {
    const a = new Writer();
    a.string(1, name);
    a.float32(2, value); // f
    a.varint(20, 1); // type: FLOAT
    w.message(5, a.bytes());
  }
  for (const [name, values] of Object.entries(n.intLists ?? {})) {
    const a = new Writer();
    a.string(1, name);
    for (const value of values) a.int64Field(8, value); // ints (unpacked)
    a.varint(20, 7); // type: INTS
    w.message(5, a.bytes());
  }
  return w.bytes();
}

function encodeInitializer(t: OnnxInitializer): Uint8Array {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (count !== t.values.length) {
    throw new RangeError(
      `onnx writer: initializer ${t.name} has ${t.values.length} values for dims [${t.dims}]`,
    );
  }
  const w = new Writer();
  for (const d of t.dims) w.varint(1, d);
  w.varint(2, t.elemType);
  const data = new Writer();
  if (t.elemType === FLOAT) {
    const b = new Uint8Array(4 * count);
    const view = new DataView(b.buffer);
    for (let i = 0; i < count; i++) view.setFloat32(4 * i, t.values[i] as number, true);
    w.bytesField(4, b); // float_data, packed
  } else {
    for (const v of t.values) data.int64(v);
    w.bytesField(7, data.bytes()); // int64_data, packed
  }
  w.string(8, t.name);
  return w.bytes();
}

function encodeValue(v: OnnxValue): Uint8Array {
  const shape = new Writer();
  for (const d of v.shape) {
    const dim = new Writer();
    if (typeof d === 'number') dim.varint(1, d);
    else dim.string(2, d);
    shape.message(1, dim.bytes());
  }
  const tensor = new Writer();
  tensor.varint(1, v.elemType);
  tensor.message(2, shape.bytes());
  const type = new Writer();
  type.message(1, tensor.bytes());
  const w = new Writer();
  w.string(1, v.name);
  w.message(2, type.bytes());
  return w.bytes();
}

/** Protobuf wire-format writer: varint (0), 32-bit (5) and length-delimited (2) fields. */
class Writer {
  private readonly parts: number[] = [];

  private raw(n: number): void {
    // Non-negative integers below 2^53 (every value written here).
    let v = n;
    while (v >= 0x80) {
      this.parts.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.parts.push(v);
  }

  private tag(field: number, wireType: number): void {
    this.raw(field * 8 + wireType);
  }

  /** A bare int64 (two's complement, so negative values take ten bytes), for packed fields. */
  int64(value: number): void {
    if (!Number.isSafeInteger(value)) throw new RangeError(`onnx writer: int64 ${value}`);
    if (value >= 0) {
      this.raw(value);
      return;
    }
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.parts.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.parts.push(Number(v));
  }

  /** An int64 field (negative values allowed). */
  int64Field(field: number, value: number): void {
    this.tag(field, 0);
    this.int64(value);
  }

  varint(field: number, value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`onnx writer: varint ${value}`);
    this.tag(field, 0);
    this.raw(value);
  }

  float32(field: number, value: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.parts.push(...b);
  }

  bytesField(field: number, bytes: Uint8Array): void {
    this.tag(field, 2);
    this.raw(bytes.length);
    for (const b of bytes) this.parts.push(b);
  }

  string(field: number, s: string): void {
    this.bytesField(field, new TextEncoder().encode(s));
  }

  message(field: number, bytes: Uint8Array): void {
    this.bytesField(field, bytes);
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}
