import { createNativeSession, encodeOnnxModel, INT64, requireOnnxRuntimeNative } from '@compress/onnx';

const ort = requireOnnxRuntimeNative({ user: 't', otherwise: '' });
const [N, H, W, C, CO, K] = JSON.parse(process.argv[2] ?? '[256,6,6,96,64,3]');
const B = Number(process.argv[3] ?? 16),
  threads = 2,
  P = (K - 1) / 2;
const i64 = (name, values) => ({ name, elemType: INT64, dims: [values.length], values });
const x = new ort.Tensor(
  'float32',
  new Float32Array(N * H * W * C).map(() => Math.random() - 0.5),
  [N, H, W, C],
);
const w = new ort.Tensor(
  'float32',
  new Float32Array(CO * C * K * K).map(() => Math.random() - 0.5),
  [K, K, C, CO],
);
function time(label, model, flops) {
  const s = createNativeSession(ort, model, { threads });
  let y;
  for (let i = 0; i < 3; i++) y = s.run({ x, w }, { y: null }, {}).y;
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < 2000) {
    s.run({ x, w }, { y: null }, {});
    n++;
  }
  const ms = (performance.now() - t0) / n;
  console.log(label, ms.toFixed(2), 'ms', (flops / ms / 1e6).toFixed(1), 'GFLOP/s');
  return y.data;
}
const flops = 2 * N * H * W * C * CO * K * K;
const io = {
  inputs: [
    { name: 'x', shape: [N, H, W, C] },
    { name: 'w', shape: [K, K, C, CO] },
  ],
  outputs: [{ name: 'y', shape: [N, H, W, CO] }],
};
const ref = time(
  'Conv NCHW (transposes)',
  encodeOnnxModel({
    name: 'c',
    opset: 17,
    ...io,
    nodes: [
      { opType: 'Transpose', inputs: ['x'], outputs: ['xc'], intLists: { perm: [0, 3, 1, 2] } },
      { opType: 'Transpose', inputs: ['w'], outputs: ['wc'], intLists: { perm: [3, 2, 0, 1] } },
      {
        opType: 'Conv',
        inputs: ['xc', 'wc'],
        outputs: ['yc'],
        intLists: { kernel_shape: [K, K], pads: [P, P, P, P] },
      },
      { opType: 'Transpose', inputs: ['yc'], outputs: ['y'], intLists: { perm: [0, 2, 3, 1] } },
    ],
  }),
  flops,
);
// blocked: OIHWBiBo from [K,K,C,CO]: reshape [K,K,C/B,B,CO/B,B] -> perm [4,2,0,1,3,5]
const nchwc = C >= B;
const nodes = nchwc
  ? [
      {
        opType: 'ReorderInput',
        domain: 'com.microsoft.nchwc',
        inputs: ['x'],
        outputs: ['xb'],
        ints: { channels_last: 1 },
      },
      { opType: 'Reshape', inputs: ['w', 'ws'], outputs: ['w6'] },
      { opType: 'Transpose', inputs: ['w6'], outputs: ['wt'], intLists: { perm: [4, 2, 0, 1, 3, 5] } },
      { opType: 'Reshape', inputs: ['wt', 'wf'], outputs: ['wb'] },
    ]
  : [
      { opType: 'Transpose', inputs: ['x'], outputs: ['xb'], intLists: { perm: [0, 3, 1, 2] } },
      { opType: 'Reshape', inputs: ['w', 'ws'], outputs: ['w6'] },
      { opType: 'Transpose', inputs: ['w6'], outputs: ['wt'], intLists: { perm: [3, 2, 0, 1, 4] } },
      { opType: 'Reshape', inputs: ['wt', 'wf'], outputs: ['wb'] },
    ];
nodes.push(
  {
    opType: 'Conv',
    domain: 'com.microsoft.nchwc',
    inputs: ['xb', 'wb'],
    outputs: ['yb'],
    intLists: { kernel_shape: [K, K], pads: [P, P, P, P], strides: [1, 1], dilations: [1, 1] },
    ints: { group: 1 },
  },
  {
    opType: 'ReorderOutput',
    domain: 'com.microsoft.nchwc',
    inputs: ['yb'],
    outputs: ['y'],
    ints: { channels: CO, channels_last: 1 },
  },
);
const inits = nchwc
  ? [i64('ws', [K, K, C / B, B, CO / B, B]), i64('wf', [CO, C, K, K])]
  : [i64('ws', [K, K, C, CO / B, B]), i64('wf', [CO, C, K, K])];
const got = time(
  `nchwc.Conv B${B}`,
  encodeOnnxModel({ name: 'c', opset: 17, ...io, nodes, initializers: inits }),
  flops,
);
let d = 0,
  sc = 0;
for (let i = 0; i < ref.length; i++) {
  d = Math.max(d, Math.abs(ref[i] - got[i]));
  sc = Math.max(sc, Math.abs(ref[i]));
}
console.log('max diff / scale', d / sc);
