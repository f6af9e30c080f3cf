/** Machine-readable reason of a {@link CompressError}. */
export type ErrorCode =
  /** An argument is out of range or of the wrong kind. */
  | 'INVALID_ARGUMENT'
  /** Shapes or sizes disagree (features vs labels, model input vs data). */
  | 'SHAPE_MISMATCH'
  /** A file or directory is missing. */
  | 'NOT_FOUND'
  /** A file exists but cannot be decoded. */
  | 'CORRUPT_INPUT'
  /** NaN or Inf where finite numbers are required. */
  | 'NON_FINITE'
  /** A cache, checkpoint or model belongs to something else (another dataset, teacher, version). */
  | 'MISMATCH'
  /** Something valid in general that this implementation does not do. */
  | 'UNSUPPORTED'
  /** The request does not fit the memory of the active backend. */
  | 'OUT_OF_MEMORY'
  /** An engine (backend, execution provider) is not installed or cannot start. */
  | 'BACKEND_UNAVAILABLE'
  /** A configuration key or value is invalid. */
  | 'CONFIG'
  /** Reading or writing failed (disk full, permission denied). */
  | 'IO'
  /** Code supplied by the user (a teacher or dataset module) threw or broke its contract. */
  | 'EXTERNAL';

export interface CompressErrorOptions {
  /** The input the error is about: a file path, an argument name, a config key. */
  input?: string;
  cause?: unknown;
}

/**
 * Every error thrown on purpose by compress. The message names the input, what was expected and
 * what was found; `code` lets programs react without parsing it.
 */
export class CompressError extends Error {
  readonly code: ErrorCode;
  readonly input: string | undefined;

  constructor(code: ErrorCode, message: string, options: CompressErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CompressError';
    this.code = code;
    this.input = options.input;
  }
}

/** Throws INVALID_ARGUMENT unless `condition` holds. */
export function invariant(condition: unknown, message: string, input?: string): asserts condition {
  if (!condition) throw new CompressError('INVALID_ARGUMENT', message, input === undefined ? {} : { input });
}

/** Marks a switch as exhaustive over a closed union. */
export function assertUnreachable(value: never, what = 'value'): never {
  throw new CompressError('UNSUPPORTED', `unexpected ${what}: ${JSON.stringify(value)}`);
}
