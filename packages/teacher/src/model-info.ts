import { CompressError } from '@compress/core';
import type { OrtApi, OrtSession, OrtTensor } from '@compress/onnx';
import type { InputLayout } from './layout.js';

type Dim = number | string;

/** The model's image input and feature output, as the session declares them. */
export interface ModelInfo {
  inputName: string;
  inputShape: readonly Dim[];
  outputName: string;
  outputShape: readonly Dim[];
}

const PROBE_SIZE = 224;

/** The one image input and the feature output of the model, or an error saying what is wrong. */
export function modelInfo(
  session: OrtSession,
  source: string,
  outputName: string | undefined,
  batchSize: number,
): ModelInfo {
  const inputs = session.inputMetadata;
  if (inputs.length !== 1) {
    throw new CompressError(
      'UNSUPPORTED',
      `OnnxTeacher ${source}: the model takes ${inputs.length} inputs (${session.inputNames.join(', ')}), expected one image tensor`,
      { input: source },
    );
  }
  const input = inputs[0]!;
  if (!input.isTensor || input.type !== 'float32' || input.shape.length !== 4) {
    const found = input.isTensor ? `${input.type} [${input.shape.join(', ')}]` : 'a non-tensor value';
    throw new CompressError(
      'UNSUPPORTED',
      `OnnxTeacher ${source}: input '${input.name}' is ${found}, expected a float32 image tensor of rank 4 (NCHW or NHWC)`,
      { input: source },
    );
  }
  const batch = input.shape[0];
  if (typeof batch === 'number' && batch > 0) {
    const out = outputName ?? session.outputNames[0] ?? 'features';
    throw new CompressError(
      'UNSUPPORTED',
      `OnnxTeacher ${source}: input '${input.name}' has a fixed batch size of ${batch} (shape [${input.shape.join(', ')}]), ` +
        `expected a dynamic batch dimension: batches of up to ${batchSize} images (batchSize) are run, the last one of an epoch smaller. ` +
        `Re-export the model with a dynamic batch axis: torch.onnx.export(model, x, '${source === '<bytes>' ? 'teacher.onnx' : source}', ` +
        `input_names=['${input.name}'], output_names=['${out}'], dynamic_axes={'${input.name}': {0: 'batch'}, '${out}': {0: 'batch'}}), ` +
        `or with tooling/teacher-export (python3 tooling/teacher-export/export_teacher.py --format moco|simclr|swav|torchvision --checkpoint <checkpoint> --out <model.onnx>), whose batch axis is dynamic`,
      { input: source },
    );
  }
  const name = outputName ?? session.outputNames[0];
  const output = session.outputMetadata.find((m) => m.name === name);
  if (name === undefined || output === undefined) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `OnnxTeacher ${source}: outputName '${name}' is not an output of the model; its outputs are: ${session.outputNames.join(', ')}`,
      { input: 'outputName' },
    );
  }
  if (!output.isTensor || output.type !== 'float32') {
    throw new CompressError(
      'UNSUPPORTED',
      `OnnxTeacher ${source}: output '${name}' is ${output.isTensor ? output.type : 'not a tensor'}, expected float32 features`,
      { input: source },
    );
  }
  return { inputName: input.name, inputShape: input.shape, outputName: name, outputShape: output.shape };
}

/** NCHW unless the shape says NHWC: a channel-like size (1 or 3) last and not second. */
export function inferLayout(shape: readonly Dim[]): InputLayout {
  const isChannels = (d: Dim | undefined) => d === 1 || d === 3;
  if (isChannels(shape[3]) && !isChannels(shape[1])) return 'NHWC';
  return 'NCHW';
}

/** D from the output's declared shape, or by running one probe image when it is symbolic. */
export async function featureDim(
  ort: OrtApi,
  session: OrtSession,
  info: ModelInfo,
  layout: InputLayout,
  source: string,
): Promise<number> {
  const tail = info.outputShape.slice(1);
  if (tail.length >= 1 && tail.every((d) => typeof d === 'number') && tail.slice(1).every((d) => d === 1)) {
    return tail[0] as number;
  }
  const s = info.inputShape;
  const at = (i: number, fallback: number) =>
    typeof s[i] === 'number' && (s[i] as number) > 0 ? (s[i] as number) : fallback;
  const dims =
    layout === 'NCHW'
      ? [1, at(1, 3), at(2, PROBE_SIZE), at(3, PROBE_SIZE)]
      : [1, at(1, PROBE_SIZE), at(2, PROBE_SIZE), at(3, 3)];
  const size = dims.reduce((a, b) => a * b, 1);
  const probe = new ort.Tensor('float32', new Float32Array(size), dims);
  let result: Record<string, OrtTensor>;
  try {
    result = await session.run({ [info.inputName]: probe }, [info.outputName]);
  } catch (error) {
    throw new CompressError(
      'UNSUPPORTED',
      `OnnxTeacher ${source}: output '${info.outputName}' has a symbolic shape [${info.outputShape.join(', ')}] and a probe run on [${dims.join(', ')}] failed: ${(error as Error).message}`,
      { input: source, cause: error },
    );
  }
  const out = result[info.outputName]!;
  const d = out.dims;
  out.dispose?.();
  if (d.length < 2 || d.slice(2).some((x) => x !== 1)) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `OnnxTeacher ${source}: output '${info.outputName}' has shape [${d.join(', ')}] for one image, expected [1, D] or [1, D, 1, 1]; export the pooled features, or pick another output with outputName`,
      { input: source },
    );
  }
  return d[1]!;
}
