// WebAssembly SIMD kernels of @compress/cluster: the blocked inner product with the top-k selection
// fused into it (k-NN search and the k-means assignment step), panel packing, row normalisation and
// the k-means accumulation. Compiled by scripts/build-wasm.mjs with clang (wasm32, simd128, shared
// memory) into cluster-wasm.ts. Every kernel works on a range of rows so that the JavaScript side can
// split one call over worker threads sharing the same memory; nothing here uses the C stack.
//
// Layouts (all row-major float32, byte pointers into the shared memory):
//   rows      r × d, one sample per row (queries, points, raw centroids)
//   panels    ceil(n/8) × d × 8: panel p holds rows 8p…8p+7 interleaved, so that one 4-lane load
//             gives 4 rows at the same dimension (the "B" operand of the 4×8 micro-kernel); rows past
//             n are zero
//   heaps     per query, k (score, index) pairs as a binary min-heap whose root is the worst kept
//             candidate; "worse" = lower score, or equal score and higher index
#include <stddef.h>
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))
#define INF __builtin_inff()

static inline int imin(int a, int b) { return a < b ? a : b; }

// ---------------------------------------------------------------------------------------------
// Row preparation

// Scales rows r0…r1 of x (r × d) to unit L2 norm in place: x / max(‖x‖₂, 1e-12), the sum of squares
// taken in float64 in index order (the same arithmetic as core's l2NormalizeRows, bit for bit).
EXPORT(normalize_rows)
void normalize_rows(float *x, int r0, int r1, int d) {
  for (int r = r0; r < r1; r++) {
    float *row = x + (size_t)r * d;
    double s = 0;
    for (int j = 0; j < d; j++) s += (double)row[j] * (double)row[j];
    double norm = __builtin_sqrt(s);
    double inv = 1.0 / (norm > 1e-12 ? norm : 1e-12);
    for (int j = 0; j < d; j++) row[j] = (float)((double)row[j] * inv);
  }
}

