import {
  FLOAT as ONNX_FLOAT,
  INT64 as ONNX_INT64,
  type OnnxGraph,
  type OnnxInitializer,
  type OnnxNode,
  type OnnxValue,
} from '@compress/onnx';

/**
 * The ONNX graphs behind the `onnxruntime` training kernels. Every graph reads and writes
 * TensorFlow.js's layouts (NHWC activations, [kh, kw, Cin, Cout] or [kh, kw, C, mult] filters) and
 * converts inside: onnxruntime's CPU convolutions are NCHW (and become its blocked NCHWc kernels
 * on AVX2 machines). Each graph has fixed shapes: one session per layer geometry, built once.
 */

/** Where a convolution reads: pads as [top, left, bottom, right], strides and dilations [h, w]. */
export interface ConvGeometry {
  pads: [number, number, number, number];
  strides: [number, number];
  dilations: [number, number];
}

export type FusedActivation = 'linear' | 'relu' | 'relu6';

const OPSET = 17;
const f32 = (name: string, shape: number[]): OnnxValue => ({ name, elemType: ONNX_FLOAT, shape });
const i64 = (name: string, values: number[]): OnnxInitializer => ({
  name,
  elemType: ONNX_INT64,
  dims: [values.length],
  values,
});
const scalar = (name: string, value: number): OnnxInitializer => ({
  name,
  elemType: ONNX_FLOAT,
  dims: [],
  values: [value],
});
const NHWC_TO_NCHW = [0, 3, 1, 2];
const NCHW_TO_NHWC = [0, 2, 3, 1];

function activationNodes(input: string, output: string, activation: FusedActivation): OnnxNode[] {
  if (activation === 'linear') return [{ opType: 'Identity', inputs: [input], outputs: [output] }];
  if (activation === 'relu') return [{ opType: 'Relu', inputs: [input], outputs: [output] }];
  return [{ opType: 'Clip', inputs: [input, 'zero', 'six'], outputs: [output] }];
}

/** Whether a convolution is pointwise (1×1, no padding): a matrix product in NHWC, no transposes. */
export function isPointwise(filterShape: number[], g: ConvGeometry): boolean {
  return filterShape[0] === 1 && filterShape[1] === 1 && g.pads.every((p) => p === 0);
}

/**
 * y = act(conv(x, w) + b): x [N, H, W, Cin] → y [N, Ho, Wo, Cout]. Pointwise convolutions are one
 * matrix product on the NHWC rows (strided ones read every s-th row and column first); others go
 * through onnxruntime's NCHW convolution between two transposes.
 */
export function convForwardGraph(o: {
  xShape: number[];
  filterShape: number[];
  outShape: number[];
  geometry: ConvGeometry;
  bias: boolean;
  activation: FusedActivation;
}): OnnxGraph {
  const { pads, strides, dilations } = o.geometry;
  const [n, ho, wo, cout] = o.outShape as [number, number, number, number];
  const cin = o.xShape[3] as number;
  const inputs = [f32('x', o.xShape), f32('w', o.filterShape)];
  if (o.bias) inputs.push(f32('b', [cout]));
  const inits: OnnxInitializer[] = o.activation === 'relu6' ? [scalar('zero', 0), scalar('six', 6)] : [];
  const nodes: OnnxNode[] = [];
  if (isPointwise(o.filterShape, o.geometry)) {
    let rows = 'x';
    if (strides[0] !== 1 || strides[1] !== 1) {
      rows = 'xs';
      nodes.push({ opType: 'Slice', inputs: ['x', 'start', 'end', 'axes', 'steps'], outputs: ['xs'] });
      inits.push(
        i64('start', [0, 0]),
        i64('end', [strides[0] * (ho - 1) + 1, strides[1] * (wo - 1) + 1]),
        i64('axes', [1, 2]),
        i64('steps', [strides[0], strides[1]]),
      );
    }
    nodes.push(
      { opType: 'Reshape', inputs: [rows, 'xshape'], outputs: ['x2'] },
      { opType: 'Reshape', inputs: ['w', 'wshape'], outputs: ['w2'] },
      o.bias
        ? { opType: 'Gemm', inputs: ['x2', 'w2', 'b'], outputs: ['y2'] }
        : { opType: 'MatMul', inputs: ['x2', 'w2'], outputs: ['y2'] },
      ...activationNodes('y2', 'ya', o.activation),
      { opType: 'Reshape', inputs: ['ya', 'yshape'], outputs: ['y'] },
    );
    inits.push(i64('xshape', [n * ho * wo, cin]), i64('wshape', [cin, cout]), i64('yshape', o.outShape));
  } else {
    nodes.push(
      { opType: 'Transpose', inputs: ['x'], outputs: ['xc'], intLists: { perm: NHWC_TO_NCHW } },
      { opType: 'Transpose', inputs: ['w'], outputs: ['wc'], intLists: { perm: [3, 2, 0, 1] } },
      {
        opType: 'Conv',
        inputs: o.bias ? ['xc', 'wc', 'b'] : ['xc', 'wc'],
        outputs: ['yc'],
        intLists: { pads, strides, dilations },
      },
      ...activationNodes('yc', 'ya', o.activation),
      { opType: 'Transpose', inputs: ['ya'], outputs: ['y'], intLists: { perm: NCHW_TO_NHWC } },
    );
  }
  return {
    name: 'compress-conv',
    opset: OPSET,
    nodes,
    inputs,
    outputs: [f32('y', o.outShape)],
    initializers: inits,
  };
}

