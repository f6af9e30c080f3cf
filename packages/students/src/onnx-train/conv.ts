// Conv2d (dense or depthwise, stride, padding, bias) forward and backward on NHWC activations, with
// the graphs of the onnxruntime training kernels (the TensorFlow.js path's): the step graph runs the
// same convolutions, matrix products and per-tap filter gradients, inlined.
import {
  type ConvGeometry,
  convBackpropFilterGraph,
  convBackpropInputGraph,
  convForwardGraph,
} from '../kernels/onnxruntime_graphs.js';
import type { Conv2d } from '../nn/conv.js';
import { nchwcApplies, nchwcConv } from './nchwc.js';
import type { Tape, Value } from './tape.js';

const NHWC_TO_NCHW = [0, 3, 1, 2];
const NCHW_TO_NHWC = [0, 2, 3, 1];
/** Depthwise filters [kh, kw, C, 1] → ONNX's grouped layout [C, 1, kh, kw]. */
const DEPTHWISE_TO_ONNX = [2, 3, 0, 1];
const FAR = -Number.MAX_SAFE_INTEGER;

/**
 * y = conv(x, w) + b for x [N, H, W, Cin] and the module's weight `w` (tfjs layout) and bias.
 * Dense: the kernels' forward graph (pointwise: one matrix product on the NHWC rows; else
 * onnxruntime's convolution between transposes, which onnxruntime's optimizer cancels between
 * layers), dx by their input-gradient graph (pointwise: a product with wᵀ; stride 1: a convolution
 * with the rotated filter; else ConvTranspose). Depthwise: onnxruntime's grouped convolution, dx by
 * the grouped rotated convolution or ConvTranspose. dW for both by the kernels' per-tap products
 * (K = N·Ho·Wo; depthwise: per-channel sums), in the tfjs layout; db = Σ dy.
 */
export function conv2d(t: Tape, m: Conv2d, x: Value, w: Value, b: Value | null): Value {
  const filterShape = [...m.weight.shape] as number[];
  const k = filterShape[0] as number;
  const s = m.stride;
  const p = m.padding;
  const [n, h, wd, cin] = x.shape as [number, number, number, number];
  const cout = m.outChannels;
  const ho = Math.floor((h + 2 * p - k) / s) + 1;
  const wo = Math.floor((wd + 2 * p - k) / s) + 1;
  const geometry: ConvGeometry = { pads: [p, p, p, p], strides: [s, s], dilations: [1, 1] };
  const outShape = [n, ho, wo, cout];
  const block = t.nchwcBlock;
  const pointwise = k === 1 && p === 0;
  const blocked = !pointwise && nchwcApplies(cin, cout, m.depthwise, block);
  let y: string;
  if (blocked) {
    y = nchwcConv(t, {
      x,
      w: w.name,
      bias: b ? b.name : null,
      depthwise: m.depthwise,
      kernel: k,
      stride: s,
      pad: p,
      cout,
      block,
    });
  } else if (!m.depthwise) {
    y = t.inline(
      convForwardGraph({
        xShape: [...x.shape],
        filterShape,
        outShape,
        geometry,
        bias: b !== null,
        activation: 'linear',
      }),
      { x: x.name, w: w.name, ...(b ? { b: b.name } : {}) },
    ).y!;
  } else {
    const wc = t.op('Transpose', [w.name], { intLists: { perm: DEPTHWISE_TO_ONNX } });
    const yc = t.op('Conv', b ? [nchw(t, x.name), wc, b.name] : [nchw(t, x.name), wc], {
      ints: { group: cin },
      intLists: { kernel_shape: [k, k], strides: [s, s], pads: geometry.pads },
    });
    y = nhwc(t, yc);
  }
  const inputs = b ? [x, w, b] : [x, w];
  return t.record(inputs, y, outShape, (dy, want) => {
    let dx: string | null = null;
    if (want[0] && s === 1 && p < k && !pointwise && nchwcApplies(cout, cin, m.depthwise, block)) {
      // a stride-1 convolution of dy with the filter rotated by 180° (channel axes swapped)
      const flipped = t.op('Slice', [
        w.name,
        t.i64([-1, -1]),
        t.i64([FAR, FAR]),
        t.i64([0, 1]),
        t.i64([-1, -1]),
      ]);
      dx = nchwcConv(t, {
        x: { name: dy, shape: outShape, grad: false },
        w: m.depthwise ? flipped : t.op('Transpose', [flipped], { intLists: { perm: [0, 1, 3, 2] } }),
        bias: null,
        depthwise: m.depthwise,
        kernel: k,
        stride: 1,
        pad: k - 1 - p,
        cout: cin,
        block,
      });
    } else if (want[0]) {
      dx = m.depthwise
        ? depthwiseInputGrad(t, dy, w.name, x.shape, k, s, p, [ho, wo])
        : t.inline(
            convBackpropInputGraph({ dyShape: outShape, filterShape, inShape: [...x.shape], geometry }),
            {
              dy,
              w: w.name,
            },
          ).dx!;
    }
    const dw = t.inline(
      convBackpropFilterGraph({
        xShape: [...x.shape],
        dyShape: outShape,
        filterShape,
        geometry,
        depthwise: m.depthwise,
      }),
      { x: x.name, dy },
    ).dw!;
    const db = b ? t.sumLeading(dy, outShape) : null;
    return b ? [dx, dw, db] : [dx, dw];
  });
}

const nchw = (t: Tape, v: string) => t.op('Transpose', [v], { intLists: { perm: NHWC_TO_NCHW } });
const nhwc = (t: Tape, v: string) => t.op('Transpose', [v], { intLists: { perm: NCHW_TO_NHWC } });

/** dx of a depthwise convolution: the grouped convolution with the rotated filter (stride 1) or ConvTranspose. */
function depthwiseInputGrad(
  t: Tape,
  dy: string,
  w: string,
  xShape: readonly number[],
  k: number,
  s: number,
  p: number,
  [ho, wo]: [number, number],
): string {
  const [, h, wd, c] = xShape as [number, number, number, number];
  const wc = t.op('Transpose', [w], { intLists: { perm: DEPTHWISE_TO_ONNX } });
  if (s === 1 && p < k) {
    const rotated = t.op('Slice', [wc, t.i64([-1, -1]), t.i64([FAR, FAR]), t.i64([2, 3]), t.i64([-1, -1])]);
    const q = k - 1 - p;
    return nhwc(
      t,
      t.op('Conv', [nchw(t, dy), rotated], {
        ints: { group: c },
        intLists: { kernel_shape: [k, k], pads: [q, q, q, q] },
      }),
    );
  }
  const outputPadding = [h - (s * (ho - 1) + k - 2 * p), wd - (s * (wo - 1) + k - 2 * p)];
  return nhwc(
    t,
    t.op('ConvTranspose', [nchw(t, dy), wc], {
      ints: { group: c },
      intLists: { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], output_padding: outputPadding },
    }),
  );
}
