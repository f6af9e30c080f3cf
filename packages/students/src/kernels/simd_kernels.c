// WebAssembly SIMD kernels of @compress/students: train-mode BatchNorm over the last axis of an
// NHWC activation (rows × c), forward and backward, with the activation (ReLU, ReLU6) fused in;
// the gradient of max pooling. Compiled by scripts/build-wasm.mjs with clang (wasm32, simd128)
// into simd-kernels-wasm.ts. The
// module imports the memory of the TensorFlow.js wasm backend and works on its tensors in place, so
// it must own nothing in that memory: no data segments and no C stack (checked at build time).
//
// Arithmetic, as in batch_norm_train_impl.ts and PyTorch's CPU kernel: per-channel sums in
// float64, mean first, then the biased variance as the mean of (x − mean)² (two passes).
// All pointers are byte offsets into the imported memory; acc points to 4·c float64 of scratch.
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))

// act: 0 none, 1 ReLU, 2 ReLU6
static inline v128_t act4(v128_t v, int act) {
  if (act == 0) return v;
  v = wasm_f32x4_pmax(v, wasm_f32x4_splat(0.0f));
  return act == 2 ? wasm_f32x4_pmin(v, wasm_f32x4_splat(6.0f)) : v;
}

static inline float act1(float v, int act) {
  if (act == 0) return v;
  v = v > 0.0f ? v : 0.0f;
  return act == 2 && v > 6.0f ? 6.0f : v;
}

// acc[k] += x[k] for one row (float64 accumulators, 4 channels at a time).
static inline void add_row(const float *x, double *acc, int c) {
  int k = 0;
  for (; k + 4 <= c; k += 4) {
    v128_t v = wasm_v128_load(x + k);
    wasm_v128_store(acc + k, wasm_f64x2_add(wasm_v128_load(acc + k), wasm_f64x2_promote_low_f32x4(v)));
    wasm_v128_store(acc + k + 2,
                    wasm_f64x2_add(wasm_v128_load(acc + k + 2),
                                   wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1))));
  }
  for (; k < c; k++) acc[k] += (double)x[k];
}

// acc[k] += (x[k] − m[k])² for one row, in float64.
static inline void add_sq_row(const float *x, const double *m, double *acc, int c) {
  int k = 0;
  for (; k + 4 <= c; k += 4) {
    v128_t v = wasm_v128_load(x + k);
    v128_t lo = wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(v), wasm_v128_load(m + k));
    v128_t hi = wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1)),
                               wasm_v128_load(m + k + 2));
    wasm_v128_store(acc + k, wasm_f64x2_add(wasm_v128_load(acc + k), wasm_f64x2_mul(lo, lo)));
    wasm_v128_store(acc + k + 2, wasm_f64x2_add(wasm_v128_load(acc + k + 2), wasm_f64x2_mul(hi, hi)));
  }
  for (; k < c; k++) {
    double d = (double)x[k] - m[k];
    acc[k] += d * d;
  }
}

// Forward: mean, var (biased), inv_std = 1/√(var + eps), y = act(x·scale + shift) with
// scale = γ·inv_std, shift = β − mean·scale (float32, in the second half of acc).
EXPORT(bn_forward)
void bn_forward(const float *x, const float *gamma, const float *beta, int rows, int c, double eps, int act,
                float *y, float *mean, float *var, float *inv_std, double *acc) {
  double *sum = acc, *sq = acc + c;
  float *scale = (float *)(acc + 2 * c), *shift = scale + c;
  for (int k = 0; k < c; k++) sum[k] = 0.0, sq[k] = 0.0;
  for (int r = 0; r < rows; r++) add_row(x + (long)r * c, sum, c);
  for (int k = 0; k < c; k++) sum[k] = (double)(float)(sum[k] / rows); // the float32 mean, as stored
  for (int r = 0; r < rows; r++) add_sq_row(x + (long)r * c, sum, sq, c);
  for (int k = 0; k < c; k++) {
    float m = (float)sum[k];
    float v = (float)(sq[k] / rows);
    float s = (float)(1.0 / __builtin_sqrt((double)v + eps));
    float sc = gamma[k] * s;
    mean[k] = m;
    var[k] = v;
    inv_std[k] = s;
    scale[k] = sc;
    shift[k] = (float)((double)beta[k] - (double)m * sc);
  }
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * c;
    float *yr = y + (long)r * c;
    int k = 0;
    for (; k + 4 <= c; k += 4) {
      v128_t v = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(xr + k), wasm_v128_load(scale + k)),
                                wasm_v128_load(shift + k));
      wasm_v128_store(yr + k, act4(v, act));
    }
    for (; k < c; k++) yr[k] = act1(xr[k] * scale[k] + shift[k], act);
  }
}

