// What the commands share: the output flags, --json output, and the stop signal of long commands.

export interface Common {
  out: string;
  json?: boolean;
  quiet?: boolean;
}

/** SIGINT/SIGTERM: the first asks the running command to checkpoint and stop; the second exits. */
export function stopSignal(info: (m: string) => void): AbortSignal {
  const controller = new AbortController();
  const handler = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(signal === 'SIGINT' ? 130 : 143);
    info(`${signal}: saving a checkpoint after this step (again to quit at once)`);
    process.exitCode = signal === 'SIGINT' ? 130 : 143;
    controller.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return controller.signal;
}

export function emit(options: Common, value: unknown): void {
  if (options.json) process.stdout.write(`${JSON.stringify(value)}\n`);
}
