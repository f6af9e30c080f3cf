/*
 * Crop-aware JPEG decoding with Pillow-exact bilinear resizing, for @compress/data's ImageFolder.
 *
 * torchvision's RandomResizedCrop on a PIL image decodes the whole photo with libjpeg(-turbo)
 * (ISLOW IDCT, fancy upsampling), crops, and resizes with Pillow's antialiased bilinear filter.
 * This does the same arithmetic on only the part of the photo the crop needs:
 *
 *  - rows below the last row the resize reads are never decoded, rows above the crop are skipped
 *    with jpeg_skip_scanlines (entropy decoding only), and columns outside it with
 *    jpeg_crop_scanline (no IDCT, upsampling or colour conversion). The decoded window keeps a
 *    margin of one iMCU (16 pixels) around the crop, so the chroma upsampling of every pixel that
 *    is used sees the same neighbours as in a full decode: the pixels are those of a full decode.
 *  - the resize is Pillow's ImagingResample (libImaging/Resample.c) for 8-bit images: weights
 *    normalised in double precision and rounded to 22-bit fixed point, horizontal pass into 8 bits
 *    over the rows the vertical pass reads, then the vertical pass.
 *  - the last pass writes floats (v / 255, as torchvision's ToTensor) straight into the batch,
 *    mirrored when the sample is flipped.
 *
 * Exposed to JavaScript through Node-API (bottom of this file): decodeResized, a promise settled on
 * libuv's thread pool, and decodeResizedSync.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#define PRECISION_BITS (32 - 8 - 2)
#define MARGIN 16

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
} error_mgr;

static void on_error(j_common_ptr cinfo) {
  error_mgr *err = (error_mgr *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

/* Warnings (corrupt data, premature end) are errors: a damaged file is reported, not guessed at. */
static void on_message(j_common_ptr cinfo, int level) {
  if (level < 0) on_error(cinfo);
}

typedef struct {
  int ksize;
  int *bounds;    /* 2 per output pixel: first source pixel, taps */
  int32_t *fixed; /* ksize per output pixel */
} coeffs;

/*
 * Working memory, kept per thread and reused from image to image: fresh allocations of this size
 * come from mmap and cost a page fault per 4 KiB every time (more than the resize itself). Freed
 * when the thread ends; a buffer grown past KEEP_BYTES by a very large photo is freed after use.
 */
enum { ROWS, TMP, ACC, HOR_BOUNDS, HOR_FIXED, VERT_BOUNDS, VERT_FIXED, WEIGHTS, NBUF };
#define KEEP_BYTES (32u << 20)
typedef struct {
  void *p[NBUF];
  size_t cap[NBUF];
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *v) {
  scratch *s = v;
  for (int i = 0; i < NBUF; i++) free(s->p[i]);
  free(s);
}

static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }

static scratch *thread_scratch(void) {
  pthread_once(&scratch_once, scratch_init);
  scratch *s = pthread_getspecific(scratch_key);
  if (!s) {
    s = calloc(1, sizeof *s);
    if (s) pthread_setspecific(scratch_key, s);
  }
  return s;
}

static void *reserve(scratch *s, int which, size_t bytes) {
  if (bytes > s->cap[which]) {
    free(s->p[which]);
    s->p[which] = malloc(bytes);
    s->cap[which] = s->p[which] ? bytes : 0;
  }
  return s->p[which];
}

static void trim(scratch *s) {
  for (int i = 0; i < NBUF; i++)
    if (s->cap[i] > KEEP_BYTES) {
      free(s->p[i]);
      s->p[i] = NULL;
      s->cap[i] = 0;
    }
}

