// The free-space check before a cache run, and sizes in a human form.
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CompressError, formatBytes } from '@compress/core';

/** A size with its exact count, for sizes a user compares with a disk's: `1.50 GiB (1610612736 bytes)`. */
export function formatSize(bytes: number): string {
  return bytes < 1024 ? `${bytes} bytes` : `${formatBytes(bytes)} (${bytes} bytes)`;
}

/**
 * Throws IO naming both numbers when the file system that will hold `file` (its nearest existing
 * ancestor directory) has fewer free bytes than `needed`.
 */
export async function assertFreeSpace(file: string, needed: number, total = needed): Promise<void> {
  let dir = dirname(file);
  for (;;) {
    try {
      const fs = await statfs(dir);
      const free = Number(fs.bavail) * Number(fs.bsize);
      if (free < needed) {
        throw new CompressError(
          'IO',
          `${file} needs ${formatSize(needed)}${needed === total ? '' : ` more (of ${formatSize(total)})`}, but its file system has ${formatSize(free)} free; free some space or write elsewhere`,
          { input: file },
        );
      }
      return;
    } catch (error) {
      if (error instanceof CompressError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      const parent = dirname(dir);
      if ((code === 'ENOENT' || code === 'ENOTDIR') && parent !== dir) {
        dir = parent;
        continue;
      }
      // a file system that cannot tell its free space: leave it to the writes to fail
      return;
    }
  }
}