/**
 * dx = the gradient of a convolution with respect to its input: dy [N, Ho, Wo, Cout] → dx [N, H, W, Cin].
 * Pointwise: dy·wᵀ on the NHWC rows (strided: spread back to every s-th row and column, zeros
 * between). Stride 1 (dilation 1): a forward convolution of dy with the filter rotated by 180° and
 * its channel axes swapped, padded by k − 1 − pad (onnxruntime's fast convolution path).
 * Otherwise onnxruntime's ConvTranspose, whose weight layout is the forward convolution's.
 */
export function convBackpropInputGraph(o: {
  dyShape: number[];
  filterShape: number[];
  inShape: number[];
  geometry: ConvGeometry;
}): OnnxGraph {
  const { pads, strides, dilations } = o.geometry;
  const [kh, kw, cin, cout] = o.filterShape as [number, number, number, number];
  const [n, ho, wo] = o.dyShape as [number, number, number];
  const [, h, wd] = o.inShape as [number, number, number];
  const io = {
    name: 'compress-conv-backprop-input',
    opset: OPSET,
    inputs: [f32('dy', o.dyShape), f32('w', o.filterShape)],
    outputs: [f32('dx', o.inShape)],
  };
  if (isPointwise(o.filterShape, o.geometry)) {
    const [sh, sw] = strides;
    const nodes: OnnxNode[] = [
      { opType: 'Reshape', inputs: ['dy', 'dyshape'], outputs: ['dy2'] },
      { opType: 'Reshape', inputs: ['w', 'wshape'], outputs: ['w2'] },
      { opType: 'Gemm', inputs: ['dy2', 'w2'], outputs: ['dx2'], ints: { transB: 1 } },
    ];
    const inits = [i64('dyshape', [n * ho * wo, cout]), i64('wshape', [cin, cout])];
    if (sh === 1 && sw === 1) {
      nodes.push({ opType: 'Reshape', inputs: ['dx2', 'dxshape'], outputs: ['dx'] });
      inits.push(i64('dxshape', o.inShape));
    } else {
      // [N·Ho·Wo, Cin] → [N, Ho, 1, Wo, 1, Cin] → zeros after each row and column → [N, Ho·s, Wo·s, Cin] → [N, H, W, Cin]
      nodes.push(
        { opType: 'Reshape', inputs: ['dx2', 'spread'], outputs: ['dx6'] },
        { opType: 'Pad', inputs: ['dx6', 'gaps'], outputs: ['dxp'] },
        { opType: 'Reshape', inputs: ['dxp', 'full'], outputs: ['dxf'] },
        { opType: 'Slice', inputs: ['dxf', 'start', 'end', 'axes'], outputs: ['dx'] },
      );
      inits.push(
        i64('spread', [n, ho, 1, wo, 1, cin]),
        i64('gaps', [0, 0, 0, 0, 0, 0, 0, 0, sh - 1, 0, sw - 1, 0]),
        i64('full', [n, ho * sh, wo * sw, cin]),
        i64('start', [0, 0]),
        i64('end', [h, wd]),
        i64('axes', [1, 2]),
      );
    }
    return { ...io, nodes, initializers: inits };
  }
  const toNchw: OnnxNode = {
    opType: 'Transpose',
    inputs: ['dy'],
    outputs: ['dyc'],
    intLists: { perm: NHWC_TO_NCHW },
  };
  const toNhwc: OnnxNode = {
    opType: 'Transpose',
    inputs: ['dxc'],
    outputs: ['dx'],
    intLists: { perm: NCHW_TO_NHWC },
  };
  if (rotatedConvApplies(o.geometry, kh, kw)) {
    // [kh, kw, Cin, Cout] → [Cin, Cout, kh, kw], flipped in both spatial axes
    const far = -Number.MAX_SAFE_INTEGER;
    return {
      ...io,
      nodes: [
        toNchw,
        { opType: 'Transpose', inputs: ['w'], outputs: ['wt'], intLists: { perm: [2, 3, 0, 1] } },
        { opType: 'Slice', inputs: ['wt', 'flipstart', 'flipend', 'flipaxes', 'flipsteps'], outputs: ['wr'] },
        {
          opType: 'Conv',
          inputs: ['dyc', 'wr'],
          outputs: ['dxc'],
          intLists: { pads: [kh - 1 - pads[0], kw - 1 - pads[1], kh - 1 - pads[2], kw - 1 - pads[3]] },
        },
        toNhwc,
      ],
      initializers: [
        i64('flipstart', [-1, -1]),
        i64('flipend', [far, far]),
        i64('flipaxes', [2, 3]),
        i64('flipsteps', [-1, -1]),
      ],
    };
  }
  const outputPadding = transposeOutputPadding(o.geometry, [h, wd], [ho, wo], o.filterShape);
  return {
    ...io,
    nodes: [
      toNchw,
      { opType: 'Transpose', inputs: ['w'], outputs: ['wc'], intLists: { perm: [3, 2, 0, 1] } },
      {
        opType: 'ConvTranspose',
        inputs: ['dyc', 'wc'],
        outputs: ['dxc'],
        intLists: { pads, strides, dilations, output_padding: outputPadding },
      },
      toNhwc,
    ],
    initializers: [],
  };
}

