#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CompressError } from '@compress/core';
import type { Protocol } from '@compress/eval';
import { exportOnnx, loadStudent, selectBackend } from '@compress/students';
import { cacheTeacherFeatures } from '@compress/teacher';
import { checkWritablePlace, RunDir } from '@compress/train';
import { Command, Option } from 'commander';
import { methods } from './config.js';
import { debugWanted, exitCodeHelp, exitCodes, fail } from './errors.js';
import { type EvalSource, evaluateSource } from './evaluate.js';
import { type ConfigFlags, resolveConfig } from './options.js';
import { openOutputDir } from './output-dir.js';
import { createReporter } from './progress.js';
import { reproduce, StoppedError, tableMarkdown } from './reproduce.js';
import { evalTransform, openSplits, openTeacher } from './resources.js';
import { train } from './train.js';

// Whatever escapes every await (an exception in a callback, a rejection nobody awaited) is still
// one message and a documented exit code, never a raw trace; so is a command whose awaited work
// never settles (Node would otherwise exit with code 13, printing nothing).
const wantsJson = process.argv.includes('--json');
const debug = debugWanted();
let finished = false;
process.on('uncaughtException', (error) => fail(error, { json: wantsJson, debug }));
process.on('unhandledRejection', (error) => fail(error, { json: wantsJson, debug }));
process.on('beforeExit', () => {
  if (!finished) {
    fail(new Error('the command stopped before it finished: an operation it awaited never completed'), {
      json: wantsJson,
      debug,
    });
  }
});

const version = (
  JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

interface Common {
  out: string;
  json?: boolean;
  quiet?: boolean;
}

/** SIGINT/SIGTERM: the first asks the running command to checkpoint and stop; the second exits. */
function stopSignal(info: (m: string) => void): AbortSignal {
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

function emit(options: Common, value: unknown): void {
  if (options.json) process.stdout.write(`${JSON.stringify(value)}\n`);
}

function configOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'config file (JSON or YAML); flags override it')
    .addOption(new Option('--preset <name>', 'preset').choices(['fashion-mnist', 'imagenet']))
    .addOption(new Option('--budget <budget>', 'run length').choices(['quick', 'full']))
    .option('--seed <n>', 'seed of everything random')
    .addOption(new Option('--dataset <name>').choices(['fashion-mnist', 'cifar10', 'image-folder']))
    .option('--data-root <dir>', 'dataset directory (image-folder: with train/ and val/)')
    .option('--workers <n>', 'decode/augment worker threads')
    .option('--train-subset <n>', 'train on a seeded subset of this many images')
    .option('--skip-corrupt', 'image-folder: leave out files that do not decode (checked before training)')
    .option(
      '--teacher <source>',
      '"builtin", an .onnx model, a feature cache, or a JS module exporting a Teacher',
    )
    .addOption(new Option('--teacher-layout <layout>').choices(['NCHW', 'NHWC']))
    .option('--teacher-normalize <norm>', 'imagenet | none | "mean,std" | "m1,…,mC,s1,…,sC"')
    .addOption(
      new Option('--teacher-channels <c>', 'channels the teacher takes (3: gray images repeated)').choices([
        '1',
        '3',
      ]),
    )
    .addOption(new Option('--teacher-providers <p>').choices(['auto', 'cpu', 'cuda']))
    .option('--teacher-threads <n>', 'onnxruntime intra-op threads of an ONNX teacher (0: one per core)')
    .option(
      '--teacher-fingerprint <id>',
      'a stable name of the teacher and its settings, for a module teacher without a fingerprint',
    )
    .option('--student <arch>', 'student architecture (alexnet, resnet18, resnet50, mobilenetv2, *-small)')
    .option('--width <w>', 'student width multiplier')
    .option('--epochs <n>')
    .option('--max-steps <n>', 'stop after this many steps')
    .option('--batch-size <n>')
    .option('--lr <lr>')
    .option('--queue-size <K>')
    .option('--temperature <T>');
}

const program = new Command()
  .name('compress-ssl')
  .description(
    'CompRess (NeurIPS 2020): compress a self-supervised teacher into a small student, and evaluate it.',
  )
  .version(version)
  .option('--debug', 'print stack traces with errors (also: COMPRESS_DEBUG=1)')
  .addHelpText('after', `\n${exitCodeHelp()}`)
  .showHelpAfterError()
  .exitOverride();

