import { join, resolve } from 'node:path';
import { CompressError } from '@compress/core';
import {
  cacheTeacherFeatures,
  featureShardFile,
  formatSize,
  inspectFeatureShard,
  mergeFeatureCaches,
  planFeatureCache,
} from '@compress/teacher';
import { type Command, Option } from 'commander';
import { addConfigOptions } from '../flags.js';
import { type ConfigFlags, resolveConfig } from '../options.js';
import { openOutputDir } from '../output-dir.js';
import { createReporter, type Reporter } from '../progress.js';
import { evalTransform, openSplits, openTeacher } from '../resources.js';
import { cacheFileName, listShardFiles, type Split, shardFileName } from '../shard-files.js';
import { type Common, emit } from './common.js';

type CacheFlags = ConfigFlags &
  Common & {
    split: Split;
    dtype: 'float32' | 'float16';
    overwrite?: boolean;
    shards?: string;
    shard?: string;
  };

/** The environment variable through which a Kubernetes Indexed Job gives each pod its index. */
export const JOB_INDEX_VARIABLE = 'JOB_COMPLETION_INDEX';

/** Registers `compress-ssl cache-teacher` (and `cache-teacher merge`) on the program. */
export function register(program: Command): void {
  addConfigOptions(
    program
      .command('cache-teacher')
      .description(
        "write the teacher's features of a split to a feature cache (resumes when killed); with --shards, one shard of it; `cache-teacher merge` joins a finished shard set into the one cache file",
      )
      .argument('[merge]', 'merge the shard set in --out into teacher-<split>.fcache')
      .requiredOption('--out <dir>', 'directory of the cache file (or of the shard files)')
      .addOption(new Option('--split <split>').choices(['train', 'test']).default('train'))
      .addOption(new Option('--dtype <dtype>').choices(['float32', 'float16']).default('float32'))
      .option(
        '--shards <n>',
        `write one shard of n: the contiguous dataset indices [⌊i·L/n⌋, ⌊(i+1)·L/n⌋) into teacher-<split>.shard-<i>-of-<n>.fcache; i from --shard, else from $${JOB_INDEX_VARIABLE} (Kubernetes Indexed Jobs)`,
      )
      .option('--shard <i>', 'the shard to write (0 ≤ i < n), or i/n in place of --shards')
      .option('--overwrite', 'replace a cache file that holds something else or is damaged')
      .option('--json', 'print the result as one JSON object on stdout')
      .option('--quiet', 'no progress output'),
  ).action(async (action: string | undefined, flags: CacheFlags) => {
    if (action !== undefined && action !== 'merge') {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `cache-teacher: unknown action "${action}"; the only action is merge (cache-teacher merge --out DIR)`,
        { input: action },
      );
    }
    const reporter = createReporter({ quiet: flags.quiet ?? false });
    if (action === 'merge') return merge(flags, reporter);
    if (flags.trainSubset !== undefined) {
      // Training looks cached rows up by dataset index, so a cache holds every image of its split.
      throw new CompressError(
        'INVALID_ARGUMENT',
        `cache-teacher --train-subset ${flags.trainSubset}: a feature cache holds every image of its split (training with --train-subset looks its rows up by dataset index); leave the flag out`,
        { input: 'train-subset' },
      );
    }
    const shard = shardOf(flags);
    const config = await resolveConfig(flags);
    const splits = await openSplits(config);
    const out = await openOutputDir(resolve(flags.out));
    const dataset = flags.split === 'train' ? splits.train : splits.test;
    const teacher = await openTeacher(config, splits.train, reporter.info);
    const whole = join(out, cacheFileName(flags.split));
    const file = shard ? featureShardFile(whole, shard) : whole;
    try {
      const view = evalTransform(config, dataset);
      const options = {
        dtype: flags.dtype,
        overwrite: flags.overwrite ?? false,
        ...(config.teacher.fingerprint ? { teacherFingerprint: config.teacher.fingerprint } : {}),
        ...(view ? { transform: view.transform, transformId: view.id } : {}),
        ...(shard ? { shard } : {}),
      };
      const plan = planFeatureCache(teacher, dataset, file, options);
      const what = plan.shard
        ? `shard ${plan.shard.index} of ${plan.shard.count} (dataset indices ${plan.shard.start}…${plan.shard.end - 1})`
        : 'all images';
      reporter.info(
        `${file}: ${what}, ${plan.rows} rows × ${plan.dim} ${plan.dtype} = ${formatSize(plan.bytes)} with header and checksums`,
      );
      const phase = plan.shard
        ? `cache-teacher shard ${plan.shard.index} of ${plan.shard.count}`
        : 'cache-teacher';
      // the free space is checked by the writer, before the teacher sees an image
      const summary = await cacheTeacherFeatures(teacher, dataset, file, {
        ...options,
        onProgress: (e) => reporter.progress({ ...e, phase }),
      });
      reporter.done();
      const part = plan.shard ? `, shard ${plan.shard.index} of ${plan.shard.count}` : '';
      reporter.info(`teacher features of ${dataset.name}${part}: ${file}`);
      emit(flags, { ...summary, file });
    } finally {
      await teacher.dispose();
    }
  });
}

