import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import { methods } from '../config.js';
import { addConfigOptions } from '../flags.js';
import { type ConfigFlags, resolveConfig } from '../options.js';
import { createReporter } from '../progress.js';
import { train } from '../train.js';
import { type Common, emit, stopSignal } from './common.js';

/** Registers `compress-ssl train` on the program. */
export function register(program: Command): void {
  addConfigOptions(
    program
      .command('train')
      .description('train a student with a CompRess variant or a baseline')
      .addOption(
        new Option('--method <method>', 'CompRess variant or baseline').choices(
          methods as unknown as string[],
        ),
      )
      .requiredOption('--out <dir>', 'run directory')
      .option('--resume', 'continue the run in --out from its latest checkpoint')
      .option('--json', 'print the result as one JSON object on stdout')
      .option('--quiet', 'no progress output'),
  ).action(async (flags: ConfigFlags & Common & { resume?: boolean }) => {
    const reporter = createReporter({ quiet: flags.quiet ?? false });
    const config = await resolveConfig(flags);
    const result = await train({
      config,
      out: resolve(flags.out),
      resume: flags.resume ?? false,
      reporter,
      signal: stopSignal(reporter.info),
    });
    reporter.info(
      `${result.stopped ? 'stopped' : 'trained'} ${config.method} for ${result.steps} steps (${result.imagesPerSecond.toFixed(0)} images/s); checkpoint ${result.checkpoint}`,
    );
    emit(flags, result);
  });
}