configOptions(
  program
    .command('train')
    .description('train a student with a CompRess variant or a baseline')
    .addOption(
      new Option('--method <method>', 'CompRess variant or baseline').choices(methods as unknown as string[]),
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

type CacheFlags = ConfigFlags &
  Common & { split: 'train' | 'test'; dtype: 'float32' | 'float16'; overwrite?: boolean };

configOptions(
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

configOptions(
  program
    .command('eval')
    .description('evaluate frozen features: k-NN, linear probe, cluster alignment, or all')
    .argument('<protocol>', 'knn | linear | cluster | all')
    .requiredOption('--out <dir>', 'where the report and pictures go')
    .option('--checkpoint <file>', 'a student checkpoint (or a training run directory)')
    .option('--raw-pixels', 'evaluate raw pixels')
    .option('--random-init', 'evaluate the untrained student')
    .option('--json', 'print the result as one JSON object on stdout')
    .option('--quiet', 'no progress output'),
).action(
  async (
    protocol: string,
    flags: ConfigFlags & Common & { checkpoint?: string; rawPixels?: boolean; randomInit?: boolean },
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

/** A checkpoint file, or a training run directory's latest checkpoint. */
async function checkpointOf(path: string): Promise<string> {
  const p = resolve(path);
  if (p.endsWith('.ckpt')) return p;
  const latest = await (await RunDir.openExisting(p)).latestCheckpoint();
  if (!latest) {
    throw new CompressError('NOT_FOUND', `${p}: neither a .ckpt file nor a run directory with checkpoints`, {
      input: p,
    });
  }
  return join(latest.dir, 'student.ckpt');
}

program
  .command('export')
  .description('export a trained student')
  .argument('<format>', 'onnx')
  .requiredOption('--checkpoint <file>', 'a student checkpoint (or a training run directory)')
  .requiredOption('--out <dir>', 'directory of the exported model')
  .addOption(
    new Option('--layout <layout>', 'input layout of the exported model')
      .choices(['NCHW', 'NHWC'])
      .default('NCHW'),
  )
  .addOption(
    new Option(
      '--normalize <where>',
      "the student's input normalisation: inside the model (it takes pixels in [0, 1]) or none (the bare network)",
    )
      .choices(['inside', 'none'])
      .default('inside'),
  )
  .option('--json', 'print the result as one JSON object on stdout')
  .action(
    async (
      format: string,
      flags: Common & { checkpoint: string; layout: 'NCHW' | 'NHWC'; normalize: 'inside' | 'none' },
    ) => {
      if (format !== 'onnx') {
        throw new CompressError('CONFIG', `export: the only format is onnx, found "${format}"`, {
          input: 'format',
        });
      }
      const reporter = createReporter();
      await selectBackend({ log: reporter.info });
      const student = await loadStudent(await checkpointOf(flags.checkpoint));
      const file = join(await openOutputDir(resolve(flags.out)), 'student.onnx');
      await exportOnnx(student, file, { layout: flags.layout, normalization: flags.normalize });
      student.dispose();
      const { name, featureDim, inputSize: s, channels: c, mean, std } = student.spec;
      const shape = flags.layout === 'NCHW' ? `[B,${c},${s},${s}]` : `[B,${s},${s},${c}]`;
      const input =
        flags.normalize === 'inside'
          ? `takes ${flags.layout} ${shape} pixels in [0,1]; normalisation inside (as a teacher: --teacher-normalize none)`
          : `takes ${flags.layout} ${shape} input normalised with mean ${mean.join(',')} std ${std.join(',')}: pass --teacher-normalize ${[...mean, ...std].join(',')} when using it as a teacher`;
      reporter.info(`exported ${name} (${featureDim}-d features) to ${file}: it ${input}`);
      emit(flags, {
        file,
        student: student.spec,
        input: {
          layout: flags.layout,
          shape,
          range: flags.normalize === 'inside' ? [0, 1] : null,
          normalization: flags.normalize,
        },
      });
    },
  );

configOptions(
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

try {
  await program.parseAsync(process.argv);
  finished = true;
} catch (error) {
  finished = true;
  // Commander has printed the help or the version (exit 0), or its usage error (exit 2) already.
  const { code, exitCode } = error as { code?: string; exitCode?: number };
  if (code?.startsWith('commander.') && exitCode === 0) process.exit(exitCodes.ok);
  fail(error, { json: wantsJson, debug });
}
