import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CompressError, ioError } from '@compress/core';
import { featureShardFile } from '@compress/teacher';

export type Split = 'train' | 'test';

/** The cache file of a split in an output directory. */
export function cacheFileName(split: Split): string {
  return `teacher-${split}.fcache`;
}

/** The file a shard of a split's cache has in its directory: `teacher-<split>.shard-<i>-of-<n>.fcache`. */
export function shardFileName(split: Split, shard: { index: number; count: number }): string {
  return featureShardFile(cacheFileName(split), shard);
}

/**
 * The shard files of a split's cache in `dir` (every `teacher-<split>.shard-<i>-of-<n>.fcache`,
 * whatever i and n: the checks of the set say what does not belong). NOT_FOUND when there is none.
 */
export async function listShardFiles(dir: string, split: Split, what: string): Promise<string[]> {
  const stem = cacheFileName(split).slice(0, -'.fcache'.length);
  const pattern = new RegExp(`^${stem.replace(/[-.]/g, '\\$&')}\\.shard-\\d+-of-\\d+\\.fcache$`);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => pattern.test(n)).sort();
  } catch (error) {
    throw ioError(error, dir, 'list the shard directory');
  }
  if (names.length === 0) {
    throw new CompressError(
      'NOT_FOUND',
      `${what}: ${dir} holds no shard of ${cacheFileName(split)} (files ${stem}.shard-<i>-of-<n>.fcache, written by cache-teacher --shards n)`,
      { input: dir },
    );
  }
  return names.map((n) => join(dir, n));
}
