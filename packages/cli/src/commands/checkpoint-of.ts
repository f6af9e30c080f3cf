import { join, resolve } from 'node:path';
import { CompressError } from '@compress/core';
import { RunDir } from '@compress/train';

/** A checkpoint file, or a training run directory's latest checkpoint. */
export async function checkpointOf(path: string): Promise<string> {
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
