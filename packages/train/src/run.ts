import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CompressError, ioError } from '@compress/core';
import { RunDir } from './run-dir.js';

/** How the caller's users name the resume switch and the run directory, in messages. */
export interface RunNames {
  /** @default 'resume: true' */
  resume?: string;
  /** @default 'run directory' */
  runDir?: string;
}

/** A run directory opened for training and checked against the settings of the run it holds. */
export interface OpenedRun {
  dir: RunDir;
  /** The newest complete checkpoint, continued from when `resume` is set. */
  latest: { dir: string; step: number } | null;
  resume: boolean;
  /** What `config.json` and every checkpoint record (compared on resume). */
  settings: unknown;
  names: Required<RunNames>;
}

export interface OpenRunOptions {
  /** Continue from the directory's latest checkpoint (else a directory that holds a run is refused). */
  resume?: boolean;
  /** The run's settings as JSON: recorded in config.json and every checkpoint, compared on resume. */
  settings: unknown;
  names?: RunNames;
  /**
   * Settings (dotted paths) a resume may change: how the run computes, not what (e.g. the engine
   * or its threads; checkpoints are the same files for every engine). `ran`, where the trainer
   * records the engine that ran, always may.
   */
  mayChange?: readonly string[];
}

/**
 * Opens (creates) a run directory for training: refuses, before anything is written, one that
 * already holds a run when not resuming, and a resume whose settings differ from the run's. A
 * refused open leaves the file system as it found it.
 */
export async function openRun(path: string, options: OpenRunOptions): Promise<OpenedRun> {
  const names = { resume: 'resume: true', runDir: 'run directory', ...options.names };
  const dir = await RunDir.open(path);
  try {
    const latest = await dir.latestCheckpoint();
    if (options.resume) {
      await checkResume(dir, options.settings, latest, names, ['ran', ...(options.mayChange ?? [])]);
    } else if (latest) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `${path} already holds a run (checkpoint at step ${latest.step}); pass ${names.resume} to continue it or choose another ${names.runDir}`,
        { input: path },
      );
    }
    return { dir, latest, resume: options.resume ?? false, settings: options.settings, names };
  } catch (error) {
    await dir.discardIfUnused();
    throw error;
  }
}

/** Keys whose values differ between two settings objects (for resume). */
function differences(a: unknown, b: unknown, path = ''): string[] {
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && !Array.isArray(a)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) =>
      differences(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        path ? `${path}.${k}` : k,
      ),
    );
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path];
}

/** Refuses, before anything is written, a resume whose settings differ from the run's. */
async function checkResume(
  run: RunDir,
  settings: unknown,
  latest: { dir: string; step: number } | null,
  names: Required<RunNames>,
  mayChange: readonly string[],
) {
  // The checkpoint's own copy of the settings is what its state was made with; the run's
  // config.json is the fallback for checkpoints written before it was kept there.
  const fromCheckpoint = latest ? await readJsonIn(join(latest.dir, 'config.json')) : null;
  const saved = fromCheckpoint ?? (await run.readJson('config.json'));
  if (!saved) return;
  const changed = differences(saved, settings).filter(
    (k) => !mayChange.some((free) => k === free || k.startsWith(`${free}.`)),
  );
  if (changed.length > 0) {
    const where = fromCheckpoint ? `its checkpoint at step ${latest!.step}` : 'its config.json';
    throw new CompressError(
      'MISMATCH',
      `cannot resume ${run.path}: ${where} was made with other settings (${changed
        .map(
          (k) =>
            `${k}: ${JSON.stringify(valueAt(saved, k))} there, ${JSON.stringify(valueAt(settings, k))} now`,
        )
        .join('; ')}); resume with the same settings or train into another ${names.runDir}`,
      { input: run.path },
    );
  }
}

function valueAt(value: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], value);
}

async function readJsonIn(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw ioError(error, path, 'read');
  });
  if (text === null) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new CompressError('CORRUPT_INPUT', `${path}: not valid JSON (${(error as Error).message})`, {
      input: path,
      cause: error,
    });
  }
}