/* Pillow's precompute_coeffs (bilinear, support 1) + normalize_coeffs_8bpc, into scratch memory. */
static int precompute(scratch *s, int bounds_buf, int fixed_buf, int in_size, int out_size, coeffs *c) {
  double scale = (double)in_size / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 1.0 * filterscale;
  int ksize = (int)__builtin_ceil(support) * 2 + 1;
  double *w = reserve(s, WEIGHTS, sizeof(double) * ksize);
  c->ksize = ksize;
  c->bounds = reserve(s, bounds_buf, sizeof(int) * 2 * out_size);
  c->fixed = reserve(s, fixed_buf, sizeof(int32_t) * ksize * out_size);
  if (!w || !c->bounds || !c->fixed) return 0;
  double ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; xx++) {
    double center = (xx + 0.5) * scale;
    double ww = 0.0;
    int xmin = (int)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; x++) {
      double t = (x + xmin - center + 0.5) * ss;
      if (t < 0) t = -t;
      double v = t < 1.0 ? 1.0 - t : 0.0;
      w[x] = v;
      ww += v;
    }
    for (int x = 0; x < xmax; x++) {
      double v = ww != 0.0 ? w[x] / ww : w[x];
      c->fixed[xx * ksize + x] =
          (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
    }
    for (int x = xmax; x < ksize; x++) c->fixed[xx * ksize + x] = 0;
    c->bounds[xx * 2] = xmin;
    c->bounds[xx * 2 + 1] = xmax;
  }
  return 1;
}

static inline uint8_t clip8(int32_t v) {
  if (v >= (1 << PRECISION_BITS) * 256) return 255;
  if (v <= 0) return 0;
  return (uint8_t)(v >> PRECISION_BITS);
}

static float to_unit[256];

typedef struct {
  /* in */
  const uint8_t *jpeg;
  size_t length;
  int left, top, crop_w, crop_h; /* crop window in the stored image */
  int out_w, out_h;
  int mirror;
  float *dest;     /* out_h × out_w × 3 floats (v / 255), or … */
  uint8_t *dest8;  /* … 8-bit values, when dest is NULL */
  /* out */
  int status; /* 0 ok, 1 decode error, 2 unsupported (colour space), 3 bad window, 4 no memory */
  char message[JMSG_LENGTH_MAX + 128];
} job;

/*
 * The hot loops of the resize, compiled twice (AVX2 and the baseline) and picked at load time:
 * Pillow's integer arithmetic exactly, 8 lanes at a time where the CPU has AVX2.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

/* acc[i] = ½ + Σ_y rows[y][i] · w[y] over `taps` rows `stride` bytes apart. */
HOT static void vertical_sums(const uint8_t *rows, size_t stride, int taps, const int32_t *w, int32_t *acc, int n) {
  for (int i = 0; i < n; i++) acc[i] = 1 << (PRECISION_BITS - 1);
  for (int y = 0; y < taps; y++) {
    const uint8_t *r = rows + (size_t)y * stride;
    const int32_t wy = w[y];
    for (int i = 0; i < n; i++) acc[i] += r[i] * wy;
  }
}

/* Writes one output row from its fixed-point sums: clip8, then 8-bit or ÷ 255 as float, mirrored if asked. */
HOT static void put_sums(const job *j, int yy, const int32_t *acc) {
  const int w = j->out_w;
  if (j->dest8) {
    uint8_t *d = j->dest8 + (size_t)yy * w * 3;
    for (int x = 0; x < w; x++) {
      uint8_t *o = d + (size_t)(j->mirror ? w - 1 - x : x) * 3;
      o[0] = clip8(acc[x * 3]);
      o[1] = clip8(acc[x * 3 + 1]);
      o[2] = clip8(acc[x * 3 + 2]);
    }
  } else if (!j->mirror) {
    float *d = j->dest + (size_t)yy * w * 3;
    for (int i = 0; i < w * 3; i++) d[i] = to_unit[clip8(acc[i])];
  } else {
    float *d = j->dest + (size_t)yy * w * 3;
    for (int x = 0; x < w; x++) {
      float *o = d + (size_t)(w - 1 - x) * 3;
      o[0] = to_unit[clip8(acc[x * 3])];
      o[1] = to_unit[clip8(acc[x * 3 + 1])];
      o[2] = to_unit[clip8(acc[x * 3 + 2])];
    }
  }
}

static void oom(job *j) {
  j->status = 4;
  snprintf(j->message, sizeof j->message, "out of memory");
}

