;; SIMD kernels of the CompRess loss (see ../softmax-kl.ts for the maths), on K×B similarity
;; matrices in the memory of the tfjs wasm backend (imported, so tensors are used in place).
;; All pointers are byte offsets; B is a multiple of 4; every float is f32 unless noted.
(module
  (memory (import "env" "memory") 1 65536)

  ;; e^x (x ≤ 0) is inlined twice in expsum (V8 does not inline wasm calls): Cephes expf,
  ;; n = round(x·log2 e), r = x − n·ln 2 (in two parts), e^x = 2^n·(1 + r + r²·poly(r)), with 2^n
  ;; built in the exponent bits; x < −87 is clamped (e^−87 ≈ 1.6e−38, negligible in any sum).

  ;; mt[i] = max_k lt[k·B + i], ms[i] = max_k ls[k·B + i].
  (func (export "colmax") (param $lt i32) (param $ls i32) (param $K i32) (param $B i32) (param $mt i32) (param $ms i32)
    (local $i i32) (local $k i32) (local $rowBytes i32)
    (local.set $rowBytes (i32.shl (local.get $B) (i32.const 2)))
    (local.set $i (i32.const 0))
    (block $done (loop $init
      (br_if $done (i32.ge_u (local.get $i) (local.get $rowBytes)))
      (v128.store (i32.add (local.get $mt) (local.get $i)) (f32x4.splat (f32.const -inf)))
      (v128.store (i32.add (local.get $ms) (local.get $i)) (f32x4.splat (f32.const -inf)))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $init)))
    (local.set $k (i32.const 0))
    (block $kdone (loop $rows
      (br_if $kdone (i32.ge_u (local.get $k) (local.get $K)))
      (local.set $i (i32.const 0))
      (block $idone (loop $cols
        (br_if $idone (i32.ge_u (local.get $i) (local.get $rowBytes)))
        (v128.store (i32.add (local.get $mt) (local.get $i))
          (f32x4.max (v128.load (i32.add (local.get $mt) (local.get $i))) (v128.load (i32.add (local.get $lt) (local.get $i)))))
        (v128.store (i32.add (local.get $ms) (local.get $i))
          (f32x4.max (v128.load (i32.add (local.get $ms) (local.get $i))) (v128.load (i32.add (local.get $ls) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $cols)))
      (local.set $lt (i32.add (local.get $lt) (local.get $rowBytes)))
      (local.set $ls (i32.add (local.get $ls) (local.get $rowBytes)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $rows))))

  ;; et = exp((lt − mt)·invT), es = exp((ls − ms)·invT), stored over lt and ls; per column i the
  ;; sums St = Σ et, Ss = Σ es, X = Σ et·(lt − ls) go to acc64 (f64: St at [0, B), Ss at [B, 2B),
  ;; X at [2B, 3B)), through f32 partial sums (acc32, 3B floats) flushed every 64 rows.
  (func (export "expsum") (param $lt i32) (param $ls i32) (param $K i32) (param $B i32) (param $invT f32)
                          (param $mt i32) (param $ms i32) (param $acc32 i32) (param $acc64 i32)
    (local $i i32) (local $k i32) (local $rowBytes i32) (local $a v128) (local $b v128) (local $et v128) (local $es v128)
    (local $p32 i32) (local $p64 i32) (local $n i32) (local $vinvT v128)
    (local $ex v128) (local $en v128) (local $er v128) (local $ep v128)
    (local.set $rowBytes (i32.shl (local.get $B) (i32.const 2)))
    (local.set $vinvT (f32x4.splat (local.get $invT)))
    ;; zero both accumulators
    (memory.fill (local.get $acc32) (i32.const 0) (i32.mul (local.get $rowBytes) (i32.const 3)))
    (memory.fill (local.get $acc64) (i32.const 0) (i32.mul (local.get $rowBytes) (i32.const 6)))
    (local.set $k (i32.const 0))
    (block $kdone (loop $rows
      (br_if $kdone (i32.ge_u (local.get $k) (local.get $K)))
      (local.set $i (i32.const 0))
      (block $idone (loop $cols
        (br_if $idone (i32.ge_u (local.get $i) (local.get $rowBytes)))
        (local.set $a (v128.load (i32.add (local.get $lt) (local.get $i))))
        (local.set $b (v128.load (i32.add (local.get $ls) (local.get $i))))
        ;; $et = exp(x), inlined (see $exp)
        (local.set $ex (f32x4.max (f32x4.mul (f32x4.sub (local.get $a) (v128.load (i32.add (local.get $mt) (local.get $i)))) (local.get $vinvT)) (f32x4.splat (f32.const -87.0))))
        (local.set $en (f32x4.nearest (f32x4.mul (local.get $ex) (f32x4.splat (f32.const 1.44269504088896341)))))
        (local.set $er (f32x4.sub (f32x4.sub (local.get $ex) (f32x4.mul (local.get $en) (f32x4.splat (f32.const 0.693359375))))
                                  (f32x4.mul (local.get $en) (f32x4.splat (f32.const -2.12194440e-4)))))
        (local.set $ep (f32x4.add (f32x4.mul (f32x4.splat (f32.const 1.9875691500e-4)) (local.get $er)) (f32x4.splat (f32.const 1.3981999507e-3))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 8.3334519073e-3))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 4.1665795894e-2))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 1.6666665459e-1))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 5.0000001201e-1))))
        (local.set $et (f32x4.mul
          (f32x4.add (f32x4.add (f32x4.mul (local.get $ep) (f32x4.mul (local.get $er) (local.get $er))) (local.get $er))
                     (f32x4.splat (f32.const 1.0)))
          (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $en)) (i32x4.splat (i32.const 127))) (i32.const 23))))
        ;; $es = exp(x), inlined (see $exp)
        (local.set $ex (f32x4.max (f32x4.mul (f32x4.sub (local.get $b) (v128.load (i32.add (local.get $ms) (local.get $i)))) (local.get $vinvT)) (f32x4.splat (f32.const -87.0))))
        (local.set $en (f32x4.nearest (f32x4.mul (local.get $ex) (f32x4.splat (f32.const 1.44269504088896341)))))
        (local.set $er (f32x4.sub (f32x4.sub (local.get $ex) (f32x4.mul (local.get $en) (f32x4.splat (f32.const 0.693359375))))
                                  (f32x4.mul (local.get $en) (f32x4.splat (f32.const -2.12194440e-4)))))
        (local.set $ep (f32x4.add (f32x4.mul (f32x4.splat (f32.const 1.9875691500e-4)) (local.get $er)) (f32x4.splat (f32.const 1.3981999507e-3))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 8.3334519073e-3))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 4.1665795894e-2))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 1.6666665459e-1))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 5.0000001201e-1))))
        (local.set $es (f32x4.mul
          (f32x4.add (f32x4.add (f32x4.mul (local.get $ep) (f32x4.mul (local.get $er) (local.get $er))) (local.get $er))
                     (f32x4.splat (f32.const 1.0)))
          (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $en)) (i32x4.splat (i32.const 127))) (i32.const 23))))
        (v128.store (i32.add (local.get $lt) (local.get $i)) (local.get $et))
        (v128.store (i32.add (local.get $ls) (local.get $i)) (local.get $es))
        (local.set $p32 (i32.add (local.get $acc32) (local.get $i)))
        (v128.store (local.get $p32) (f32x4.add (v128.load (local.get $p32)) (local.get $et)))
        (local.set $p32 (i32.add (local.get $p32) (local.get $rowBytes)))
        (v128.store (local.get $p32) (f32x4.add (v128.load (local.get $p32)) (local.get $es)))
        (local.set $p32 (i32.add (local.get $p32) (local.get $rowBytes)))
        (v128.store (local.get $p32)
          (f32x4.add (v128.load (local.get $p32)) (f32x4.mul (local.get $et) (f32x4.sub (local.get $a) (local.get $b)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $cols)))
      (local.set $lt (i32.add (local.get $lt) (local.get $rowBytes)))
      (local.set $ls (i32.add (local.get $ls) (local.get $rowBytes)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      ;; flush the f32 partial sums into f64 every 64 rows and after the last row
      (if (i32.or (i32.eqz (i32.and (local.get $k) (i32.const 63))) (i32.eq (local.get $k) (local.get $K)))
        (then
          (local.set $p32 (local.get $acc32))
          (local.set $p64 (local.get $acc64))
          (local.set $n (i32.add (local.get $acc32) (i32.mul (local.get $rowBytes) (i32.const 3))))
          (block $fdone (loop $flush
            (br_if $fdone (i32.ge_u (local.get $p32) (local.get $n)))
            (local.set $a (v128.load (local.get $p32)))
            (v128.store (local.get $p64)
              (f64x2.add (v128.load (local.get $p64)) (f64x2.promote_low_f32x4 (local.get $a))))
            (v128.store offset=16 (local.get $p64)
              (f64x2.add (v128.load offset=16 (local.get $p64))
                (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $a) (local.get $a)))))
            (v128.store (local.get $p32) (v128.const i32x4 0 0 0 0))
            (local.set $p32 (i32.add (local.get $p32) (i32.const 16)))
            (local.set $p64 (i32.add (local.get $p64) (i32.const 32)))
            (br $flush)))))
      (br $rows))))

  ;; g = es·ws − et·wt (ws, wt: B floats), written chunk-major: queue rows [k0, k0 + n) form a B×n
  ;; row-major block at g + k0·B floats (n = min(chunk, K − k0)). 4×4 tiles are transposed in registers.
  (func (export "grad") (param $et i32) (param $es i32) (param $K i32) (param $B i32) (param $chunk i32)
                        (param $wt i32) (param $ws i32) (param $g i32)
    (local $k0 i32) (local $n i32) (local $j i32) (local $i i32) (local $rowBytes i32) (local $src i32) (local $dst i32)
    (local $r0 v128) (local $r1 v128) (local $r2 v128) (local $r3 v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local $vwt v128) (local $vws v128) (local $nBytes i32) (local $lane i32)
    (local.set $rowBytes (i32.shl (local.get $B) (i32.const 2)))
    (local.set $k0 (i32.const 0))
    (block $cdone (loop $chunks
      (br_if $cdone (i32.ge_u (local.get $k0) (local.get $K)))
      (local.set $n (select (local.get $chunk) (i32.sub (local.get $K) (local.get $k0))
        (i32.le_u (local.get $chunk) (i32.sub (local.get $K) (local.get $k0)))))
      (local.set $nBytes (i32.shl (local.get $n) (i32.const 2)))
      ;; 4 rows at a time
      (local.set $j (i32.const 0))
      (block $jdone (loop $quads
        (br_if $jdone (i32.gt_u (i32.add (local.get $j) (i32.const 4)) (local.get $n)))
        (local.set $i (i32.const 0))
        (block $idone (loop $cols
          (br_if $idone (i32.ge_u (local.get $i) (local.get $rowBytes)))
          (local.set $vwt (v128.load (i32.add (local.get $wt) (local.get $i))))
          (local.set $vws (v128.load (i32.add (local.get $ws) (local.get $i))))
          ;; src: element (k0 + j, i/4) of the K×B matrices
          (local.set $src (i32.add (i32.mul (i32.add (local.get $k0) (local.get $j)) (local.get $rowBytes)) (local.get $i)))
          (local.set $r0 (f32x4.sub (f32x4.mul (v128.load (i32.add (local.get $es) (local.get $src))) (local.get $vws))
                                    (f32x4.mul (v128.load (i32.add (local.get $et) (local.get $src))) (local.get $vwt))))
          (local.set $src (i32.add (local.get $src) (local.get $rowBytes)))
          (local.set $r1 (f32x4.sub (f32x4.mul (v128.load (i32.add (local.get $es) (local.get $src))) (local.get $vws))
                                    (f32x4.mul (v128.load (i32.add (local.get $et) (local.get $src))) (local.get $vwt))))
          (local.set $src (i32.add (local.get $src) (local.get $rowBytes)))
          (local.set $r2 (f32x4.sub (f32x4.mul (v128.load (i32.add (local.get $es) (local.get $src))) (local.get $vws))
                                    (f32x4.mul (v128.load (i32.add (local.get $et) (local.get $src))) (local.get $vwt))))
          (local.set $src (i32.add (local.get $src) (local.get $rowBytes)))
          (local.set $r3 (f32x4.sub (f32x4.mul (v128.load (i32.add (local.get $es) (local.get $src))) (local.get $vws))
                                    (f32x4.mul (v128.load (i32.add (local.get $et) (local.get $src))) (local.get $vwt))))
          ;; transpose: column c of the tile = rows j…j+3 of batch row i/4 + c
          (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r0) (local.get $r1)))
          (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $r0) (local.get $r1)))
          (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r2) (local.get $r3)))
          (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $r2) (local.get $r3)))
          ;; dst: g + (k0·B + (i/4)·n + j)·4
          (local.set $dst (i32.add (local.get $g)
            (i32.add (i32.mul (local.get $k0) (local.get $rowBytes))
              (i32.add (i32.mul (i32.shr_u (local.get $i) (i32.const 2)) (local.get $nBytes)) (i32.shl (local.get $j) (i32.const 2))))))
          (v128.store (local.get $dst) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
          (local.set $dst (i32.add (local.get $dst) (local.get $nBytes)))
          (v128.store (local.get $dst) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
          (local.set $dst (i32.add (local.get $dst) (local.get $nBytes)))
          (v128.store (local.get $dst) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
          (local.set $dst (i32.add (local.get $dst) (local.get $nBytes)))
          (v128.store (local.get $dst) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
          (local.set $i (i32.add (local.get $i) (i32.const 16)))
          (br $cols)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $quads)))
      ;; remaining rows (n mod 4), one at a time, lane by lane
      (block $rdone (loop $rest
        (br_if $rdone (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $i (i32.const 0))
        (block $idone2 (loop $cols2
          (br_if $idone2 (i32.ge_u (local.get $i) (local.get $rowBytes)))
          (local.set $src (i32.add (i32.mul (i32.add (local.get $k0) (local.get $j)) (local.get $rowBytes)) (local.get $i)))
          (f32.store
            (i32.add (local.get $g)
              (i32.add (i32.mul (local.get $k0) (local.get $rowBytes))
                (i32.add (i32.mul (i32.shr_u (local.get $i) (i32.const 2)) (local.get $nBytes)) (i32.shl (local.get $j) (i32.const 2)))))
            (f32.sub (f32.mul (f32.load (i32.add (local.get $es) (local.get $src))) (f32.load (i32.add (local.get $ws) (local.get $i))))
                     (f32.mul (f32.load (i32.add (local.get $et) (local.get $src))) (f32.load (i32.add (local.get $wt) (local.get $i))))))
          (local.set $i (i32.add (local.get $i) (i32.const 4)))
          (br $cols2)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $rest)))
      (local.set $k0 (i32.add (local.get $k0) (local.get $chunk)))
      (br $chunks))))
)
