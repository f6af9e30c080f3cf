/**
 * The CompRess loss and its gradient from raw similarities, in plain typed arrays (the `wasm`
 * engine's hot loop, between its two matrix products).
 *
 * Similarities come in column layout, one row per queue entry: `lt[k·B + i] = <tn_i, Qt_k>` and
 * `ls[k·B + i] = <sn_i, Qs_k>` (K×B, as the products Q·xᵀ produce them without any transposed
 * operand). With p_i = softmax_k(lt_i / T) and q_i = softmax_k(ls_i / T) it returns
 *
 *   loss = (1/B) Σ_i KL(p_i ‖ q_i)
 *        = (1/B) Σ_i [ (Σ_k e_ik (lt_ik − ls_ik)) / (T·St_i) − (mt_i − ms_i)/T − log St_i + log Ss_i ]
 *
 * (log-softmax form with per-row maxima mt, ms and sums St = Σ_k exp((lt−mt)/T), Ss likewise, so no
 * exponent ever exceeds 0, whatever T), and writes d loss / d ls = (q − p) / (B·T) into `grad` in
 * chunk-major layout: chunk c (queue rows k0…k0+n−1, n = min(chunk, K − k0)) occupies
 * `grad[k0·B … (k0+n)·B)` as a B×n row-major block, ready to be multiplied by that chunk of the queue.
 * `lt` and `ls` are overwritten with the unnormalised exponentials. Columns `batch…B−1` are padding:
 * they count in neither the loss nor the gradient (whose scale uses `batch`).
 */
export function softmaxKL(
  lt: Float32Array,
  ls: Float32Array,
  K: number,
  B: number,
  T: number,
  grad: Float32Array,
  chunk: number,
  batch = B,
): number {
  const invT = 1 / T;
  const { mt, ms, st, ss, cross } = softmaxSums(lt, ls, K, B, T);
  let loss = 0;
  const wt = new Float64Array(B);
  const ws = new Float64Array(B);
  for (let i = 0; i < batch; i++) {
    const sti = st[i]!;
    const ssi = ss[i]!;
    loss += (cross[i]! * invT) / sti - (mt[i]! - ms[i]!) * invT - Math.log(sti) + Math.log(ssi);
    wt[i] = 1 / (sti * batch * T);
    ws[i] = 1 / (ssi * batch * T);
  }
  for (let k0 = 0; k0 < K; k0 += chunk) {
    const n = Math.min(chunk, K - k0);
    const base = k0 * B;
    for (let i = 0; i < B; i++) {
      const wti = wt[i]!;
      const wsi = ws[i]!;
      const out = base + i * n;
      let src = base + i;
      for (let j = 0; j < n; j++, src += B) grad[out + j] = ls[src]! * wsi - lt[src]! * wti;
    }
  }
  return loss / batch;
}

/** Per-column maxima and sums of the softmax pass of {@link softmaxKL}, each of length B. */
export interface SoftmaxSums {
  /** max_k lt[k·B + i]. */
  mt: Float64Array;
  /** max_k ls[k·B + i]. */
  ms: Float64Array;
  /** St_i = Σ_k exp((lt_ik − mt_i)/T). */
  st: Float64Array;
  /** Ss_i = Σ_k exp((ls_ik − ms_i)/T). */
  ss: Float64Array;
  /** Σ_k exp((lt_ik − mt_i)/T)·(lt_ik − ls_ik). */
  cross: Float64Array;
}

/**
 * The first half of {@link softmaxKL} (same layout): column maxima and sums, with `lt` and `ls`
 * overwritten by the unnormalised exponentials exp((lt − mt)/T) and exp((ls − ms)/T). Then
 * p_ik = lt'[k·B + i] / St_i and log q_ik = (ls_ik − ms_i)/T − log Ss_i.
 */
export function softmaxSums(
  lt: Float32Array,
  ls: Float32Array,
  K: number,
  B: number,
  T: number,
): SoftmaxSums {
  const invT = 1 / T;
  const mt = new Float64Array(B).fill(Number.NEGATIVE_INFINITY);
  const ms = new Float64Array(B).fill(Number.NEGATIVE_INFINITY);
  // Row maxima (over k) for every batch row i.
  for (let k = 0; k < K; k++) {
    const o = k * B;
    for (let i = 0; i < B; i++) {
      const a = lt[o + i]!;
      const b = ls[o + i]!;
      if (a > mt[i]!) mt[i] = a;
      if (b > ms[i]!) ms[i] = b;
    }
  }
  const st = new Float64Array(B);
  const ss = new Float64Array(B);
  const cross = new Float64Array(B); // Σ_k e_ik (lt_ik − ls_ik)
  for (let k = 0; k < K; k++) {
    const o = k * B;
    for (let i = 0; i < B; i++) {
      const a = lt[o + i]!;
      const b = ls[o + i]!;
      const et = Math.exp((a - mt[i]!) * invT);
      const es = Math.exp((b - ms[i]!) * invT);
      st[i] = st[i]! + et;
      ss[i] = ss[i]! + es;
      cross[i] = cross[i]! + et * (a - b);
      lt[o + i] = et;
      ls[o + i] = es;
    }
  }
  return { mt, ms, st, ss, cross };
}