// Packs panels p0…p1 of the n × d rows at src into dst (layout above). When norms is not null,
// writes ‖row‖² (float64 sum, rounded to float32) for every row of those panels, +∞ for the padding
// rows of the last panel (so that an L2 score of padding is −∞ and never selected).
EXPORT(pack_panels)
void pack_panels(const float *src, int n, int d, float *dst, float *norms, int p0, int p1) {
  for (int p = p0; p < p1; p++) {
    float *panel = dst + (size_t)p * d * 8;
    for (int t = 0; t < 8; t++) {
      int r = p * 8 + t;
      if (r < n) {
        const float *row = src + (size_t)r * d;
        double s = 0;
        for (int j = 0; j < d; j++) {
          float v = row[j];
          panel[j * 8 + t] = v;
          s += (double)v * (double)v;
        }
        if (norms) norms[r] = (float)s;
      } else {
        for (int j = 0; j < d; j++) panel[j * 8 + t] = 0.0f;
        if (norms) norms[r] = INF;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Top-k selection

// a is worse than b: lower score, or the same score and a higher index (ties go to the lower index).
static inline int worse(float as, int ai, float bs, int bi) { return as < bs || (as == bs && ai > bi); }

// Replaces the root (the worst kept candidate) of the k-heap by (v, ix) and restores the heap.
__attribute__((noinline)) static void heap_replace_top(float *hs, int *hi, int k, float v, int ix) {
  int pos = 0;
  for (;;) {
    int c = 2 * pos + 1;
    if (c >= k) break;
    if (c + 1 < k && worse(hs[c + 1], hi[c + 1], hs[c], hi[c])) c++;
    if (!worse(hs[c], hi[c], v, ix)) break;
    hs[pos] = hs[c];
    hi[pos] = hi[c];
    pos = c;
  }
  hs[pos] = v;
  hi[pos] = ix;
}

static inline void offer(float *hs, int *hi, int k, float v, int ix) {
  if (worse(hs[0], hi[0], v, ix)) heap_replace_top(hs, hi, k, v, ix);
}

// Offers the 8 scores of one tile row (lanes of s0 then s1, base rows col…col+7) to a query's heap.
// The vector test against the current worst score rejects most tiles without leaving SIMD.
static inline void offer8(float *hs, int *hi, int k, v128_t s0, v128_t s1, int col, int nb, int idx0) {
  v128_t t = wasm_f32x4_splat(hs[0]);
  if (!wasm_v128_any_true(wasm_v128_or(wasm_f32x4_ge(s0, t), wasm_f32x4_ge(s1, t)))) return;
  int lim = nb - col; // valid lanes
#define LANE(vec, l, off)                                                                          \
  if ((off) + (l) < lim) offer(hs, hi, k, wasm_f32x4_extract_lane(vec, l), idx0 + col + (off) + (l));
  LANE(s0, 0, 0) LANE(s0, 1, 0) LANE(s0, 2, 0) LANE(s0, 3, 0);
  LANE(s1, 0, 4) LANE(s1, 1, 4) LANE(s1, 2, 4) LANE(s1, 3, 4);
#undef LANE
}

// k-NN over panels p0…p1 (base rows 8·p0… of an nb-row block whose first row has global index
// idx0) for queries q0…q1 of Q (rows × d). Query q keeps its heap at hs/hi + q·k.
//   l2 = 0: score = ⟨q, x⟩ (inner product; cosine on normalised rows)
//   l2 = 1: score = 2⟨q, x⟩ − ‖x‖² (= ‖q‖² − ‖q − x‖², so the best score is the nearest row);
//           norms holds ‖x‖² per base row of the block
// The product is blocked: `block` panels (sized by the caller to stay in L2) are swept by every
// strip of 4 queries before moving on; each 4×8 tile is accumulated over the full dimension in
// registers and offered straight to the heaps, so no score matrix is ever written.
EXPORT(knn_search)
void knn_search(const float *Q, int q0, int q1, int d, const float *P, const float *norms, int p0, int p1,
                int nb, int idx0, int k, float *hs, int *hi, int block, int l2) {
  for (int pb = p0; pb < p1; pb += block) {
    int pe = imin(pb + block, p1);
    for (int q = q0; q < q1; q += 4) {
      int nr = imin(4, q1 - q);
      // Missing rows of the last strip repeat the first: the same arithmetic, results dropped.
      const float *a0 = Q + (size_t)q * d;
      const float *a1 = nr > 1 ? a0 + d : a0;
      const float *a2 = nr > 2 ? a0 + 2 * (size_t)d : a0;
      const float *a3 = nr > 3 ? a0 + 3 * (size_t)d : a0;
      float *h0 = hs + (size_t)q * k;
      int *i0 = hi + (size_t)q * k;
      for (int p = pb; p < pe; p++) {
        const float *pp = P + (size_t)p * d * 8;
        v128_t c00 = wasm_f32x4_splat(0.0f), c01 = c00, c10 = c00, c11 = c00;
        v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
        for (int j = 0; j < d; j++) {
          v128_t y0 = wasm_v128_load(pp + 8 * j);
          v128_t y1 = wasm_v128_load(pp + 8 * j + 4);
          v128_t x = wasm_v128_load32_splat(a0 + j);
          c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(x, y0));
          c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(x, y1));
          x = wasm_v128_load32_splat(a1 + j);
          c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(x, y0));
          c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(x, y1));
          x = wasm_v128_load32_splat(a2 + j);
          c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(x, y0));
          c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(x, y1));
          x = wasm_v128_load32_splat(a3 + j);
          c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(x, y0));
          c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(x, y1));
        }
        if (l2) {
          v128_t n0 = wasm_v128_load(norms + 8 * p);
          v128_t n1 = wasm_v128_load(norms + 8 * p + 4);
          c00 = wasm_f32x4_sub(wasm_f32x4_add(c00, c00), n0);
          c01 = wasm_f32x4_sub(wasm_f32x4_add(c01, c01), n1);
          c10 = wasm_f32x4_sub(wasm_f32x4_add(c10, c10), n0);
          c11 = wasm_f32x4_sub(wasm_f32x4_add(c11, c11), n1);
          c20 = wasm_f32x4_sub(wasm_f32x4_add(c20, c20), n0);
          c21 = wasm_f32x4_sub(wasm_f32x4_add(c21, c21), n1);
          c30 = wasm_f32x4_sub(wasm_f32x4_add(c30, c30), n0);
          c31 = wasm_f32x4_sub(wasm_f32x4_add(c31, c31), n1);
        }
        int col = 8 * p;
        offer8(h0, i0, k, c00, c01, col, nb, idx0);
        if (nr > 1) offer8(h0 + k, i0 + k, k, c10, c11, col, nb, idx0);
        if (nr > 2) offer8(h0 + 2 * k, i0 + 2 * k, k, c20, c21, col, nb, idx0);
        if (nr > 3) offer8(h0 + 3 * k, i0 + 3 * k, k, c30, c31, col, nb, idx0);
      }
    }
  }
}