/* Decodes and resizes into j->dest (or j->dest8); libjpeg's errors longjmp out of here to run(). */
static void decode(job *j, struct jpeg_decompress_struct *c, scratch *mem) {
  coeffs hor_c = {0, NULL, NULL}, vert_c = {0, NULL, NULL};
  coeffs *const hor = &hor_c, *const vert = &vert_c;
  if (!mem) { oom(j); return; }
  jpeg_mem_src(c, j->jpeg, (unsigned long)j->length);
  jpeg_read_header(c, TRUE);
  if (c->jpeg_color_space == JCS_GRAYSCALE) {
    c->out_color_space = JCS_GRAYSCALE;
  } else if (c->jpeg_color_space == JCS_YCbCr || c->jpeg_color_space == JCS_RGB) {
    c->out_color_space = JCS_RGB;
  } else {
    j->status = 2;
    snprintf(j->message, sizeof j->message, "colour space %d is decoded by the general path",
             (int)c->jpeg_color_space);
    return;
  }
  const int W = (int)c->image_width, H = (int)c->image_height;
  if (j->left < 0 || j->top < 0 || j->crop_w < 1 || j->crop_h < 1 || j->left + j->crop_w > W ||
      j->top + j->crop_h > H || j->out_w < 1 || j->out_h < 1) {
    j->status = 3;
    snprintf(j->message, sizeof j->message, "crop %dx%d at (%d, %d) is outside the %dx%d image",
             j->crop_w, j->crop_h, j->left, j->top, W, H);
    return;
  }

  /* Crop rows the vertical pass reads (all when the height does not change). */
  int y_first = 0, y_last = j->crop_h;
  if (j->crop_h != j->out_h) {
    if (!precompute(mem, VERT_BOUNDS, VERT_FIXED, j->crop_h, j->out_h, vert)) { oom(j); return; }
    y_first = vert->bounds[0];
    y_last = vert->bounds[2 * j->out_h - 2] + vert->bounds[2 * j->out_h - 1];
  }
  if (j->crop_w != j->out_w) {
    if (!precompute(mem, HOR_BOUNDS, HOR_FIXED, j->crop_w, j->out_w, hor)) { oom(j); return; }
  }

  /* The decoded window: the rows and columns used, plus a margin for the upsampler's context. */
  int r0 = j->top + y_first - MARGIN, r1 = j->top + y_last + MARGIN;
  if (r0 < 0) r0 = 0;
  if (r1 > H) r1 = H;
  int c0 = j->left - MARGIN, c1 = j->left + j->crop_w + MARGIN;
  if (c0 < 0) c0 = 0;
  if (c1 > W) c1 = W;

  jpeg_start_decompress(c);
  const int comps = c->output_components; /* 1 or 3 */
  JDIMENSION xoff = (JDIMENSION)c0, width = (JDIMENSION)(c1 - c0);
  if (xoff != 0 || width != c->output_width) jpeg_crop_scanline(c, &xoff, &width);
  const int stride = (int)width * comps;
  const int nrows = r1 - r0;
  uint8_t *const rows = reserve(mem, ROWS, (size_t)nrows * stride);
  if (!rows) { oom(j); return; }
  if (r0 > 0) jpeg_skip_scanlines(c, (JDIMENSION)r0);
  while ((int)c->output_scanline < r1) {
    JSAMPROW p = rows + (size_t)((int)c->output_scanline - r0) * stride;
    jpeg_read_scanlines(c, &p, 1);
  }
  /* Rows after r1 are never decoded. */
  jpeg_abort_decompress(c);

  /* Where crop pixel (0, 0) is in `rows`. */
  const uint8_t *crop0 = rows + (size_t)(j->top - r0) * stride + (size_t)(j->left - (int)xoff) * comps;
  const int out_len = j->out_w * 3;

  /* Horizontal pass → `tmp`: rows y_first…y_last of the crop at the output width, as RGB. */
  const int hrows = y_last - y_first;
  uint8_t *const tmp = reserve(mem, TMP, (size_t)hrows * out_len);
  if (!tmp) { oom(j); return; }
  if (hor->bounds) {
    const int k = hor->ksize;
    for (int yy = 0; yy < hrows; yy++) {
      const uint8_t *in = crop0 + (size_t)(y_first + yy) * stride;
      uint8_t *o = tmp + (size_t)yy * out_len;
      for (int xx = 0; xx < j->out_w; xx++) {
        const int xmin = hor->bounds[2 * xx], xmax = hor->bounds[2 * xx + 1];
        const int32_t *w = hor->fixed + (size_t)xx * k;
        if (comps == 3) {
          int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
          const uint8_t *p = in + xmin * 3;
          for (int x = 0; x < xmax; x++, p += 3) {
            s0 += p[0] * w[x];
            s1 += p[1] * w[x];
            s2 += p[2] * w[x];
          }
          o[xx * 3] = clip8(s0);
          o[xx * 3 + 1] = clip8(s1);
          o[xx * 3 + 2] = clip8(s2);
        } else {
          int32_t s = 1 << (PRECISION_BITS - 1);
          const uint8_t *p = in + xmin;
          for (int x = 0; x < xmax; x++) s += p[x] * w[x];
          o[xx * 3] = o[xx * 3 + 1] = o[xx * 3 + 2] = clip8(s);
        }
      }
    }
  } else {
    for (int yy = 0; yy < hrows; yy++) {
      const uint8_t *in = crop0 + (size_t)(y_first + yy) * stride;
      uint8_t *o = tmp + (size_t)yy * out_len;
      if (comps == 3) memcpy(o, in, out_len);
      else
        for (int x = 0; x < j->out_w; x++) o[x * 3] = o[x * 3 + 1] = o[x * 3 + 2] = in[x];
    }
  }

  /* Vertical pass, one output row at a time (crop row y is tmp row y − y_first). An unchanged
   * height is the same pass with one tap of weight 1.0 (sums r·2²² + ½ clip back to r). */
  int32_t *const acc = reserve(mem, ACC, sizeof(int32_t) * out_len);
  if (!acc) { oom(j); return; }
  static const int32_t one = 1 << PRECISION_BITS;
  for (int yy = 0; yy < j->out_h; yy++) {
    const int ymin = vert->bounds ? vert->bounds[2 * yy] : yy;
    const int taps = vert->bounds ? vert->bounds[2 * yy + 1] : 1;
    const int32_t *w = vert->bounds ? vert->fixed + (size_t)yy * vert->ksize : &one;
    vertical_sums(tmp + (size_t)(ymin - y_first) * out_len, (size_t)out_len, taps, w, acc, out_len);
    put_sums(j, yy, acc);
  }
  j->status = 0;
}