// g = dy masked by the activation's derivative, read from the output y (0 < y, and y < 6 for ReLU6).
static inline v128_t mask4(v128_t dy, const float *y, int act) {
  if (act == 0) return dy;
  v128_t yv = wasm_v128_load(y);
  v128_t live = wasm_f32x4_gt(yv, wasm_f32x4_splat(0.0f));
  if (act == 2) live = wasm_v128_and(live, wasm_f32x4_lt(yv, wasm_f32x4_splat(6.0f)));
  return wasm_v128_and(dy, live);
}

static inline float mask1(float dy, float y, int act) {
  if (act == 0) return dy;
  return y > 0.0f && (act != 2 || y < 6.0f) ? dy : 0.0f;
}

// Backward: with g = masked dy and x̂ = (x − mean)·inv_std: dβ = Σ g, dγ = Σ g·x̂ (float64 sums),
// dx = a·g + b·x + d per channel, a = γ·inv_std, b = −a·inv_std²·Σ g·(x − mean)/rows,
// d = −a·Σg/rows − b·mean (the formula of batch_norm_train_impl.ts). y may be 0 when act is 0.
EXPORT(bn_backward)
void bn_backward(const float *dy, const float *x, const float *mean, const float *inv_std, const float *gamma,
                 const float *y, int rows, int c, int act, float *dx, float *dgamma, float *dbeta, double *acc) {
  double *sdy = acc, *sdx = acc + c;
  for (int k = 0; k < c; k++) sdy[k] = 0.0, sdx[k] = 0.0;
  for (int r = 0; r < rows; r++) {
    const long o = (long)r * c;
    int k = 0;
    for (; k + 4 <= c; k += 4) {
      v128_t g = mask4(wasm_v128_load(dy + o + k), y + o + k, act);
      v128_t xc = wasm_f32x4_sub(wasm_v128_load(x + o + k), wasm_v128_load(mean + k));
      v128_t gsw = wasm_i32x4_shuffle(g, g, 2, 3, 0, 1);
      v128_t xsw = wasm_i32x4_shuffle(xc, xc, 2, 3, 0, 1);
      v128_t glo = wasm_f64x2_promote_low_f32x4(g), ghi = wasm_f64x2_promote_low_f32x4(gsw);
      wasm_v128_store(sdy + k, wasm_f64x2_add(wasm_v128_load(sdy + k), glo));
      wasm_v128_store(sdy + k + 2, wasm_f64x2_add(wasm_v128_load(sdy + k + 2), ghi));
      wasm_v128_store(sdx + k, wasm_f64x2_add(wasm_v128_load(sdx + k),
                                              wasm_f64x2_mul(glo, wasm_f64x2_promote_low_f32x4(xc))));
      wasm_v128_store(sdx + k + 2, wasm_f64x2_add(wasm_v128_load(sdx + k + 2),
                                                  wasm_f64x2_mul(ghi, wasm_f64x2_promote_low_f32x4(xsw))));
    }
    for (; k < c; k++) {
      float g = mask1(dy[o + k], act ? y[o + k] : 0.0f, act);
      sdy[k] += (double)g;
      sdx[k] += (double)g * (double)(x[o + k] - mean[k]);
    }
  }
  // per-channel coefficients, float32, in the second half of acc
  float *a = (float *)(acc + 2 * c), *b = a + c, *d = b + c;
  for (int k = 0; k < c; k++) {
    double s = inv_std[k];
    double sy = sdy[k], sx = sdx[k];
    dbeta[k] = (float)sy;
    dgamma[k] = (float)(sx * s);
    float sc = gamma[k] * (float)s;
    float bk = (float)(-sc * s * s * sx / rows);
    a[k] = sc;
    b[k] = bk;
    d[k] = (float)(-sc * sy / rows - (double)bk * mean[k]);
  }
  for (int r = 0; r < rows; r++) {
    const long o = (long)r * c;
    int k = 0;
    for (; k + 4 <= c; k += 4) {
      v128_t g = mask4(wasm_v128_load(dy + o + k), y + o + k, act);
      v128_t v = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(a + k), g),
                                               wasm_f32x4_mul(wasm_v128_load(b + k), wasm_v128_load(x + o + k))),
                                wasm_v128_load(d + k));
      wasm_v128_store(dx + o + k, v);
    }
    for (; k < c; k++) dx[o + k] = a[k] * mask1(dy[o + k], act ? y[o + k] : 0.0f, act) + b[k] * x[o + k] + d[k];
  }
}

