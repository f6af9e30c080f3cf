import { join, resolve } from 'node:path';
import { CompressError } from '@compress/core';
import { cacheTeacherFeatures } from '@compress/teacher';
import { type Command, Option } from 'commander';
import { addConfigOptions } from '../flags.js';
import { type ConfigFlags, resolveConfig } from '../options.js';
import { openOutputDir } from '../output-dir.js';
import { createReporter } from '../progress.js';
import { evalTransform, openSplits, openTeacher } from '../resources.js';
import { type Common, emit } from './common.js';

/** Registers `compress-ssl cache-teacher` on the program. */
export function register(program: Command): void {
  type CacheFlags = ConfigFlags &
    Common & { split: 'train' | 'test'; dtype: 'float32' | 'float16'; overwrite?: boolean };

  addConfigOptions(
    program
      .command('cache-teacher')
      .description("write the teacher's features of a split to a feature cache (resumes when killed)")
      .requiredOption('--out <dir>', 'directory of the cache file')
      .addOption(new Option('--split <split>').choices(['train', 'test']).default('train'))
      .addOption(new Option('--dtype <dtype>').choices(['float32', 'float16']).default('float32'))
      .option('--overwrite', 'replace a cache file that holds something else or is damaged')
      .option('--json', 'print the result as one JSON object on stdout')
      .option('--quiet', 'no progress output'),
  ).action(async (flags: CacheFlags) => {
    if (flags.trainSubset !== undefined) {
      // Training looks cached rows up by dataset index, so a cache holds every image of its split.
      throw new CompressError(
        'INVALID_ARGUMENT',
        `cache-teacher --train-subset ${flags.trainSubset}: a feature cache holds every image of its split (training with --train-subset looks its rows up by dataset index); leave the flag out`,
        { input: 'train-subset' },
      );
    }
    const reporter = createReporter({ quiet: flags.quiet ?? false });
    const config = await resolveConfig(flags);
    const splits = await openSplits(config);
    const out = await openOutputDir(resolve(flags.out));
    const dataset = flags.split === 'train' ? splits.train : splits.test;
    const teacher = await openTeacher(config, splits.train, reporter.info);
    const file = join(out, `teacher-${flags.split}.fcache`);
    try {
      const view = evalTransform(config, dataset);
      const summary = await cacheTeacherFeatures(teacher, dataset, file, {
        dtype: flags.dtype,
        overwrite: flags.overwrite ?? false,
        ...(config.teacher.fingerprint ? { teacherFingerprint: config.teacher.fingerprint } : {}),
        ...(view ? { transform: view.transform, transformId: view.id } : {}),
        onProgress: (e) => reporter.progress({ ...e, phase: 'cache-teacher' }),
      });
      reporter.done();
      reporter.info(`teacher features of ${dataset.name}: ${file}`);
      emit(flags, { ...summary, file });
    } finally {
      await teacher.dispose();
    }
  });
}