static void run(job *j) {
  struct jpeg_decompress_struct cinfo;
  error_mgr err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  if (setjmp(err.jump)) {
    j->status = 1;
    snprintf(j->message, sizeof j->message, "%s", err.message);
  } else {
    jpeg_create_decompress(&cinfo);
    decode(j, &cinfo, thread_scratch());
  }
  jpeg_destroy_decompress(&cinfo);
  scratch *const mem = thread_scratch();
  if (mem) trim(mem);
}

static void fill_tables(void) {
  for (int v = 0; v < 256; v++) to_unit[v] = (float)((double)v / 255.0);
}

/* Once per process (every worker thread's environment initialises the module). */
static void init_tables(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, fill_tables);
}


/* ---- Node-API (left out with -DJPEG_CROP_NO_NAPI, e.g. to time run() from a C program) -------- */
#ifndef JPEG_CROP_NO_NAPI

#define NAPI_VERSION 8
#include <node_api.h>

static const char *status_code(int status) {
  switch (status) {
  case 1: return "CORRUPT_INPUT";
  case 2: return "UNSUPPORTED";
  case 3: return "INVALID_ARGUMENT";
  default: return "OUT_OF_MEMORY";
  }
}

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      napi_throw_error(env, "INVALID_ARGUMENT", "decodeResized: " #call " failed");                \
      return 0;                                                                                    \
    }                                                                                              \
  } while (0)