/** The shard to write: from --shard i/n, --shards n with --shard i or $JOB_COMPLETION_INDEX; none without them. */
export function shardOf(
  flags: { shards?: string; shard?: string },
  env: NodeJS.ProcessEnv = process.env,
): { index: number; count: number } | undefined {
  const int = (value: string, what: string, flag: string) => {
    if (!/^\d+$/.test(value.trim())) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `${flag}: ${what} must be a whole number, found "${value}"`,
        {
          input: flag,
        },
      );
    }
    return Number(value);
  };
  let count = flags.shards === undefined ? undefined : int(flags.shards, 'the shard count', '--shards');
  let index: number | undefined;
  if (flags.shard !== undefined) {
    const [i, n, ...rest] = flags.shard.split('/');
    if (rest.length > 0) {
      throw new CompressError('INVALID_ARGUMENT', `--shard: expected i or i/n, found "${flags.shard}"`, {
        input: '--shard',
      });
    }
    index = int(i!, 'the shard index', '--shard');
    if (n !== undefined) {
      const of = int(n, 'the shard count', '--shard');
      if (count !== undefined && count !== of) {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `--shard ${flags.shard} says ${of} shards, --shards says ${count}; give the count once`,
          { input: '--shard' },
        );
      }
      count = of;
    }
    if (count === undefined) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `--shard ${flags.shard}: say how many shards there are (--shards n, or --shard ${flags.shard}/n)`,
        { input: '--shard' },
      );
    }
  } else if (count !== undefined) {
    const fromEnv = env[JOB_INDEX_VARIABLE];
    if (fromEnv === undefined || fromEnv === '') {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `--shards ${count}: which shard? Pass --shard i (0 ≤ i < ${count}), or run it as a Kubernetes Indexed Job, which sets $${JOB_INDEX_VARIABLE}`,
        { input: '--shard' },
      );
    }
    index = int(fromEnv, 'the shard index', `$${JOB_INDEX_VARIABLE}`);
  }
  if (count === undefined || index === undefined) return undefined;
  if (count < 1 || index >= count) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `shard ${index} of ${count}: expected ${count < 1 ? 'at least 1 shard' : `a shard index in 0…${count - 1}`}`,
      { input: '--shard' },
    );
  }
  return { index, count };
}

/** `cache-teacher merge`: checks the shard set in --out, reports which shards are done, joins them. */
async function merge(flags: CacheFlags, reporter: Reporter): Promise<void> {
  if (flags.shards !== undefined || flags.shard !== undefined) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      'cache-teacher merge joins every shard in --out; leave out --shards and --shard',
      { input: '--shards' },
    );
  }
  const dir = resolve(flags.out);
  const whole = cacheFileName(flags.split);
  const files = await listShardFiles(dir, flags.split, 'cache-teacher merge');
  // Which shards are done, before the checks say what is wrong with the set.
  for (const file of files) {
    try {
      const s = await inspectFeatureShard(file);
      reporter.info(
        `  shard ${s.index} of ${s.count} (dataset indices ${s.start}…${s.end - 1}): ${s.done ? 'done' : `unfinished, ${s.doneRows} of ${s.rows} rows`}  ${file}`,
      );
    } catch (error) {
      reporter.info(`  ${file}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const out = join(dir, whole);
  const summary = await mergeFeatureCaches(files, out, {
    overwrite: flags.overwrite ?? false,
    expectedFile: (s) => shardFileName(flags.split, s),
    onProgress: (e) => reporter.progress({ ...e, phase: 'cache-teacher merge' }),
  });
  reporter.done();
  reporter.info(
    `merged ${summary.shards.length} shards into ${out}: ${summary.rows} rows × ${summary.dim} ${summary.dtype}, ${formatSize(summary.bytes)}`,
  );
  emit(flags, {
    file: out,
    rows: summary.rows,
    dim: summary.dim,
    dtype: summary.dtype,
    bytes: summary.bytes,
    shards: summary.shards.map((s) => ({
      file: s.file,
      index: s.index,
      count: s.count,
      start: s.start,
      end: s.end,
    })),
  });
}
