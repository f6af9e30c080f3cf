// Conv2d (dense or depthwise, stride, padding, bias) forward and backward, NCHW inside the graph.
import type { Conv2d } from '../nn/conv.js';
import type { Tape, Value } from './tape.js';

/** tfjs filter layouts → ONNX [Cout, Cin/groups, kh, kw]: dense [kh, kw, Cin, Cout], depthwise [kh, kw, C, 1]. */
const DENSE_TO_ONNX = [3, 2, 0, 1];
const DEPTHWISE_TO_ONNX = [2, 3, 0, 1];
/** [kh, kw, Cin, Cout] → [Cin, Cout, kh, kw] (dense), [kh, kw, C, 1] → [C, 1, kh, kw] (depthwise). */
const CHANNELS_FIRST = [2, 3, 0, 1];
const FAR = -Number.MAX_SAFE_INTEGER;

/**
 * y = conv(x, w) + b for x [N, Cin, H, W] and the module's weight `w` (tfjs layout) and bias.
 * Backward: dx by a convolution of dy with the rotated filter (stride 1, padding < k) or by
 * ConvTranspose; dW by one convolution over the batch (x as [Cin, N, H, W] against dy as a
 * [Cout, N, Ho, Wo] filter, dilated by the stride; depthwise: grouped by channel), sliced to k×k
 * and transposed back to the tfjs layout; db = Σ dy.
 */
export function conv2d(t: Tape, m: Conv2d, x: Value, w: Value, b: Value | null): Value {
  const k = m.weight.shape[0] as number;
  const s = m.stride;
  const p = m.padding;
  const [n, cin, h, wd] = x.shape as [number, number, number, number];
  const cout = m.outChannels;
  const group = m.depthwise ? cin : 1;
  const ho = Math.floor((h + 2 * p - k) / s) + 1;
  const wo = Math.floor((wd + 2 * p - k) / s) + 1;
  const pads = [p, p, p, p];
  const wc = t.op('Transpose', [w.name], {
    intLists: { perm: m.depthwise ? DEPTHWISE_TO_ONNX : DENSE_TO_ONNX },
  });
  const y = t.op('Conv', b ? [x.name, wc, b.name] : [x.name, wc], {
    ints: { group },
    intLists: { kernel_shape: [k, k], strides: [s, s], pads },
  });
  const inputs = b ? [x, w, b] : [x, w];
  return t.record(inputs, y, [n, cout, ho, wo], (dy, want) => {
    let dx: string | null = null;
    if (want[0]) {
      if (s === 1 && p < k) {
        // a convolution with the filter rotated by 180° and its channel axes swapped
        const rotated = t.op('Slice', [
          t.op('Transpose', [w.name], { intLists: { perm: CHANNELS_FIRST } }),
          t.i64([-1, -1]),
          t.i64([FAR, FAR]),
          t.i64([2, 3]),
          t.i64([-1, -1]),
        ]);
        const q = k - 1 - p;
        dx = t.op('Conv', [dy, rotated], {
          ints: { group },
          intLists: { kernel_shape: [k, k], pads: [q, q, q, q] },
        });
      } else {
        const outputPadding = [h - (s * (ho - 1) + k - 2 * p), wd - (s * (wo - 1) + k - 2 * p)];
        dx = t.op('ConvTranspose', [dy, wc], {
          ints: { group },
          intLists: { kernel_shape: [k, k], strides: [s, s], pads, output_padding: outputPadding },
        });
      }
    }
    // dW: taps kk ≥ k wide (the last ones beyond k read past every output position: sliced off)
    const dyT = t.op('Transpose', [dy], { intLists: { perm: [1, 0, 2, 3] } });
    const xT = t.op('Transpose', [x.name], { intLists: { perm: [1, 0, 2, 3] } });
    const source = m.depthwise ? t.op('Reshape', [xT, t.i64([1, cin * n, h, wd])]) : xT;
    const full = t.op('Conv', [source, dyT], {
      ints: { group },
      intLists: { pads, dilations: [s, s] },
    });
    const kkh = h + 2 * p - s * (ho - 1);
    const kkw = wd + 2 * p - s * (wo - 1);
    const taps =
      kkh === k && kkw === k ? full : t.op('Slice', [full, t.i64([0, 0]), t.i64([k, k]), t.i64([2, 3])]);
    // dense: [Cin, Cout, k, k]; depthwise: [1, C, k, k] → [C, 1, k, k]
    const perChannel = m.depthwise ? t.op('Reshape', [taps, t.i64([cin, 1, k, k])]) : taps;
    const dw = t.op('Transpose', [perChannel], { intLists: { perm: [2, 3, 0, 1] } });
    const db = b ? t.op('ReduceSum', [dy, t.i64([0, 2, 3])], { ints: { keepdims: 0 } }) : null;
    return b ? [dx, dw, db] : [dx, dw];
  });
}
