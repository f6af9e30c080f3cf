import { CompressError } from './errors.js';

/** Serialisable state of an {@link Rng}: four 32-bit words (plus a cached normal deviate). */
export interface RngState {
  kind: 'xoshiro128**';
  s: [number, number, number, number];
  spare: number | null;
}

/** splitmix32: spreads a 32-bit seed over the generator state. */
function splitmix32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** FNV-1a over a string: turns names into seeds. */
export function hashString(text: string, basis = 0x811c9dc5): number {
  let h = basis >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * The seeded random generator every compress package uses (no `Math.random` in library code):
 * xoshiro128** (Blackman & Vigna), seeded through splitmix32. Same seed, same stream, on every
 * platform. `fork(key)` derives an independent stream for a named purpose (queue init, crops,
 * shuffling) so that adding a consumer does not shift the others.
 */
export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spare: number | null = null;

  constructor(seed: number | string = 0) {
    const n = typeof seed === 'string' ? hashString(seed) : seed;
    if (!Number.isFinite(n)) {
      throw new CompressError('INVALID_ARGUMENT', `seed must be a finite number or a string, got ${seed}`, {
        input: 'seed',
      });
    }
    // Fold the full double (negative, > 2^32) into 32 bits.
    const lo = n >>> 0;
    const hi = Math.floor(n / 2 ** 32) >>> 0;
    const sm = splitmix32(lo ^ Math.imul(hi, 0x9e3779b1));
    this.s0 = sm();
    this.s1 = sm();
    this.s2 = sm();
    this.s3 = sm();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Restores a generator from {@link Rng.state}. */
  static fromState(state: RngState): Rng {
    if (state?.kind !== 'xoshiro128**' || !Array.isArray(state.s) || state.s.length !== 4) {
      throw new CompressError('MISMATCH', `not an Rng state: expected kind 'xoshiro128**' with 4 words`, {
        input: 'state',
      });
    }
    const r = new Rng(0);
    [r.s0, r.s1, r.s2, r.s3] = state.s.map((v) => v >>> 0) as [number, number, number, number];
    r.spare = state.spare;
    return r;
  }

  /** The full state; `Rng.fromState(r.state())` continues the same stream. */
  state(): RngState {
    return { kind: 'xoshiro128**', s: [this.s0, this.s1, this.s2, this.s3], spare: this.spare };
  }

  /** An independent generator for a named purpose, derived from this one's current state. */
  fork(key: string | number): Rng {
    const k = typeof key === 'string' ? hashString(key) : key >>> 0;
    const child = new Rng(0);
    const sm = splitmix32(this.s0 ^ Math.imul(k, 0x9e3779b1) ^ this.s2);
    child.s0 = sm() ^ this.s1;
    child.s1 = sm() ^ this.s3;
    child.s2 = sm() ^ k;
    child.s3 = sm();
    if ((child.s0 | child.s1 | child.s2 | child.s3) === 0) child.s0 = 1;
    return child;
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniform double in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** A uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) {
      throw new CompressError('INVALID_ARGUMENT', `Rng.int(n) needs an integer 1 ≤ n ≤ 2^32, got ${n}`, {
        input: 'n',
      });
    }
    const limit = 2 ** 32 - (2 ** 32 % n);
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return x % n;
  }

  /** A standard normal deviate (Marsaglia polar method). */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return mean + std * v;
    }
    let u = 0;
    let v = 0;
    let s = 0;
    do {
      u = this.next() * 2 - 1;
      v = this.next() * 2 - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const m = Math.sqrt((-2 * Math.log(s)) / s);
    this.spare = v * m;
    return mean + std * u * m;
  }

  /** True with probability `p`. */
  bernoulli(p: number): boolean {
    return this.next() < p;
  }

  /** Fills `out` with uniform values in [lo, hi). */
  fillUniform<T extends Float32Array | Float64Array>(out: T, lo = 0, hi = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * this.next();
    return out;
  }

  /** Fills `out` with normal deviates. */
  fillNormal<T extends Float32Array | Float64Array>(out: T, mean = 0, std = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = this.normal(mean, std);
    return out;
  }

  /** Shuffles `array` in place (Fisher–Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = array[i];
      array[i] = array[j];
      array[j] = t;
    }
    return array;
  }

  /** A uniformly random permutation of 0…n−1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
