import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CompressError } from '@compress/core';
import type { Protocol } from '@compress/eval';
import { checkWritablePlace } from '@compress/train';
import type { Command } from 'commander';
import { type EvalSource, evaluateKnnShards, evaluateSource } from '../evaluate.js';
import { addConfigOptions } from '../flags.js';
import { type ConfigFlags, resolveConfig } from '../options.js';
import { createReporter } from '../progress.js';
import { openSplits, openTeacher } from '../resources.js';
import { checkpointOf } from './checkpoint-of.js';
import { type Common, emit } from './common.js';

/** Registers `compress-ssl eval` on the program. */
export function register(program: Command): void {
  addConfigOptions(
    program
      .command('eval')
      .description('evaluate frozen features: k-NN, linear probe, cluster alignment, or all')
      .argument('<protocol>', 'knn | linear | cluster | all')
      .requiredOption('--out <dir>', 'where the report and pictures go')
      .option('--checkpoint <file>', 'a student checkpoint (or a training run directory)')
      .option('--raw-pixels', 'evaluate raw pixels')
      .option('--random-init', 'evaluate the untrained student')
      .option(
        '--base-shards <dir>',
        "k-NN only: the train split's features as a finished shard set in <dir> (teacher-train.shard-<i>-of-<n>.fcache from cache-teacher --shards), searched shard by shard; --teacher embeds the test split",
      )
      .option('--json', 'print the result as one JSON object on stdout')
      .option('--quiet', 'no progress output'),
  ).action(
    async (
      protocol: string,
      flags: ConfigFlags &
        Common & { checkpoint?: string; rawPixels?: boolean; randomInit?: boolean; baseShards?: string },
    ) => {
      const protocols: Protocol[] | undefined =
        protocol === 'all'
          ? undefined
          : (['knn', 'linear', 'cluster'] as const).includes(protocol as Protocol)
            ? [protocol as Protocol]
            : [];
      if (protocols && protocols.length === 0) {
        throw new CompressError(
          'CONFIG',
          `eval: protocol must be knn, linear, cluster or all, found "${protocol}"`,
          {
            input: 'protocol',
          },
        );
      }
      const chosen = [flags.checkpoint, flags.rawPixels, flags.randomInit, flags.teacher].filter(
        Boolean,
      ).length;
      if (chosen !== 1) {
        throw new CompressError(
          'CONFIG',
          `eval: name exactly one thing to evaluate: --checkpoint <file|run dir>, --teacher <source>, --raw-pixels or --random-init (found ${chosen})`,
          { input: 'eval' },
        );
      }
      if (flags.baseShards !== undefined && (protocol !== 'knn' || !flags.teacher)) {
        throw new CompressError(
          'CONFIG',
          `eval --base-shards: k-NN of a teacher only (eval knn --teacher <source> --base-shards <dir>), found eval ${protocol}${flags.teacher ? '' : ' without --teacher'}`,
          { input: 'base-shards' },
        );
      }
      const reporter = createReporter({ quiet: flags.quiet ?? false });
      const config = await resolveConfig(flags);
      const checkpoint = flags.checkpoint ? await checkpointOf(flags.checkpoint) : undefined;
      await checkWritablePlace(resolve(flags.out));
      const splits = await openSplits(config);
      let source: EvalSource;
      let name: string;
      if (flags.checkpoint) {
        source = { kind: 'student', checkpoint: checkpoint! };
        name = 'student';
      } else if (flags.rawPixels) {
        source = { kind: 'raw-pixels' };
        name = 'raw-pixels';
      } else if (flags.randomInit) {
        source = { kind: 'random-init' };
        name = 'random-init';
      } else {
        source = { kind: 'teacher', teacher: await openTeacher(config, splits.train, reporter.info) };
        name = 'teacher';
      }
      try {
        if (flags.baseShards !== undefined && source.kind === 'teacher') {
          const report = await evaluateKnnShards({
            config,
            splits,
            teacher: source.teacher,
            shardDir: resolve(flags.baseShards),
            name,
            outDir: resolve(flags.out),
            reporter,
          });
          reporter.info(await readFile(join(resolve(flags.out), 'report.md'), 'utf8'));
          emit(flags, { name, summary: report.summary, seconds: report.seconds, files: report.files });
          return;
        }
        const report = await evaluateSource({
          config,
          splits,
          source,
          name,
          outDir: resolve(flags.out),
          reporter,
          ...(protocols ? { protocols } : {}),
        });
        reporter.info(await readFile(join(resolve(flags.out), 'report.md'), 'utf8'));
        emit(flags, { name, summary: report.summary, seconds: report.seconds, files: report.files });
      } finally {
        if (source.kind === 'teacher') await source.teacher.dispose();
      }
    },
  );
}
