import { join, resolve } from 'node:path';
import { CompressError } from '@compress/core';
import { exportOnnx, loadStudent, selectBackend } from '@compress/students';
import { type Command, Option } from 'commander';
import { openOutputDir } from '../output-dir.js';
import { createReporter } from '../progress.js';
import { checkpointOf } from './checkpoint-of.js';
import { type Common, emit } from './common.js';

/** Registers `compress-ssl export` on the program. */
export function register(program: Command): void {
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
}
