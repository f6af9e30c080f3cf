import {
  access,
  appendFile,
  constants,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  statfs,
} from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CompressError, ioError, writeFileAtomic } from '@compress/core';

/**
 * A run directory: `config.json` (resolved), `metrics.jsonl`, `checkpoints/` (one directory per
 * saved step, `latest.json` naming the newest complete one), `results/`.
 */
export class RunDir {
  private constructor(
    readonly path: string,
    /** The directories this open created (outermost first): what a refused run takes back. */
    private readonly created: string[] = [],
  ) {}

  /** Creates (or reopens) a run directory and checks that it is writable before any work. */
  static async open(path: string): Promise<RunDir> {
    await checkWritablePlace(path);
    const created: string[] = [];
    try {
      for (const dir of [path, join(path, 'checkpoints'), join(path, 'results')]) {
        const first = await mkdir(dir, { recursive: true });
        if (first) created.push(first);
      }
      await access(path, constants.W_OK);
    } catch (error) {
      throw ioError(error, path, 'use run directory');
    }
    return new RunDir(path, created);
  }

  /**
   * Opens a run directory that must exist, for reading (evaluation, export): nothing is created,
   * a missing directory is NOT_FOUND.
   */
  static async openExisting(path: string): Promise<RunDir> {
    try {
      await access(path, constants.R_OK);
    } catch (error) {
      throw new CompressError('NOT_FOUND', `${path}: no such run directory or checkpoint file`, {
        input: path,
        cause: error,
      });
    }
    return new RunDir(path);
  }

  /**
   * Takes back the directories this open created when the run wrote nothing of its own into them
   * (no checkpoint, no metrics): a refused command leaves the file system as it found it.
   */
  async discardIfUnused(): Promise<void> {
    if (this.created.length === 0) return;
    const used = await Promise.all(
      [join('checkpoints', 'latest.json'), 'metrics.jsonl'].map((f) =>
        access(this.file(f)).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (used.some(Boolean)) return;
    for (const dir of this.created) await rm(dir, { recursive: true, force: true }).catch(() => {});
  }

  file(...parts: string[]): string {
    return join(this.path, ...parts);
  }

  async writeJson(name: string, value: unknown): Promise<void> {
    await writeFileAtomic(this.file(name), `${JSON.stringify(value, null, 2)}\n`);
  }

  async readJson<T>(name: string): Promise<T | null> {
    try {
      return JSON.parse(await readFile(this.file(name), 'utf8')) as T;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CompressError('CORRUPT_INPUT', `${this.file(name)}: ${(error as Error).message}`, {
        input: this.file(name),
        cause: error,
      });
    }
  }

  /** Appends one JSON line to metrics.jsonl. */
  async metric(record: Record<string, unknown>): Promise<void> {
    const path = this.file('metrics.jsonl');
    try {
      await appendFile(path, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
    } catch (error) {
      throw ioError(error, path, 'append to');
    }
  }

  /** The newest complete checkpoint directory, or null. */
  async latestCheckpoint(): Promise<{ dir: string; step: number } | null> {
    const latest = await this.readJson<{ dir: string; step: number }>(join('checkpoints', 'latest.json'));
    if (!latest) return null;
    const dir = this.file('checkpoints', latest.dir);
    try {
      await access(dir);
    } catch {
      throw new CompressError(
        'CORRUPT_INPUT',
        `${this.file('checkpoints', 'latest.json')} names ${latest.dir}, which is missing`,
        { input: dir },
      );
    }
    return { dir, step: latest.step };
  }

  /**
   * Saves a checkpoint: `write(dir)` fills a fresh temporary directory; only when it returns is the
   * directory renamed into place and `latest.json` switched to it (atomically), then older ones
   * removed. A crash or a full disk leaves the previous checkpoint as the latest.
   */
  async saveCheckpoint(step: number, write: (dir: string) => Promise<void>): Promise<string> {
    const name = `step-${String(step).padStart(8, '0')}`;
    const tmp = this.file('checkpoints', `.${name}.tmp`);
    const final = this.file('checkpoints', name);
    await rm(tmp, { recursive: true, force: true });
    try {
      await mkdir(tmp, { recursive: true });
      await write(tmp);
      await rm(final, { recursive: true, force: true });
      await rename(tmp, final);
    } catch (error) {
      await rm(tmp, { recursive: true, force: true }).catch(() => {});
      if (error instanceof CompressError) throw error;
      throw ioError(error, final, 'write checkpoint');
    }
    await writeFileAtomic(this.file('checkpoints', 'latest.json'), JSON.stringify({ dir: name, step }));
    for (const entry of await readdir(this.file('checkpoints'))) {
      if (entry.startsWith('step-') && entry !== name) {
        await rm(this.file('checkpoints', entry), { recursive: true, force: true });
      }
    }
    return final;
  }
}

/** Kernel pseudo-file systems (statfs magic numbers): no run, cache or export belongs there. */
const pseudoFileSystems = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0xcafe4a11, 'bpf'],
]);

/**
 * Refuses at once an output path on a kernel pseudo-file system (/proc, /sys, …): creating
 * directories there does not fail cleanly (Node's recursive mkdir can spin on it for minutes).
 * Looks at the nearest ancestor that exists.
 */
export async function checkWritablePlace(path: string): Promise<void> {
  let dir = resolve(path);
  for (;;) {
    try {
      const fs = await statfs(dir);
      const kind = pseudoFileSystems.get(Number(fs.type));
      if (kind) {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `${path}: ${dir} is on the kernel's ${kind} file system, where no files can be written; choose a directory on a disk`,
          { input: path },
        );
      }
      return;
    } catch (error) {
      if (error instanceof CompressError) throw error;
      const parent = dirname(dir);
      if (parent === dir) return;
      dir = parent;
    }
  }
}