static int int_arg(napi_env env, napi_value v, const char *name, int *out) {
  napi_valuetype t;
  double d;
  char msg[96];
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok ||
      d != (double)(int)d) {
    snprintf(msg, sizeof msg, "decodeResized: %s must be an integer", name);
    napi_throw_error(env, "INVALID_ARGUMENT", msg);
    return 0;
  }
  *out = (int)d;
  return 1;
}

/* (jpeg: Uint8Array, left, top, cropWidth, cropHeight, outWidth, outHeight, dest: Float32Array,
 *  offset, mirror) → fills `j`; 0 with a pending exception when an argument is wrong. */
static int read_args(napi_env env, napi_callback_info info, job *j, napi_value *jpeg_v, napi_value *dest_v) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 10) {
    napi_throw_error(env, "INVALID_ARGUMENT",
                     "decodeResized(jpeg, left, top, cropWidth, cropHeight, outWidth, outHeight, dest, offset, mirror): 10 arguments expected");
    return 0;
  }
  bool is_ta;
  napi_typedarray_type type;
  size_t length;
  void *data;
  CHECK(napi_is_typedarray(env, argv[0], &is_ta));
  if (is_ta) CHECK(napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL));
  if (!is_ta || type != napi_uint8_array) {
    napi_throw_error(env, "INVALID_ARGUMENT", "decodeResized: jpeg must be a Uint8Array (or Buffer)");
    return 0;
  }
  j->jpeg = data;
  j->length = length;
  static const char *names[] = {"left", "top", "cropWidth", "cropHeight", "outWidth", "outHeight"};
  int *fields[] = {&j->left, &j->top, &j->crop_w, &j->crop_h, &j->out_w, &j->out_h};
  for (int i = 0; i < 6; i++)
    if (!int_arg(env, argv[1 + i], names[i], fields[i])) return 0;
  CHECK(napi_is_typedarray(env, argv[7], &is_ta));
  if (is_ta) CHECK(napi_get_typedarray_info(env, argv[7], &type, &length, &data, NULL, NULL));
  if (!is_ta || (type != napi_float32_array && type != napi_uint8_array)) {
    napi_throw_error(env, "INVALID_ARGUMENT", "decodeResized: dest must be a Float32Array or a Uint8Array");
    return 0;
  }
  int offset;
  if (!int_arg(env, argv[8], "offset", &offset)) return 0;
  if (j->out_w < 1 || j->out_h < 1 || j->out_w > 65535 || j->out_h > 65535 || offset < 0 ||
      (double)offset + (double)j->out_w * j->out_h * 3 > (double)length) {
    char msg[160];
    snprintf(msg, sizeof msg, "decodeResized: %dx%dx3 values at offset %d do not fit dest (%zu values)",
             j->out_h, j->out_w, offset, length);
    napi_throw_error(env, "INVALID_ARGUMENT", msg);
    return 0;
  }
  if (type == napi_float32_array) j->dest = (float *)data + offset;
  else j->dest8 = (uint8_t *)data + offset;
  bool mirror = false;
  if (napi_get_value_bool(env, argv[9], &mirror) != napi_ok) {
    napi_throw_error(env, "INVALID_ARGUMENT", "decodeResized: mirror must be a boolean");
    return 0;
  }
  j->mirror = mirror;
  *jpeg_v = argv[0];
  *dest_v = argv[7];
  return 1;
}