// The gradient of max pooling (NHWC): each dy goes to the first position of its window, in
// row-major scan order, whose x equals the pooled y (the window's first maximum, as tfjs and
// PyTorch choose it); positions outside the input (padding) never win. 4 channels at a time: per
// lane, a mask of "already found" keeps later equal values from taking the gradient too.
EXPORT(max_pool_grad)
void max_pool_grad(const float *dy, const float *x, const float *y, float *dx, int n, int h, int w, int c, int ho,
                   int wo, int kh, int kw, int sh, int sw, int pad_top, int pad_left) {
  const long total = (long)n * h * w * c;
  for (long i = 0; i < total; i++) dx[i] = 0.0f;
  for (int b = 0; b < n; b++) {
    const long in0 = (long)b * h * w * c;
    for (int oh = 0; oh < ho; oh++) {
      for (int ow = 0; ow < wo; ow++) {
        const long o = (((long)b * ho + oh) * wo + ow) * c;
        const int h0 = oh * sh - pad_top, w0 = ow * sw - pad_left;
        int k = 0;
        for (; k + 4 <= c; k += 4) {
          v128_t yv = wasm_v128_load(y + o + k), g = wasm_v128_load(dy + o + k);
          v128_t found = wasm_i32x4_splat(0);
          for (int i = 0; i < kh; i++) {
            int ih = h0 + i;
            if (ih < 0 || ih >= h) continue;
            for (int j = 0; j < kw; j++) {
              int iw = w0 + j;
              if (iw < 0 || iw >= w) continue;
              const long p = in0 + ((long)ih * w + iw) * c + k;
              v128_t hit = wasm_v128_andnot(wasm_f32x4_eq(wasm_v128_load(x + p), yv), found);
              wasm_v128_store(dx + p, wasm_f32x4_add(wasm_v128_load(dx + p), wasm_v128_and(g, hit)));
              found = wasm_v128_or(found, hit);
            }
          }
        }
        for (; k < c; k++) {
          int done = 0;
          for (int i = 0; i < kh && !done; i++) {
            int ih = h0 + i;
            if (ih < 0 || ih >= h) continue;
            for (int j = 0; j < kw; j++) {
              int iw = w0 + j;
              if (iw < 0 || iw >= w) continue;
              const long p = in0 + ((long)ih * w + iw) * c + k;
              if (x[p] == y[o + k]) {
                dx[p] += dy[o + k];
                done = 1;
                break;
              }
            }
          }
        }
      }
    }
  }
}
