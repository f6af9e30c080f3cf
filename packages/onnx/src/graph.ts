/**
 * The one ONNX model writer of compress (protobuf wire format, written by hand: no dependency).
 * It writes the small compute graphs compress runs on onnxruntime (the k-NN/k-means products of
 * @compress/cluster, the loss step of @compress/losses, the convolutions of @compress/students),
 * the students' ONNX export (weights as initializers, metadata) and the models tests build in
 * memory. Only what those need: nodes with int, float, int-list and string attributes, float32/int64
 * initializers, inputs and outputs with fixed or named dimensions, and metadata. onnxruntime
 * validates what it loads, so a mistake here is an error at session creation, never a wrong result.
 */

/** ONNX TensorProto.DataType values used here. */
export const FLOAT = 1;
export const INT64 = 7;

export type OnnxElemType = typeof FLOAT | typeof INT64;

export interface OnnxValue {
  name: string;
  /** @default FLOAT */
  elemType?: OnnxElemType;
  /** Fixed sizes, or names of dimensions given at run time. */
  shape: readonly (number | string)[];
}

export interface OnnxNode {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  /** The node's name (optional in ONNX). */
  name?: string;
  /** Integer attributes (ONNX INT) and float attributes (ONNX FLOAT, written as float32). */
  ints?: Record<string, number>;
  floats?: Record<string, number>;
  /** Integer-list attributes (ONNX INTS): Conv's pads and strides, Transpose's perm. */
  intLists?: Record<string, readonly number[]>;
  /** String attributes (ONNX STRING): ScatterElements' `reduction`. */
  strings?: Record<string, string>;
  /**
   * The operator set of the op when not the default one, e.g. onnxruntime's `com.microsoft` or
   * `com.microsoft.nchwc` contrib operators (the model imports version 1 of each domain used).
   */
  domain?: string;
}

/** A constant tensor of the graph: int64 values (shapes, axes, pads) or float32 values (weights). */
export interface OnnxInitializer {
  name: string;
  /** @default FLOAT */
  elemType?: OnnxElemType;
  dims: readonly number[];
  values: readonly number[] | Float32Array | BigInt64Array;
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  inputs: readonly OnnxValue[];
  outputs: readonly OnnxValue[];
  /** Version of the default ("ai.onnx") operator set. */
  opset: number;
  /** Constant tensors (weights, shapes, axes, pads, bounds), read by nodes like inputs. */
  initializers?: readonly OnnxInitializer[];
}

/** What the ModelProto around the graph says. */
export interface OnnxModelInfo {
  /** @default 7 */
  irVersion?: number;
  /** @default 'compress' */
  producerName?: string;
  producerVersion?: string;
  /** `metadata_props`, key → value (read back with `readOnnxMetadata`). */
  metadata?: Readonly<Record<string, string>>;
}

/** Serialises a graph as an ONNX ModelProto. */
export function encodeOnnxModel(graph: OnnxGraph, info: OnnxModelInfo = {}): Uint8Array {
  const g = new Writer();
  for (const n of graph.nodes) g.message(1, encodeNode(n));
  g.string(2, graph.name);
  for (const t of graph.initializers ?? []) g.message(5, encodeInitializer(t));
  for (const v of graph.inputs) g.message(11, encodeValue(v));
  for (const v of graph.outputs) g.message(12, encodeValue(v));

  const opset = new Writer();
  opset.string(1, '');
  opset.varint(2, graph.opset);
  const domains = [...new Set(graph.nodes.map((n) => n.domain ?? '').filter((d) => d !== ''))];

  const m = new Writer();
  m.varint(1, info.irVersion ?? 7); // ir_version
  m.string(2, info.producerName ?? 'compress'); // producer_name
  if (info.producerVersion !== undefined) m.string(3, info.producerVersion);
  m.message(7, g.bytes()); // graph
  m.message(8, opset.bytes()); // opset_import
  for (const domain of domains) {
    const extra = new Writer();
    extra.string(1, domain);
    extra.varint(2, 1);
    m.message(8, extra.bytes());
  }
  for (const [key, value] of Object.entries(info.metadata ?? {})) {
    const entry = new Writer();
    entry.string(1, key);
    entry.string(2, value);
    m.message(14, entry.bytes()); // metadata_props
  }
  return m.bytes();
}

