import { describe, expect, it } from 'vitest';
import { Rng } from './rng.js';

describe('Rng', () => {
  it('gives the same stream for the same seed and different streams for different seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const xs = Array.from({ length: 8 }, () => a.nextUint32());
    expect(Array.from({ length: 8 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 8 }, () => c.nextUint32())).not.toEqual(xs);
    expect(new Rng('fashion').next()).toBe(new Rng('fashion').next());
  });

  it('continues exactly from a saved state', () => {
    const a = new Rng(7);
    a.normal();
    const state = JSON.parse(JSON.stringify(a.state()));
    const b = Rng.fromState(state);
    expect(Array.from({ length: 16 }, () => b.normal())).toEqual(
      Array.from({ length: 16 }, () => a.normal()),
    );
    expect(() => Rng.fromState({ kind: 'mt' } as never)).toThrow(/not an Rng state/);
  });

  it('draws uniform doubles in [0, 1) with the right mean and variance', () => {
    const r = new Rng(1);
    const n = 200_000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const x = r.next();
      if (!(x >= 0 && x < 1)) throw new Error(`out of range: ${x}`);
      s += x;
      s2 += x * x;
    }
    expect(s / n).toBeCloseTo(0.5, 2);
    expect(s2 / n - (s / n) ** 2).toBeCloseTo(1 / 12, 2);
  });

  it('draws unbiased integers and normal deviates', () => {
    const r = new Rng(3);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[r.int(6)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(400);
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < 100_000; i++) {
      const z = r.normal();
      s += z;
      s2 += z * z;
    }
    expect(s / 100_000).toBeCloseTo(0, 1);
    expect(s2 / 100_000).toBeCloseTo(1, 1);
    expect(() => r.int(0)).toThrow(/1 ≤ n/);
  });

  it('makes permutations that contain every index once', () => {
    const p = new Rng(5).permutation(1000);
    expect(Array.from(p).sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Array.from(new Rng(5).permutation(1000))).toEqual(Array.from(p));
  });

  it('forks independent, reproducible streams', () => {
    const base = new Rng(9);
    const f1 = base.fork('queue').nextUint32();
    const f2 = base.fork('crops').nextUint32();
    expect(f1).not.toBe(f2);
    expect(new Rng(9).fork('queue').nextUint32()).toBe(f1);
  });
});