// Fills `count` heap slots with the empty candidate (−∞, INT32_MAX).
EXPORT(heap_init)
void heap_init(float *hs, int *hi, int count) {
  for (int i = 0; i < count; i++) {
    hs[i] = -INF;
    hi[i] = INT32_MAX;
  }
}

// ---------------------------------------------------------------------------------------------
// k-means

// ‖x − c‖² in float32 lanes, summed in float64.
static inline double sqdist(const float *x, const float *c, int d) {
  v128_t acc = wasm_f32x4_splat(0.0f);
  int j = 0;
  for (; j + 4 <= d; j += 4) {
    v128_t t = wasm_f32x4_sub(wasm_v128_load(x + j), wasm_v128_load(c + j));
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(t, t));
  }
  double s = (double)wasm_f32x4_extract_lane(acc, 0) + (double)wasm_f32x4_extract_lane(acc, 1) +
             (double)wasm_f32x4_extract_lane(acc, 2) + (double)wasm_f32x4_extract_lane(acc, 3);
  for (; j < d; j++) {
    float t = x[j] - c[j];
    s += (double)(t * t);
  }
  return s;
}

// The update half of a Lloyd iteration for rows r0…r1 of X (rows × d), after knn_search (k = 1)
// wrote each row's nearest centroid to assign: adds every row to its centroid's float64 sum and
// count, writes the exact ‖x − c‖² to dist (when not null), counts rows whose centroid differs from
// prev (and updates prev). out[0] += Σ‖x − c‖², out[1] += rows changed.
EXPORT(kmeans_accumulate)
void kmeans_accumulate(const float *X, int r0, int r1, int d, const float *C, const int *assign, int *prev,
                       double *sums, int *counts, float *dist, double *out) {
  double inertia = 0;
  int changed = 0;
  for (int r = r0; r < r1; r++) {
    const float *x = X + (size_t)r * d;
    int c = assign[r];
    double e = sqdist(x, C + (size_t)c * d, d);
    inertia += e;
    if (dist) dist[r] = (float)e;
    if (prev) {
      if (prev[r] != c) changed++;
      prev[r] = c;
    }
    if (sums) {
      double *s = sums + (size_t)c * d;
      counts[c]++;
      int j = 0;
      for (; j + 4 <= d; j += 4) {
        v128_t v = wasm_v128_load(x + j);
        v128_t lo = wasm_f64x2_promote_low_f32x4(v);
        v128_t hi = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
        wasm_v128_store(s + j, wasm_f64x2_add(wasm_v128_load(s + j), lo));
        wasm_v128_store(s + j + 2, wasm_f64x2_add(wasm_v128_load(s + j + 2), hi));
      }
      for (; j < d; j++) s[j] += (double)x[j];
    }
  }
  out[0] += inertia;
  out[1] += (double)changed;
}

// k-means++ seeding: out[r] = min(mind[r], ‖x_r − c‖²) for rows r0…r1 (out may be mind); returns
// Σ out over them (the potential if c were added).
EXPORT(min_sqdist)
double min_sqdist(const float *X, int r0, int r1, int d, const float *c, const float *mind, float *out) {
  double total = 0;
  for (int r = r0; r < r1; r++) {
    float e = (float)sqdist(X + (size_t)r * d, c, d);
    float m = mind[r];
    float v = e < m ? e : m;
    out[r] = v;
    total += (double)v;
  }
  return total;
}

// The first row r in r0…r1 where the running float64 sum of w exceeds target; the last row with a
// positive weight when rounding leaves the target out of reach; −1 when every weight is zero.
EXPORT(cumsum_find)
int cumsum_find(const float *w, int r0, int r1, double target) {
  double s = 0;
  int last = -1;
  for (int r = r0; r < r1; r++) {
    if (w[r] > 0) {
      s += (double)w[r];
      last = r;
      if (s > target) return r;
    }
  }
  return last;
}
