import type { ProgressEvent } from '@compress/core';
import cliProgress from 'cli-progress';

/** Where a command writes its human-readable output. */
export interface Reporter {
  /** A line of information (stderr, so that `--json` keeps stdout clean). */
  info(message: string): void;
  /** Progress of a long phase: a bar with rate and ETA on a terminal, plain lines elsewhere. */
  progress(event: ProgressEvent): void;
  /** Ends the current bar. */
  done(): void;
}

function fmtMetrics(metrics?: Record<string, number>): string {
  if (!metrics) return '';
  return Object.entries(metrics)
    .map(([k, v]) => `${k} ${Math.abs(v) >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toPrecision(4)}`)
    .join('  ');
}

/** A terminal reporter: cli-progress bars on a TTY, one line per `every` seconds otherwise. */
export function createReporter(options: { quiet?: boolean; stream?: NodeJS.WriteStream } = {}): Reporter {
  const stream = options.stream ?? process.stderr;
  const tty = Boolean(stream.isTTY) && !process.env.CI;
  let bar: cliProgress.SingleBar | null = null;
  let phase = '';
  let lastLine = 0;
  let started = 0;
  // what was done before this process started (a resumed cache): not counted in the rate
  let startDone = 0;
  return {
    info(message) {
      if (options.quiet) return;
      if (bar) {
        bar.stop();
        bar = null;
        phase = '';
      }
      stream.write(`${message}\n`);
    },
    progress(event) {
      if (options.quiet) return;
      const total = event.total ?? 0;
      if (tty) {
        if (event.phase !== phase || !bar) {
          bar?.stop();
          phase = event.phase;
          bar = new cliProgress.SingleBar(
            {
              stream,
              format: `${event.phase.padEnd(16)} {bar} {percentage}% | {value}/{total} ${event.unit ?? ''} | {rate}/s | ETA {eta_formatted} | {metrics}`,
              barsize: 24,
              hideCursor: true,
              etaBuffer: 50,
            },
            cliProgress.Presets.shades_classic,
          );
          started = performance.now();
          startDone = event.done;
          bar.start(total, event.done, { metrics: '', rate: '0' });
        }
        const seconds = (performance.now() - started) / 1000;
        bar.setTotal(total);
        bar.update(event.done, {
          metrics: fmtMetrics(event.metrics),
          rate: seconds > 0 ? ((event.done - startDone) / seconds).toFixed(1) : '0',
        });
        if (total && event.done >= total) {
          bar.stop();
          bar = null;
          phase = '';
        }
        return;
      }
      const now = performance.now();
      if (event.phase !== phase) {
        phase = event.phase;
        started = now;
        startDone = event.done;
        lastLine = 0;
      }
      const finished = total > 0 && event.done >= total;
      if (!finished && now - lastLine < 5000) return;
      lastLine = now;
      const seconds = (now - started) / 1000;
      const rate = seconds > 0 ? (event.done - startDone) / seconds : 0;
      const eta = total && rate > 0 ? ` eta ${Math.round((total - event.done) / rate)}s` : '';
      stream.write(
        `[${event.phase}] ${event.done}${total ? `/${total}` : ''} ${event.unit ?? ''} ${rate.toFixed(1)}/s${eta} ${fmtMetrics(event.metrics)}\n`,
      );
    },
    done() {
      bar?.stop();
      bar = null;
      phase = '';
    },
  };
}