/**
 * The output padding that makes ConvTranspose give back the input's size [h, w] from the output's
 * [ho, wo]: its output is s·(Ho − 1) + d·(k − 1) + 1 + outputPadding − padBegin − padEnd.
 */
export function transposeOutputPadding(
  g: ConvGeometry,
  [h, w]: [number, number],
  [ho, wo]: [number, number],
  [kh, kw]: number[],
): [number, number] {
  const { pads, strides, dilations } = g;
  return [
    h - (strides[0] * (ho - 1) + dilations[0] * ((kh as number) - 1) + 1 - pads[0] - pads[2]),
    w - (strides[1] * (wo - 1) + dilations[1] * ((kw as number) - 1) + 1 - pads[1] - pads[3]),
  ];
}

/** Whether dx can be a plain convolution with the rotated filter (stride 1, dilation 1, pads < k). */
export function rotatedConvApplies(g: ConvGeometry, kh: number, kw: number): boolean {
  return (
    g.strides[0] === 1 &&
    g.strides[1] === 1 &&
    g.dilations[0] === 1 &&
    g.dilations[1] === 1 &&
    g.pads[0] < kh &&
    g.pads[2] < kh &&
    g.pads[1] < kw &&
    g.pads[3] < kw
  );
}

/**
 * dW of a convolution (dilations 1) over a chunk of the batch: the input padded once, then for each filter tap (i, j) the
 * strided window x_pad[:, i + s·u, j + s·v, :] as an (N·Ho·Wo)×Cin matrix against dy as an
 * (N·Ho·Wo)×Cout matrix — one large matrix product per tap, K = N·Ho·Wo, all in NHWC. Dense:
 * xᵀ·dy → [Cin, Cout] per tap. Depthwise (mult 1): Σ x·dy over N, Ho, Wo → [1, C] per tap.
 */
