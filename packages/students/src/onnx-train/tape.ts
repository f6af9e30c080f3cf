// The graph under construction and its tape: forward nodes are added as layers are met, each layer
// records how to take its output's gradient back to its inputs, and `backward` replays the records
// in reverse, summing the gradients of values used more than once (residual branches).
import {
  FLOAT,
  INT64,
  type OnnxGraph,
  type OnnxInitializer,
  type OnnxNode,
  type OnnxValue,
} from '@compress/onnx';

/** A tensor of the graph: its name, its static shape and whether a gradient flows back to it. */
export interface Value {
  readonly name: string;
  readonly shape: readonly number[];
  readonly grad: boolean;
}

/** Node attributes: integers, floats, integer lists and strings (as the ONNX writer takes them). */
export interface Attributes {
  ints?: Record<string, number>;
  floats?: Record<string, number>;
  intLists?: Record<string, readonly number[]>;
  strings?: Record<string, string>;
  /** The op's operator set when not the default (e.g. onnxruntime's `com.microsoft.nchwc`). */
  domain?: string;
}

/**
 * Gradients of a layer's inputs from the gradient `dy` of its output: one name (or null where no
 * gradient is wanted) per input, in the order the layer was recorded with.
 */
export type Backward = (dy: string, want: readonly boolean[]) => (string | null)[];

interface Record_ {
  inputs: readonly Value[];
  output: Value;
  backward: Backward;
}

export class Tape {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxInitializer[] = [];
  readonly inputs: OnnxValue[] = [];
  readonly outputs: OnnxValue[] = [];
  /**
   * The part of the step the next nodes belong to (`forward`, `backward`, …): a prefix of their
   * names, so that a profile of the graph can be summed by part. Empty: no prefix.
   */
  phase = '';
  /**
   * onnxruntime's NCHWc channel block on this CPU (see `nchwcBlockSize`): convolutions use its
   * blocked kernels when > 1. A graph built with it runs only where the block is the same.
   */
  nchwcBlock = 1;
  private count = 0;
  private readonly records: Record_[] = [];
  private readonly grads = new Map<string, string[]>();
  private readonly shared = new Map<string, string>();

  fresh(hint: string): string {
    return `${this.phase ? `${this.phase}/` : ''}${hint}_${this.count++}`;
  }

  /** Declares a float32 graph input. */
  input(name: string, shape: readonly number[], grad: boolean): Value {
    this.inputs.push({ name, shape });
    return { name, shape, grad };
  }

  /** Declares a float32 graph output `name` equal to `value`. */
  output(name: string, value: string, shape: readonly number[]): void {
    this.nodes.push({ opType: 'Identity', inputs: [value], outputs: [name], name });
    this.outputs.push({ name, shape });
  }

  /** Adds a node with one output and returns that output's name. */
  op(opType: string, inputs: readonly string[], attributes: Attributes = {}, hint?: string): string {
    return this.opN(opType, inputs, 1, attributes, hint)[0]!;
  }

  /** Adds a node with `count` outputs and returns their names. */
  opN(
    opType: string,
    inputs: readonly string[],
    count: number,
    attributes: Attributes = {},
    hint?: string,
  ): string[] {
    const base = this.fresh(hint ?? opType.toLowerCase());
    const outputs = Array.from({ length: count }, (_, i) => (i === 0 ? base : `${base}:${i}`));
    this.nodes.push({ opType, inputs, outputs, name: base, ...attributes });
    return outputs;
  }

  /**
   * Adds the nodes of a standalone graph (one of the training kernels' graphs) to this one: its
   * inputs read the values named in `inputs`, its own names get a fresh prefix. Returns the names
   * its outputs have here.
   */
  inline(graph: OnnxGraph, inputs: Record<string, string>): Record<string, string> {
    const prefix = this.fresh(graph.name);
    const names = new Map<string, string>();
    for (const v of graph.inputs) {
      const given = inputs[v.name];
      if (given === undefined) throw new Error(`training graph: ${graph.name} needs input ${v.name}`);
      names.set(v.name, given);
    }
    const rename = (name: string) => {
      if (name === '') return name;
      let n = names.get(name);
      if (n === undefined) {
        n = `${prefix}/${name}`;
        names.set(name, n);
      }
      return n;
    };
    for (const init of graph.initializers ?? []) this.initializers.push({ ...init, name: rename(init.name) });
    for (const node of graph.nodes) {
      this.nodes.push({
        ...node,
        inputs: node.inputs.map(rename),
        outputs: node.outputs.map(rename),
        name: `${prefix}/${node.name ?? node.outputs[0]}`,
      });
    }
    return Object.fromEntries(graph.outputs.map((v) => [v.name, rename(v.name)]));
  }

