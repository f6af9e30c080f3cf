import { CompressError, type ErrorCode } from './errors.js';
import { assertFinite } from './features.js';
import type { FeatureMatrix, ImageBatch, Teacher } from './types.js';

export interface CheckedTeacherOptions {
  /**
   * The code of every broken-contract error (wrong shape, NaN), e.g. `EXTERNAL` for a user's
   * module or `CORRUPT_INPUT` for a feature file; by default `SHAPE_MISMATCH` and `NON_FINITE`.
   */
  code?: ErrorCode;
  /**
   * 'refuse': an all-zero row is an error too (features are L2-normalised for the loss and the
   * k-NN: a zero row has no direction). @default 'allow'
   */
  zeroRows?: 'allow' | 'refuse';
}

/**
 * A teacher whose every answer is checked against the contract before anyone uses it: `embed`
 * returns a FeatureMatrix of B × dim finite values, one row per image of the batch. A teacher that
 * throws (a custom module, a remote service) has its error wrapped into an `EXTERNAL`
 * CompressError naming the teacher; a wrong shape is `SHAPE_MISMATCH`, NaN or ±Inf `NON_FINITE` —
 * each names the teacher and the batch (its call number and first dataset index), so the failure
 * is told apart from the student's own.
 *
 * ```ts
 * const teacher = checkedTeacher(myTeacher, "my-teacher.mjs");
 * ```
 * A teacher that is checked already is not wrapped twice (every batch would be scanned twice): the
 * result checks its inner teacher once, with `options` over the options it had.
 */
export function checkedTeacher(
  teacher: Teacher,
  name: string,
  options: CheckedTeacherOptions = {},
): CheckedTeacher {
  if (teacher instanceof CheckedTeacher) {
    const code = options.code ?? teacher.code;
    return new CheckedTeacher(teacher.inner, name, code, options.zeroRows ?? teacher.zeroRows);
  }
  if (!teacher || typeof teacher !== 'object' || typeof teacher.embed !== 'function') {
    throw new CompressError(
      'EXTERNAL',
      `teacher ${name}: expected a Teacher { dim, embed(batch), dispose() }, found ${teacher === null ? 'null' : typeof teacher}`,
      { input: name },
    );
  }
  if (!Number.isInteger(teacher.dim) || teacher.dim <= 0) {
    throw new CompressError(
      'EXTERNAL',
      `teacher ${name}: dim must be a positive integer, found ${String(teacher.dim)}`,
      { input: name },
    );
  }
  return new CheckedTeacher(teacher, name, options.code, options.zeroRows ?? 'allow');
}

/** What {@link checkedTeacher} returns; `inner` is the teacher it checks. */
export class CheckedTeacher implements Teacher {
  readonly dim: number;
  readonly fingerprint?: string;
  private calls = 0;

  constructor(
    readonly inner: Teacher,
    readonly name: string,
    readonly code?: ErrorCode,
    readonly zeroRows: 'allow' | 'refuse' = 'allow',
  ) {
    this.dim = inner.dim;
    if (inner.fingerprint !== undefined) this.fingerprint = inner.fingerprint;
  }

  async embed(batch: ImageBatch): Promise<FeatureMatrix> {
    const { inner: teacher, name } = this;
    const call = ++this.calls;
    const rows = batch.shape[0];
    const which = `batch ${call} (${rows} images from dataset index ${batch.indices[0] ?? '-'})`;
    let out: FeatureMatrix;
    try {
      out = await teacher.embed(batch);
    } catch (error) {
      if (error instanceof CompressError) throw error;
      throw new CompressError(
        'EXTERNAL',
        `teacher ${name} failed on ${which}: ${error instanceof Error ? error.message : String(error)}`,
        { input: name, cause: error },
      );
    }
    if (!out || typeof out !== 'object' || !(out.data instanceof Float32Array)) {
      throw new CompressError(
        this.code ?? 'SHAPE_MISMATCH',
        `teacher ${name} on ${which}: embed must return { rows, dim, data: Float32Array }, found ${out === null ? 'null' : typeof out === 'object' ? `an object with keys ${Object.keys(out).join(', ')}` : typeof out}`,
        { input: name },
      );
    }
    if (out.rows !== rows || out.dim !== this.dim || out.data.length !== rows * this.dim) {
      throw new CompressError(
        this.code ?? 'SHAPE_MISMATCH',
        `teacher ${name} on ${which}: expected ${rows}×${this.dim} features (batch size × its dim), found ${out.rows}×${out.dim} with ${out.data.length} values`,
        { input: name },
      );
    }
    try {
      assertFinite(out, `teacher ${name} on ${which}`, (r) => `row ${r} (dataset index ${batch.indices[r]})`);
    } catch (error) {
      if (!this.code) throw error;
      throw new CompressError(this.code, (error as Error).message, { input: name, cause: error });
    }
    if (this.zeroRows === 'refuse') {
      const dim = this.dim;
      for (let r = 0; r < rows; r++) {
        let nonzero = false;
        for (let j = r * dim; j < (r + 1) * dim && !nonzero; j++) nonzero = out.data[j] !== 0;
        if (!nonzero) {
          throw new CompressError(
            this.code ?? 'NON_FINITE',
            `teacher ${name} on ${which}: row ${r} (dataset index ${batch.indices[r]}) is all zeros; features are L2-normalised, and a zero row has no direction (a teacher that answers 0 for a blank crop needs a bias or another feature)`,
            { input: name },
          );
        }
      }
    }
    return out;
  }

  dispose(): void | Promise<void> {
    return this.inner.dispose?.();
  }
}
