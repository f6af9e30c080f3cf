import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ortSessionOptions } from './options.js';
import { MAX_THREADS, resolveThreads, threadsPerCore } from './threads.js';

describe('threads', () => {
  it('0 is one per core, n is n', () => {
    expect(threadsPerCore()).toBe(Math.max(1, availableParallelism()));
    expect(resolveThreads(0)).toBe(threadsPerCore());
    expect(resolveThreads(3)).toBe(3);
    expect(resolveThreads(MAX_THREADS)).toBe(MAX_THREADS);
  });

  it('refuses negative, fractional and too large counts, naming the option', () => {
    for (const bad of [-1, 1.5, Number.NaN, MAX_THREADS + 1]) {
      expect(() => resolveThreads(bad, 'knnSearch: options.threads')).toThrow(
        `knnSearch: options.threads must be an integer from 0 (one per core) to ${MAX_THREADS}, got ${bad}`,
      );
    }
  });

  it('the session options carry the resolved count, the providers and spinning', () => {
    expect(ortSessionOptions({})).toEqual({
      intraOpNumThreads: threadsPerCore(),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
    });
    expect(ortSessionOptions({ threads: 2, providers: ['cuda', 'cpu'], spinning: false })).toMatchObject({
      intraOpNumThreads: 2,
      executionProviders: ['cuda', 'cpu'],
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    expect(() => ortSessionOptions({ providers: [] })).toThrow('providers must be a non-empty list');
    expect(() => ortSessionOptions({ threads: -2, user: 'OnnxTeacher' })).toThrow(
      'OnnxTeacher: threads must be',
    );
  });
});