  /** A float32 constant. */
  f32(hint: string, values: Float32Array | readonly number[], dims: readonly number[]): string {
    const name = this.fresh(hint);
    this.initializers.push({ name, dims, values: Float32Array.from(values) });
    return name;
  }

  /** An int64 vector constant (shapes, axes, slice bounds), shared between nodes. */
  i64(values: readonly number[]): string {
    return this.sharedConstant(`i64:${values.join(',')}`, () => {
      const name = this.fresh('i64');
      this.initializers.push({ name, elemType: INT64, dims: [values.length], values: [...values] });
      return name;
    });
  }

  /**
   * scale · the sum of `v` (shape `shape`) over every axis but the last: [C]. As a product with a
   * constant row — onnxruntime's ReduceSum over leading axes of a channels-last tensor is a strided
   * loop, 5–30× slower than the matrix product.
   */
  sumLeading(v: string, shape: readonly number[], scale = 1): string {
    const c = shape.at(-1) as number;
    const k = shape.reduce((a, b) => a * b, 1) / c;
    const row = this.sharedConstant(`row:${k}:${scale}`, () => {
      const name = this.fresh('row');
      this.initializers.push({ name, dims: [1, k], values: new Float32Array(k).fill(scale) });
      return name;
    });
    const rows = shape.length === 2 ? v : this.op('Reshape', [v, this.i64([k, c])]);
    return this.op('Reshape', [this.op('MatMul', [row, rows]), this.i64([c])]);
  }

  /** A float32 scalar constant, shared between nodes. */
  scalar(value: number): string {
    return this.sharedConstant(`f32:${value}`, () => {
      const name = this.fresh('scalar');
      this.initializers.push({ name, elemType: FLOAT, dims: [], values: [value] });
      return name;
    });
  }

  private sharedConstant(key: string, make: () => string): string {
    let name = this.shared.get(key);
    if (name === undefined) {
      name = make();
      this.shared.set(key, name);
    }
    return name;
  }

  /**
   * The output `name` (shape `shape`) of a layer that read `inputs`; it needs a gradient when any
   * input does, and then `backward` is recorded for the reverse pass.
   */
  record(inputs: readonly Value[], name: string, shape: readonly number[], backward: Backward): Value {
    const output: Value = { name, shape, grad: inputs.some((v) => v.grad) };
    if (output.grad) this.records.push({ inputs, output, backward });
    return output;
  }

  /** Runs the recorded layers' backward parts in reverse order from d(root) = `dy`. */
  backward(root: Value, dy: string): void {
    this.addGrad(root.name, dy);
    for (let r = this.records.length - 1; r >= 0; r--) {
      const { inputs, output, backward } = this.records[r]!;
      const g = this.gradOf(output.name);
      if (g === null) continue;
      const want = inputs.map((v) => v.grad);
      const got = backward(g, want);
      inputs.forEach((v, i) => {
        const gi = got[i] ?? null;
        if (want[i] && gi === null) {
          throw new Error(`training graph: a layer gave no gradient for ${v.name}`);
        }
        if (want[i] && gi !== null) this.addGrad(v.name, gi);
      });
    }
  }

  private addGrad(name: string, g: string): void {
    const list = this.grads.get(name);
    if (list === undefined) this.grads.set(name, [g]);
    else list.push(g);
  }

  /** The gradient of a value (summed over its uses), or null where none reached it. */
  gradOf(name: string): string | null {
    const list = this.grads.get(name);
    if (list === undefined || list.length === 0) return null;
    if (list.length > 1) {
      const sum = this.op('Sum', list, {}, 'gradsum');
      this.grads.set(name, [sum]);
      return sum;
    }
    return list[0]!;
  }
}
