import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CompressError } from './errors.js';

/** Turns a Node I/O error into a CompressError that names the path and what went wrong. */
export function ioError(error: unknown, path: string, action: string): CompressError {
  const code = (error as NodeJS.ErrnoException)?.code;
  const why =
    code === 'ENOSPC'
      ? 'the disk is full'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EROFS'
          ? 'the file system is read-only'
          : code === 'ENOENT'
            ? 'no such file or directory'
            : code === 'ENOTDIR'
              ? 'a parent path is not a directory'
              : String((error as Error)?.message ?? error);
  return new CompressError(code === 'ENOENT' ? 'NOT_FOUND' : 'IO', `cannot ${action} ${path}: ${why}`, {
    input: path,
    cause: error,
  });
}

/**
 * Writes `data` to `path` atomically: into a temporary file beside it, flushed to disk, then
 * renamed over `path`. A crash or a full disk leaves the previous file intact.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string | readonly Uint8Array[],
): Promise<void> {
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw ioError(error, dir, 'create directory');
  }
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(tmp, 'w');
    const chunks = typeof data === 'string' || data instanceof Uint8Array ? [data] : data;
    for (const chunk of chunks) await handle.write(chunk as Uint8Array);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(tmp, path);
  } catch (error) {
    await handle?.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw ioError(error, path, 'write');
  }
}