function encodeNode(n: OnnxNode): Uint8Array {
  const w = new Writer();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name !== undefined) w.string(3, n.name);
  w.string(4, n.opType);
  if (n.domain) w.string(7, n.domain);
  for (const [name, value] of Object.entries(n.ints ?? {})) {
    const a = new Writer();
    a.string(1, name);
    a.int64Field(3, value); // i
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
  for (const [name, value] of Object.entries(n.strings ?? {})) {
    const a = new Writer();
    a.string(1, name);
    a.string(4, value); // s
    a.varint(20, 3); // type: STRING
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
  const elemType = t.elemType ?? FLOAT;
  const w = new Writer();
  for (const d of t.dims) w.varint(1, d);
  w.varint(2, elemType);
  w.string(8, t.name);
  // raw_data: little-endian values
  let raw: Uint8Array;
  if (elemType === FLOAT) {
    raw = new Uint8Array(4 * count);
    const view = new DataView(raw.buffer);
    for (let i = 0; i < count; i++) view.setFloat32(4 * i, Number(t.values[i]), true);
  } else {
    raw = new Uint8Array(8 * count);
    const view = new DataView(raw.buffer);
    for (let i = 0; i < count; i++) {
      const v = t.values[i]!;
      if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new RangeError(`onnx writer: int64 ${v}`);
      view.setBigInt64(8 * i, BigInt(v), true);
    }
  }
  w.bytesField(9, raw);
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
  tensor.varint(1, v.elemType ?? FLOAT);
  tensor.message(2, shape.bytes());
  const type = new Writer();
  type.message(1, tensor.bytes());
  const w = new Writer();
  w.string(1, v.name);
  w.message(2, type.bytes());
  return w.bytes();
}

const utf8 = new TextEncoder();

/**
 * Protobuf wire-format writer: varint (0), 32-bit (5) and length-delimited (2) fields. Small
 * values go to a byte list; large payloads (weights) are kept as chunks and copied once.
 */
class Writer {
  private readonly chunks: Uint8Array[] = [];
  private pending: number[] = [];
  private length = 0;

  private push(byte: number): void {
    this.pending.push(byte);
    this.length++;
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    this.chunks.push(Uint8Array.from(this.pending));
    this.pending = [];
  }

  private raw(n: number): void {
    // Non-negative integers below 2^53 (every value written here).
    let v = n;
    while (v >= 0x80) {
      this.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.push(v);
  }

  private tag(field: number, wireType: number): void {
    this.raw(field * 8 + wireType);
  }

  /** An int64 field (two's complement, so negative values take ten bytes). */
  int64Field(field: number, value: number): void {
    if (!Number.isSafeInteger(value)) throw new RangeError(`onnx writer: int64 ${value}`);
    this.tag(field, 0);
    if (value >= 0) {
      this.raw(value);
      return;
    }
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.push(Number(v));
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
    for (const x of b) this.push(x);
  }

  bytesField(field: number, bytes: Uint8Array): void {
    this.tag(field, 2);
    this.raw(bytes.length);
    if (bytes.length < 64) {
      for (const b of bytes) this.push(b);
      return;
    }
    this.flush();
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  string(field: number, s: string): void {
    this.bytesField(field, utf8.encode(s));
  }

  message(field: number, bytes: Uint8Array): void {
    this.bytesField(field, bytes);
  }

  bytes(): Uint8Array {
    this.flush();
    if (this.chunks.length === 1) return this.chunks[0]!;
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}
