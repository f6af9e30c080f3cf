import { CompressError } from '@compress/core';
import { IMAGENET, type Normalization } from './layout.js';
import type { ResolvedOnnxTeacherOptions } from './onnx-teacher-options.js';

/** What a model's metadata says it expects of its input's normalisation. */
interface DeclaredNormalization {
  normalize: 'none' | 'imagenet' | Normalization;
  /** The metadata entry it comes from, as `key = value`. */
  from: string;
}

function declaredNormalization(metadata: Record<string, string>): DeclaredNormalization | null {
  const parse = (key: string): unknown => {
    try {
      return JSON.parse(metadata[key] ?? '');
    } catch {
      return undefined;
    }
  };
  const isStats = (v: unknown): v is Normalization => {
    const o = v as Normalization | null;
    return (
      typeof o === 'object' &&
      o !== null &&
      Array.isArray(o.mean) &&
      Array.isArray(o.std) &&
      [...o.mean, ...o.std].every((x) => typeof x === 'number')
    );
  };
  // @compress/students' exportOnnx
  const students = metadata['compress.normalization'];
  if (students === 'inside') return { normalize: 'none', from: 'compress.normalization = inside' };
  if (students === 'none') {
    const stats = { mean: parse('compress.mean'), std: parse('compress.std') };
    if (isStats(stats)) return { normalize: stats, from: 'compress.normalization = none' };
  }
  // tooling/teacher-export
  const options = parse('compress.onnxTeacherOptions') as { normalize?: unknown } | undefined;
  const n = options?.normalize;
  if (n === 'none' || n === 'imagenet' || isStats(n)) {
    return { normalize: n, from: `compress.onnxTeacherOptions = ${metadata['compress.onnxTeacherOptions']}` };
  }
  return null;
}

function statsOf(n: 'none' | 'imagenet' | Normalization): Normalization {
  return n === 'none' ? { mean: [0], std: [1] } : n === 'imagenet' ? IMAGENET : n;
}

function sameNormalization(
  a: 'none' | 'imagenet' | Normalization,
  b: 'none' | 'imagenet' | Normalization,
): boolean {
  const x = statsOf(a);
  const y = statsOf(b);
  const same = (u: readonly number[], v: readonly number[]) => {
    if (u.length !== v.length && u.length !== 1 && v.length !== 1) return false;
    const n = Math.max(u.length, v.length);
    for (let i = 0; i < n; i++) {
      const p = u[u.length === 1 ? 0 : i]!;
      const q = v[v.length === 1 ? 0 : i]!;
      if (!(Math.abs(p - q) <= 1e-6 * Math.max(1, Math.abs(q)))) return false;
    }
    return true;
  };
  return same(x.mean, y.mean) && same(x.std, y.std);
}

function describeNormalization(n: 'none' | 'imagenet' | Normalization): string {
  return typeof n === 'string' ? `'${n}'` : `{ mean: [${n.mean.join(', ')}], std: [${n.std.join(', ')}] }`;
}

/**
 * Compares the `normalize` option with what the model's metadata declares: normalising for a model
 * that takes [0, 1] pixels (it normalises inside) is refused; any other difference is logged.
 */
export function checkNormalization(
  metadata: Record<string, string>,
  source: string,
  opts: ResolvedOnnxTeacherOptions,
  explicit: boolean,
): void {
  const declared = declaredNormalization(metadata);
  if (declared === null || sameNormalization(opts.normalize, declared.normalize)) return;
  const cli = (n: 'none' | 'imagenet' | Normalization) =>
    typeof n === 'string' ? n : `${n.mean.join(',')},${n.std.join(',')}`;
  if (declared.normalize === 'none') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `OnnxTeacher ${source}: normalize is ${describeNormalization(opts.normalize)}, but the model's metadata (${declared.from}) says it takes images in [0, 1] as they are ` +
        `(any normalisation is inside the model), so the images would be normalised twice; pass normalize: 'none' (CLI: --teacher-normalize none)`,
      { input: 'normalize' },
    );
  }
  if (opts.log) {
    opts.log(
      `OnnxTeacher ${source}: warning: normalize is ${describeNormalization(opts.normalize)}${explicit ? '' : ' (the default)'}, but the model's metadata (${declared.from}) ` +
        `says it expects input normalised with ${describeNormalization(declared.normalize)}; pass normalize: ${describeNormalization(declared.normalize)} (CLI: --teacher-normalize ${cli(declared.normalize)}) unless you mean it`,
    );
  }
}
