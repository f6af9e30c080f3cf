// Listing an ImageFolder's classes and files as torchvision does, and checking that every file decodes (skipCorrupt).
import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CompressError, ioError, type ProgressListener } from '@compress/core';
import { decode, readImage } from './image-decode.js';
import type { ImageFolderListing, SkippedFile } from './image-folder.js';

/** Python's `sorted` order for strings (code points; JavaScript compares UTF-16 units). */
export function comparePython(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    x = x >= 0xe000 ? x - 0x800 : x >= 0xd800 ? x + 0x2000 : x;
    y = y >= 0xe000 ? y - 0x800 : y >= 0xd800 ? y + 0x2000 : y;
    return x - y;
  }
  return a.length - b.length;
}

async function isDirectory(
  path: string,
  entry: { isDirectory(): boolean; isSymbolicLink(): boolean },
): Promise<boolean> {
  if (entry.isDirectory()) return true;
  if (!entry.isSymbolicLink()) return false;
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false; // a broken link counts as a file, as in os.walk
  }
}

async function listDir(path: string): Promise<import('node:fs').Dirent[]> {
  try {
    return await readdir(path, { withFileTypes: true });
  } catch (error) {
    throw ioError(error, path, 'list directory');
  }
}

/** torchvision's `find_classes` + `make_dataset`. */
export async function scan(root: string, extensions: string[]): Promise<ImageFolderListing> {
  let rootStat: import('node:fs').Stats;
  try {
    rootStat = await stat(root);
  } catch (error) {
    throw ioError(error, root, 'open image folder');
  }
  if (!rootStat.isDirectory()) {
    throw new CompressError('INVALID_ARGUMENT', `imageFolder: ${root} is not a directory`, { input: root });
  }
  const classes: string[] = [];
  for (const entry of await listDir(root)) {
    if (await isDirectory(join(root, entry.name), entry)) classes.push(entry.name);
  }
  classes.sort(comparePython);
  if (classes.length === 0) {
    throw new CompressError(
      'NOT_FOUND',
      `imageFolder: no class folders in ${root}; expected one sub-folder per class (${root}/<class>/<image>), as torchvision's ImageFolder`,
      { input: root },
    );
  }
  const files: string[] = [];
  const labels: number[] = [];
  const empty: string[] = [];
  for (const [label, cls] of classes.entries()) {
    // os.walk(followlinks=True), sorted by directory path, files sorted within a directory.
    const dirs: { rel: string; names: string[] }[] = [];
    const seen = new Set<string>();
    const walk = async (rel: string): Promise<void> => {
      const abs = join(root, rel);
      const real = await realpath(abs).catch(() => abs);
      if (seen.has(real)) return; // a link cycle
      seen.add(real);
      const names: string[] = [];
      const subdirs: string[] = [];
      for (const entry of await listDir(abs)) {
        if (await isDirectory(join(abs, entry.name), entry)) subdirs.push(`${rel}/${entry.name}`);
        else names.push(entry.name);
      }
      dirs.push({ rel, names });
      for (const d of subdirs) await walk(d);
    };
    await walk(cls);
    dirs.sort((a, b) => comparePython(join(root, a.rel), join(root, b.rel)));
    const before = files.length;
    for (const { rel, names } of dirs) {
      names.sort(comparePython);
      for (const name of names) {
        const lower = name.toLowerCase();
        if (extensions.some((e) => lower.endsWith(e))) {
          files.push(`${rel}/${name}`);
          labels.push(label);
        }
      }
    }
    if (files.length === before) empty.push(cls);
  }
  if (empty.length > 0) {
    throw new CompressError(
      'NOT_FOUND',
      `imageFolder: found no valid file for the classes ${empty.join(', ')} in ${root}. Supported extensions are: ${extensions.join(', ')}`,
      { input: root },
    );
  }
  return { classes, files, labels };
}

/** Decodes every file once; returns the listing without the ones that fail. */
export async function verify(
  root: string,
  listing: ImageFolderListing,
  skipped: SkippedFile[],
  onProgress?: ProgressListener,
): Promise<ImageFolderListing> {
  const ok = new Uint8Array(listing.files.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    for (let i = next++; i < listing.files.length; i = next++) {
      const path = join(root, listing.files[i]!);
      try {
        await decode(await readImage(path), path);
        ok[i] = 1;
      } catch (error) {
        skipped[i] = { path, reason: (error as Error).message };
      }
      done++;
      if (onProgress && (done % 256 === 0 || done === listing.files.length)) {
        onProgress({ phase: 'verify-images', done, total: listing.files.length, unit: 'images' });
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  const out: ImageFolderListing = { classes: listing.classes, files: [], labels: [] };
  for (let i = 0; i < ok.length; i++) {
    if (ok[i]) {
      out.files.push(listing.files[i]!);
      out.labels.push(listing.labels[i]!);
    }
  }
  // Keep `skipped` dense and in dataset order.
  const dense = skipped.filter(Boolean);
  skipped.length = 0;
  skipped.push(...dense);
  if (out.files.length === 0) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `imageFolder: none of the ${listing.files.length} image files in ${root} could be decoded (first: ${dense[0]?.reason ?? 'unknown'})`,
      { input: root },
    );
  }
  return out;
}
