#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import * as cacheTeacher from './commands/cache-teacher.js';
import * as evaluate from './commands/eval.js';
import * as exportModel from './commands/export.js';
import * as reproduce from './commands/reproduce.js';
import * as train from './commands/train.js';
import { debugWanted, exitCodeHelp, exitCodes, fail } from './errors.js';

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

for (const command of [train, cacheTeacher, evaluate, exportModel, reproduce]) command.register(program);

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
