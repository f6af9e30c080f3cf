/** Options of {@link expectClose}. */
export interface CloseOptions {
  /** Largest allowed max|actual − expected|, as a fraction of `scale`. */
  rtol: number;
  /** The scale of the compared values. @default max|expected| (at least 1e-30) */
  scale?: number;
  /** Names the values in the failure message. @default 'values' */
  what?: string;
}
/** max|actual − expected| / scale, scale = max|expected| (at least 1e-30) unless given; Infinity on NaN or a length mismatch. */
export declare function relativeDifference(
  actual: number | ArrayLike<number>,
  expected: number | ArrayLike<number>,
  scale?: number,
): number;
/** Asserts max|actual − expected| ≤ rtol · scale (scale = max|expected| unless given). */
export declare function expectClose(
  actual: number | ArrayLike<number>,
  expected: number | ArrayLike<number>,
  options: CloseOptions,
): void;
