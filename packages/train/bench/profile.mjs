// Sums an onnxruntime profile (its JSON trace) of the step graph by part — the prefix the step
// graph gives every node's name (input, key, forward, objective, backward, update) — and counts the
// floating-point operations of its convolutions and matrix products from the recorded shapes.
const size = (shape) => shape.reduce((a, b) => a * b, 1);

function flops(op, inputs, outputs) {
  const dims = (t) => (t ? Object.values(t)[0] : null);
  const x = dims(inputs[0]);
  const w = dims(inputs[1]);
  const y = dims(outputs?.[0]);
  if (!x || !w || !y) return 0;
  // w [O, I/g, kh, kw]: each output element of a convolution takes I/g·kh·kw products, each
  // input element of a ConvTranspose (w [I, O/g, kh, kw]) O/g·kh·kw
  if (op === 'Conv' || op === 'FusedConv') return 2 * size(y) * size(w.slice(1));
  if (op === 'ConvTranspose') return 2 * size(x) * size(w.slice(1));
  if (op === 'Gemm' || op === 'MatMul' || op === 'FusedMatMul' || op === 'FusedGemm') {
    // y [M, N] from x with M·K entries (either orientation): 2·M·N·K
    const rows = size(y) / y.at(-1);
    return 2 * size(y) * (size(x) / rows);
  }
  return 0;
}

/** { parts: { part: share of node time }, gflop: per run } from a trace of whole runs. */
export function summarize(events) {
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').length;
  const time = {};
  let total = 0;
  let ops = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const name = e.name.slice(0, -'_kernel_time'.length);
    const part = name.includes('/') ? name.split('/')[0].replace(/^fused /, '') : 'other';
    time[part] = (time[part] ?? 0) + e.dur;
    total += e.dur;
    ops += flops(e.args?.op_name, e.args?.input_type_shape ?? [], e.args?.output_type_shape ?? []);
  }
  const parts = Object.fromEntries(Object.entries(time).map(([k, v]) => [k, v / total]));
  return { parts, gflop: ops / runs / 1e9 };
}