export function convBackpropFilterGraph(o: {
  xShape: number[];
  dyShape: number[];
  filterShape: number[];
  geometry: ConvGeometry;
  depthwise: boolean;
  /** Adds the result to an input `acc` of the filter's shape (sums over batch chunks). */
  accumulate?: boolean;
}): OnnxGraph {
  const { pads, strides } = o.geometry;
  const [n, h, w, cin] = o.xShape as [number, number, number, number];
  const [, ho, wo, cout] = o.dyShape as [number, number, number, number];
  const [kh, kw] = o.filterShape as [number, number];
  const [top, left, bottom, right] = pads;
  const rows = n * ho * wo;
  const nodes: OnnxNode[] = [];
  const inits: OnnxInitializer[] = [];
  const padded = top !== 0 || left !== 0 || bottom !== 0 || right !== 0;
  if (padded) {
    nodes.push({ opType: 'Pad', inputs: ['x', 'pads'], outputs: ['xp'] });
    inits.push(i64('pads', [0, top, left, 0, 0, bottom, right, 0]));
  }
  const hp = h + top + bottom;
  const wp = w + left + right;
  const src = padded ? 'xp' : 'x';
  const taps: string[] = [];
  if (!o.depthwise) {
    nodes.push({ opType: 'Reshape', inputs: ['dy', 'dyshape'], outputs: ['dy2'] });
    inits.push(i64('dyshape', [rows, cout]), i64('xshape', [rows, cin]));
  } else {
    // Σ over N, Ho, Wo as a product with a row of ones (onnxruntime's ReduceSum over leading axes
    // of channels-last data is a strided loop, 5–30× slower)
    inits.push(
      { name: 'ones', elemType: ONNX_FLOAT, dims: [1, rows], values: new Float32Array(rows).fill(1) },
      i64('mshape', [rows, cin]),
    );
  }
  let sliced = false;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const t = `${i}_${j}`;
      const endH = i + strides[0] * (ho - 1) + 1;
      const endW = j + strides[1] * (wo - 1) + 1;
      let window = src;
      if (!(i === 0 && j === 0 && endH === hp && endW === wp && strides[0] === 1 && strides[1] === 1)) {
        window = `s${t}`;
        sliced = true;
        inits.push(i64(`start${t}`, [i, j]), i64(`end${t}`, [endH, endW]));
        nodes.push({
          opType: 'Slice',
          inputs: [src, `start${t}`, `end${t}`, 'sliceaxes', 'steps'],
          outputs: [window],
        });
      }
      if (!o.depthwise) {
        nodes.push(
          { opType: 'Reshape', inputs: [window, 'xshape'], outputs: [`r${t}`] },
          { opType: 'Gemm', inputs: [`r${t}`, 'dy2'], outputs: [`g${t}`], ints: { transA: 1 } },
        );
      } else {
        nodes.push(
          { opType: 'Mul', inputs: [window, 'dy'], outputs: [`m${t}`] },
          { opType: 'Reshape', inputs: [`m${t}`, 'mshape'], outputs: [`r${t}`] },
          { opType: 'MatMul', inputs: ['ones', `r${t}`], outputs: [`g${t}`] },
        );
      }
      taps.push(`g${t}`);
    }
  }
  if (sliced) inits.push(i64('sliceaxes', [1, 2]), i64('steps', [strides[0], strides[1]]));
  nodes.push(
    taps.length === 1
      ? { opType: 'Identity', inputs: taps, outputs: ['cat'] }
      : { opType: 'Concat', inputs: taps, outputs: ['cat'], ints: { axis: 0 } },
    { opType: 'Reshape', inputs: ['cat', 'wshape'], outputs: o.accumulate ? ['part'] : ['dw'] },
  );
  if (o.accumulate) nodes.push({ opType: 'Add', inputs: ['acc', 'part'], outputs: ['dw'] });
  inits.push(i64('wshape', o.filterShape));
  const inputs = [f32('x', o.xShape), f32('dy', o.dyShape)];
  if (o.accumulate) inputs.push(f32('acc', o.filterShape));
  return {
    name: 'compress-conv-backprop-filter',
    opset: OPSET,
    nodes,
    inputs,
    outputs: [f32('dw', o.filterShape)],
    initializers: inits,
  };
}