static napi_value make_error(napi_env env, const job *j) {
  napi_value code, msg, error;
  napi_create_string_utf8(env, status_code(j->status), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, j->message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  return error;
}

static napi_value decode_sync(napi_env env, napi_callback_info info) {
  job j;
  memset(&j, 0, sizeof j);
  napi_value jpeg_v, dest_v;
  if (!read_args(env, info, &j, &jpeg_v, &dest_v)) return NULL;
  run(&j);
  if (j.status != 0) napi_throw(env, make_error(env, &j));
  return NULL;
}

typedef struct {
  job j;
  napi_async_work work;
  napi_deferred deferred;
  napi_ref jpeg_ref, dest_ref; /* keep the input and the batch alive while the pool works */
} async_job;

static void execute(napi_env env, void *data) {
  (void)env;
  run(&((async_job *)data)->j);
}

static void complete(napi_env env, napi_status status, void *data) {
  async_job *a = data;
  if (status == napi_ok && a->j.status == 0) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, a->deferred, undefined);
  } else {
    if (status != napi_ok) {
      a->j.status = 4;
      snprintf(a->j.message, sizeof a->j.message, "the decode was cancelled");
    }
    napi_reject_deferred(env, a->deferred, make_error(env, &a->j));
  }
  napi_delete_reference(env, a->jpeg_ref);
  napi_delete_reference(env, a->dest_ref);
  napi_delete_async_work(env, a->work);
  free(a);
}

static napi_value decode_async(napi_env env, napi_callback_info info) {
  async_job *a = calloc(1, sizeof *a);
  if (!a) {
    napi_throw_error(env, "OUT_OF_MEMORY", "decodeResized: out of memory");
    return NULL;
  }
  napi_value jpeg_v, dest_v, promise, name;
  if (!read_args(env, info, &a->j, &jpeg_v, &dest_v)) {
    free(a);
    return NULL;
  }
  napi_create_reference(env, jpeg_v, 1, &a->jpeg_ref);
  napi_create_reference(env, dest_v, 1, &a->dest_ref);
  napi_create_promise(env, &a->deferred, &promise);
  napi_create_string_utf8(env, "compress:jpeg-decode", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, a, &a->work);
  napi_queue_async_work(env, a->work);
  return promise;
}

#ifdef __linux__
#include <sys/mman.h>
#endif

/*
 * adviseHugePages(array: TypedArray) → bytes advised. Asks the kernel to back the 2 MiB-aligned
 * interior of a large, not yet touched array with transparent huge pages (madvise
 * MADV_HUGEPAGE): a batch of 154 MB then costs ~80 page faults instead of ~37 000 (on a virtual
 * machine each costs ~12 µs). Advice only: the memory stays V8's. 0 where there is no such advice
 * (not Linux, or the array spans no whole huge page).
 */
static napi_value advise_huge_pages(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  bool is_ta = false;
  double advised = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_is_typedarray(env, argv[0], &is_ta) != napi_ok || !is_ta) {
    napi_throw_error(env, "INVALID_ARGUMENT", "adviseHugePages: expected a typed array");
    return NULL;
  }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) == napi_ok && data) {
    size_t unit = 1;
    switch (type) {
    case napi_int16_array: case napi_uint16_array: unit = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: unit = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: unit = 8; break;
    default: break;
    }
    const uintptr_t huge = (uintptr_t)2 << 20;
    const uintptr_t start = ((uintptr_t)data + huge - 1) & ~(huge - 1);
    const uintptr_t end = ((uintptr_t)data + length * unit) & ~(huge - 1);
    if (end > start && madvise((void *)start, end - start, MADV_HUGEPAGE) == 0) advised = (double)(end - start);
  }
#endif
  napi_create_double(env, advised, &result);
  return result;
}

NAPI_MODULE_INIT() {
  init_tables();
  napi_value fn;
  napi_create_function(env, "decodeResized", NAPI_AUTO_LENGTH, decode_async, NULL, &fn);
  napi_set_named_property(env, exports, "decodeResized", fn);
  napi_create_function(env, "decodeResizedSync", NAPI_AUTO_LENGTH, decode_sync, NULL, &fn);
  napi_set_named_property(env, exports, "decodeResizedSync", fn);
  napi_create_function(env, "adviseHugePages", NAPI_AUTO_LENGTH, advise_huge_pages, NULL, &fn);
  napi_set_named_property(env, exports, "adviseHugePages", fn);
  napi_value version;
  napi_create_int32(env, JPEG_LIB_VERSION, &version);
  napi_set_named_property(env, exports, "jpegLibVersion", version);
  return exports;
}
#endif /* JPEG_CROP_NO_NAPI */
