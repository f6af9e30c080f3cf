import { access, constants, mkdir } from 'node:fs/promises';
import { ioError } from '@compress/core';
import { checkWritablePlace } from '@compress/train';

/**
 * A directory that a command writes its outputs into (an exported model, a feature cache, an
 * evaluation report), created when missing and checked writable before any work; unlike
 * {@link RunDir.open} it gets no run layout.
 */
export async function openOutputDir(path: string): Promise<string> {
  await checkWritablePlace(path);
  try {
    await mkdir(path, { recursive: true });
    await access(path, constants.W_OK);
  } catch (error) {
    throw ioError(error, path, 'use output directory');
  }
  return path;
}
