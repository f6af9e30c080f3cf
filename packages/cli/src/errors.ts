import { CompressError, type ErrorCode } from '@compress/core';

/**
 * The exit codes of `compress-ssl`, with what each means (printed by `--help`). Every failure
 * prints one message on stderr (and, with `--json`, one `{ "error": … }` object on stdout) and
 * exits with one of these; a stack trace only with `--debug` or `COMPRESS_DEBUG=1`.
 */
const table = {
  ok: [0, 'done'],
  failed: [1, 'failed while working (I/O, an engine, out of memory, training diverged)'],
  usage: [2, 'bad usage or configuration (a flag, a config key or value, an argument)'],
  input: [3, 'an input is missing, damaged or belongs to something else (checksum, fingerprint, shape)'],
  external: [4, 'a teacher or dataset module of yours threw or broke its contract'],
  internal: [70, 'a fault inside compress (report it with the output of --debug)'],
  interrupted: [130, 'stopped by SIGINT (a checkpoint is saved first)'],
  terminated: [143, 'stopped by SIGTERM (a checkpoint is saved first)'],
} as const;

export const exitCodes = Object.fromEntries(Object.entries(table).map(([k, [code]]) => [k, code])) as {
  [K in keyof typeof table]: (typeof table)[K][0];
};

const byCode: Record<ErrorCode, number> = {
  CONFIG: exitCodes.usage,
  INVALID_ARGUMENT: exitCodes.usage,
  NOT_FOUND: exitCodes.input,
  CORRUPT_INPUT: exitCodes.input,
  MISMATCH: exitCodes.input,
  SHAPE_MISMATCH: exitCodes.input,
  EXTERNAL: exitCodes.external,
  NON_FINITE: exitCodes.failed,
  UNSUPPORTED: exitCodes.failed,
  OUT_OF_MEMORY: exitCodes.failed,
  BACKEND_UNAVAILABLE: exitCodes.failed,
  IO: exitCodes.failed,
};

/** The exit code of an error that reached the command line. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof CompressError) return byCode[error.code] ?? exitCodes.failed;
  if (isUsageError(error)) return exitCodes.usage;
  return exitCodes.internal;
}

function isUsageError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && code.startsWith('commander.');
}

/**
 * The library's hints name its own options; on the command line they are flags. Each library
 * option that a hint may name, with the flag that sets it.
 */
const cliOptionOf: [RegExp, string][] = [
  [/pass \{ skipCorrupt: true \}/g, 'pass --skip-corrupt'],
  [/pass overwrite: true/g, 'pass --overwrite'],
  [/pass teacherFingerprint/g, 'pass --teacher-fingerprint'],
];

/** A library message worded for the command line (its hints name flags, not options). */
export function forCommandLine(message: string): string {
  let out = message;
  for (const [pattern, flag] of cliOptionOf) out = out.replace(pattern, flag);
  return out;
}

/** Whether stack traces are wanted: `--debug` anywhere in the arguments, or COMPRESS_DEBUG set (not empty or 0). */
export function debugWanted(argv: readonly string[] = process.argv, env = process.env): boolean {
  const flag = env.COMPRESS_DEBUG;
  return argv.includes('--debug') || (flag !== undefined && flag !== '' && flag !== '0');
}

/** The one message an error prints: `compress-ssl: …`, with the stack only when debugging. */
export function errorMessage(error: unknown, debug: boolean): string {
  const text =
    error instanceof CompressError
      ? forCommandLine(error.message)
      : `internal error: ${error instanceof Error ? error.message : String(error)} (a fault in compress: please report it with the output of --debug)`;
  const lines = [`compress-ssl: ${text}`];
  if (debug) {
    let e: unknown = error;
    while (e instanceof Error) {
      lines.push(e.stack ?? String(e));
      e = e.cause;
      if (e) lines.push('caused by:');
    }
  } else if (!(error instanceof CompressError)) {
    lines.push('(run with --debug or COMPRESS_DEBUG=1 for the stack trace)');
  }
  return `${lines.join('\n')}\n`;
}

/** The `--json` form of an error. */
export function errorJson(error: unknown): { error: { code: string; message: string; input?: string } } {
  if (isUsageError(error)) return { error: { code: 'USAGE', message: (error as Error).message } };
  if (error instanceof CompressError) {
    return {
      error: {
        code: error.code,
        message: forCommandLine(error.message),
        ...(error.input === undefined ? {} : { input: error.input }),
      },
    };
  }
  return { error: { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) } };
}

/**
 * Reports an error the way every command does and ends the process with its exit code. Used for
 * errors that reach the command line, and for errors that escape every `await` (an unhandled
 * rejection, an exception in a callback): one message, never a raw trace or a silent exit.
 */
export function fail(error: unknown, options: { json: boolean; debug: boolean }): never {
  // Commander prints its own usage errors, with the help after them.
  if (!isUsageError(error)) process.stderr.write(errorMessage(error, options.debug));
  if (options.json) process.stdout.write(`${JSON.stringify(errorJson(error))}\n`);
  process.exit(exitCodeOf(error));
}

/** The exit-code table for `--help`. */
export function exitCodeHelp(): string {
  return [
    'Exit codes:',
    ...Object.values(table).map(([code, text]) => `  ${String(code).padEnd(4)} ${text}`),
    '',
    'Errors print one message; --debug (or COMPRESS_DEBUG=1) adds the stack trace.',
  ].join('\n');
}
