import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { addConfigOptions } from '../flags.js';
import { type ConfigFlags, resolveConfig } from '../options.js';
import { createReporter } from '../progress.js';
import { reproduce, StoppedError, tableMarkdown } from '../reproduce.js';
import { type Common, emit, stopSignal } from './common.js';

/** Registers `compress-ssl reproduce` on the program. */
export function register(program: Command): void {
  addConfigOptions(
    program
      .command('reproduce')
      .description(
        "reproduce the paper's Table 1 on a preset: raw pixels, teacher, baselines and the three variants",
      )
      .requiredOption(
        '--out <dir>',
        'run directory (rerun the same command to continue a stopped reproduction)',
      )
      .option('--ablations', 'also k-NN accuracy against the temperature and the queue size')
      .option('--json', 'print the result as one JSON object on stdout')
      .option('--quiet', 'no progress output'),
  ).action(async (flags: ConfigFlags & Common & { ablations?: boolean }) => {
    const reporter = createReporter({ quiet: flags.quiet ?? false });
    const config = await resolveConfig(flags);
    try {
      const result = await reproduce({
        config,
        out: resolve(flags.out),
        ablations: flags.ablations ?? false,
        reporter,
        signal: stopSignal(reporter.info),
      });
      process.stderr.write(`\n${tableMarkdown(result, config)}\n`);
      reporter.info(`results in ${join(resolve(flags.out), 'results')}`);
      emit(flags, result);
    } catch (error) {
      if (error instanceof StoppedError) {
        reporter.info(error.message);
        return;
      }
      throw error;
    }
  });
}
