import { CompressError } from '@compress/core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { backend_util, getKernel, type NamedAttrMap, type TensorInfo } from '@tensorflow/tfjs-core';

/**
 * Runs other kernels of the same backend from inside a kernel, without going through the engine
 * (so nothing is recorded on a gradient tape twice), and frees every intermediate at the end.
 * This is how tfjs's own composite kernels work (they call `reshape({inputs, backend, attrs})`).
 */
export class KernelScope {
  private readonly temps: TensorInfo[] = [];

  constructor(readonly backend: BackendWasm) {}

  /** Runs kernel `name` of the backend; the result is freed by {@link dispose} unless kept. */
  run(name: string, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap = {}): TensorInfo {
    const config = getKernel(name, 'wasm');
    if (config === undefined) {
      throw new CompressError(
        'BACKEND_UNAVAILABLE',
        `kernel '${name}' is not registered for backend 'wasm'`,
        {
          input: name,
        },
      );
    }
    const out = config.kernelFunc({ inputs, attrs, backend: this.backend }) as TensorInfo;
    this.temps.push(out);
    return out;
  }

  /** Marks `t` as an intermediate to free at {@link finish}. */
  track(t: TensorInfo): TensorInfo {
    this.temps.push(t);
    return t;
  }

  /** A new float32 output tensor owned by the caller (not freed by {@link finish} unless tracked). */
  output(shape: number[]): TensorInfo {
    return this.backend.makeOutput(shape, 'float32');
  }

  /** The float32 values of `t`, as a view into the wasm heap (no copy). */
  values(t: TensorInfo): Float32Array {
    return this.backend.typedArrayFromHeap(t) as Float32Array;
  }

  /** Frees every intermediate except `keep`, and returns `keep`. */
  finish(keep: TensorInfo): TensorInfo {
    for (const t of this.temps) if (t !== keep) this.backend.disposeData(t.dataId);
    this.temps.length = 0;
    return keep;
  }
}

/** Rejects what the training kernels do not implement, naming the kernel and the value. */
export function assertSupported(
  kernel: string,
  dataFormat: string | undefined,
  dilations: number | [number, number] | undefined,
): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC' && dataFormat !== 'channelsLast') {
    throw new CompressError('UNSUPPORTED', `${kernel}: dataFormat must be NHWC, found ${dataFormat}`, {
      input: 'dataFormat',
    });
  }
  const d = typeof dilations === 'number' ? [dilations, dilations] : (dilations ?? [1, 1]);
  if (d[0] !== 1 || d[1] !== 1) {
    throw new CompressError(
      'UNSUPPORTED',
      `${kernel}: dilations must be 1 (tfjs gradients never ask for more), found [${d.join(', ')}]`,
      { input: 'dilations' },
    );
  }
}

/**
 * Inserts `s − 1` zero rows/columns between the rows/columns of `dy` (NHWC), the usual way to turn
 * the gradient of a strided convolution into a stride-1 one: [B, Ho, Wo, C] → [B, (Ho−1)·sh + 1 + extraH,
 * (Wo−1)·sw + 1 + extraW, C], where the `extra` trailing zero rows replace part of the padding.
 * Returns the tensor and how many trailing zero rows/columns it carries (at most s − 1).
 */
export function dilateSpatial(
  scope: KernelScope,
  dy: TensorInfo,
  sh: number,
  sw: number,
): { dilated: TensorInfo; trailH: number; trailW: number } {
  if (sh === 1 && sw === 1) return { dilated: dy, trailH: 0, trailW: 0 };
  const [b, ho, wo, c] = dy.shape as [number, number, number, number];
  // dy: B×Ho×1×Wo×1×C → pad the unit axes to sh and sw → B×(Ho·sh)×(Wo·sw)×C
  const r6 = scope.run('Reshape', { x: dy }, { shape: [b, ho, 1, wo, 1, c] });
  const padded = scope.run(
    'PadV2',
    { x: r6 },
    {
      paddings: [
        [0, 0],
        [0, 0],
        [0, sh - 1],
        [0, 0],
        [0, sw - 1],
        [0, 0],
      ],
      constantValue: 0,
    },
  );
  const dilated = scope.run('Reshape', { x: padded }, { shape: [b, ho * sh, wo * sw, c] });
  return { dilated, trailH: sh - 1, trailW: sw - 1 };
}

/** Forward-convolution geometry (NHWC) of a tfjs Conv2D/DepthwiseConv2dNative call. */
export function convGeometry(
  xShape: number[],
  filterShape: number[],
  strides: number | [number, number],
  pad: 'same' | 'valid' | number | backend_util.ExplicitPadding,
  dimRoundingMode: 'floor' | 'round' | 'ceil' | undefined,
  depthwise: boolean,
): backend_util.Conv2DInfo {
  return backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
    depthwise,
    'channelsLast',
  );
}
