/**
 * The small graph-building surface a module uses to describe itself for export (see onnx/): every
 * module adds its nodes and constants and returns the name of its output. NCHW, like ONNX models
 * exported from PyTorch.
 */
export interface GraphBuilder {
  /** Adds a float32 constant (weights) and returns its name. */
  constant(hint: string, data: Float32Array, dims: number[]): string;
  /** Adds an int64 constant (shapes) and returns its name. */
  constantInt64(hint: string, values: number[]): string;
  /** Adds a node and returns the name of its (single) output. */
  node(
    opType: string,
    inputs: string[],
    attributes?: Record<string, number | number[]>,
    hint?: string,
  ): string;
}
