import { access, appendFile, constants, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CompressError, ioError, writeFileAtomic } from '@compress/core';

/**
 * A run directory: `config.json` (resolved), `metrics.jsonl`, `checkpoints/` (one directory per
 * saved step, `latest.json` naming the newest complete one), `results/`.
 */
export class RunDir {
  private constructor(readonly path: string) {}

  /** Creates (or reopens) a run directory and checks that it is writable before any work. */
  static async open(path: string): Promise<RunDir> {
    try {
      await mkdir(join(path, 'checkpoints'), { recursive: true });
      await mkdir(join(path, 'results'), { recursive: true });
      await access(path, constants.W_OK);
    } catch (error) {
      throw ioError(error, path, 'use run directory');
    }
    return new RunDir(path);
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
