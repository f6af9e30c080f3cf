import { access, open } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CompressError, type Dataset, isContainer, type Teacher } from '@compress/core';
import {
  centerCrop,
  checkSplitClasses,
  cifar10,
  compose,
  fashionMnist,
  horizontalFlip,
  imageFolder,
  randomResizedCrop,
  resize,
  type Transform,
} from '@compress/data';
import { loadPretrained } from '@compress/students';
import { CachedTeacher, checkedTeacher, createFashionMnistTeacher, OnnxTeacher } from '@compress/teacher';
import type { Config } from './config.js';

export { subsetDataset, subsetIndices } from '@compress/train';

export interface Splits {
  train: Dataset;
  test: Dataset;
  /** `[H, W, C]` of the images after the evaluation transform. */
  shape: [number, number, number];
  classes: readonly string[];
}

/** Opens the train and test splits of the configured dataset. */
export async function openSplits(config: Config): Promise<Splits> {
  const { dataset, root } = config.data;
  let train: Dataset;
  let test: Dataset;
  switch (dataset) {
    case 'fashion-mnist':
      train = await fashionMnist({ split: 'train', ...(root ? { root } : {}) });
      test = await fashionMnist({ split: 'test', ...(root ? { root } : {}) });
      break;
    case 'cifar10':
      if (!root)
        throw new CompressError(
          'CONFIG',
          'data.root: the cifar10 dataset needs its directory (--data-root)',
          { input: 'data.root' },
        );
      train = await cifar10({ split: 'train', root });
      test = await cifar10({ split: 'test', root });
      break;
    case 'image-folder':
      if (!root) {
        throw new CompressError(
          'CONFIG',
          'data.root: the image-folder dataset needs a directory with train/ and val/ sub-folders of class folders (--data-root)',
          { input: 'data.root' },
        );
      }
      {
        const options = { skipCorrupt: config.data.skipCorrupt ?? false };
        train = await imageFolder(join(root, 'train'), options);
        test = await imageFolder(join(root, 'val'), options);
      }
      break;
  }
  // Labels are matched by class index: the held-out split must name the same classes in the same
  // order, and accuracy means something only with two classes or more.
  checkSplitClasses(train, [test]);
  const size = config.augment.size;
  const channels = train.imageShape?.[2] ?? 3;
  return { train, test, shape: [size, size, channels], classes: train.classes };
}

/** The paper's training augmentation: RandomResizedCrop + horizontal flip. */
export function trainTransform(config: Config): Transform {
  const { size, scale, ratio, flip } = config.augment;
  const crop = randomResizedCrop(size, { scale, ratio });
  return flip ? compose([crop, horizontalFlip(0.5)]) : crop;
}

/** The evaluation transform and its name in feature-cache headers. */
export interface EvalTransform {
  transform: Transform;
  /** `resize-<side>-center-crop-<size>`: what a cache made with it records. */
  id: string;
}

/**
 * The evaluation transform: resize (size / 0.875) + centre crop, as torchvision evaluations do;
 * none when the images already have the training size (28 px Fashion-MNIST).
 */
export function evalTransform(config: Config, dataset: Dataset): EvalTransform | null {
  const size = config.augment.size;
  const shape = dataset.imageShape;
  if (shape && shape[0] === size && shape[1] === size) return null;
  const side = Math.round(size / 0.875);
  return { transform: compose([resize(side), centerCrop(size)]), id: `resize-${side}-center-crop-${size}` };
}

async function isFeatureCache(path: string): Promise<boolean> {
  const handle = await open(path, 'r').catch((error) => {
    throw new CompressError('NOT_FOUND', `teacher ${path} cannot be opened: ${(error as Error).message}`, {
      input: path,
      cause: error,
    });
  });
  try {
    // a compress container of kind compress-feature-cache, or the "CMPFEATS" layout of versions 1 and 2
    const head = Buffer.alloc(64);
    const { bytesRead } = await handle.read(head, 0, 64, 0);
    if (head.toString('latin1', 0, 8) === 'CMPFEATS') return true;
    if (bytesRead < 64 || !isContainer(head)) return false;
    const json = Buffer.alloc(Math.min(head.readUInt32LE(16), 2 ** 20));
    await handle.read(json, 0, json.length, 64);
    try {
      return (JSON.parse(json.toString('utf8')) as { kind?: unknown }).kind === 'compress-feature-cache';
    } catch {
      return false;
    }
  } finally {
    await handle.close();
  }
}

/** Where in a module a load-time error points (`file:line`), when its stack says. */
function errorSite(error: unknown, path: string): string {
  const stack = error instanceof Error ? (error.stack ?? '') : '';
  const url = pathToFileURL(path).href;
  const line = stack.split('\n').find((l) => l.includes(url) || l.includes(path));
  const m = line?.match(/:(\d+)(?::(\d+))?\)?\s*$/);
  return m ? ` (line ${m[1]}${m[2] ? `, column ${m[2]}` : ''})` : '';
}

/**
 * A teacher from a JS module: its default export (or export `teacher`), a Teacher or a function
 * `({ dataset }) => Teacher | Promise<Teacher>`. Whatever the module throws — at import (a syntax
 * error included), in its factory, later in `embed` — comes back as one EXTERNAL error naming it.
 */
async function moduleTeacher(path: string, train: Dataset): Promise<Teacher> {
  const external = (what: string, error: unknown) =>
    new CompressError(
      'EXTERNAL',
      `teacher module ${path} ${what}${errorSite(error, path)}: ${error instanceof Error ? `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}` : String(error)}`,
      { input: path, cause: error },
    );
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && !(await exists(path))) {
      throw new CompressError('NOT_FOUND', `teacher module ${path} does not exist`, { input: path });
    }
    throw external('failed to load', error);
  }
  const exported = mod.default ?? mod.teacher;
  let value: unknown;
  try {
    value =
      typeof exported === 'function'
        ? await (exported as (o: unknown) => unknown)({ dataset: train })
        : exported;
  } catch (error) {
    throw external('failed to create its teacher', error);
  }
  const t = value as Teacher;
  if (!t || typeof t !== 'object' || typeof t.embed !== 'function') {
    throw new CompressError(
      'EXTERNAL',
      `teacher module ${path}: expected its default export (or export "teacher") to be a Teacher { dim, embed(batch), dispose() } or a function returning one, found ${t === null ? 'null' : typeof t}`,
      { input: path },
    );
  }
  if (typeof t.dispose !== 'function') Object.assign(t, { dispose: () => {} });
  return t;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * The teacher named by the config: `builtin` (the Fashion-MNIST teacher shipped with
 * @compress/teacher), `pretrained:<name>` (a student released in @compress/students, e.g.
 * `pretrained:fashion-mnist/momentum`, teaching a smaller one in turn), an `.onnx` file, a feature
 * cache file, or a JS module that exports a Teacher (or a function that returns one).
 */
export async function openTeacher(
  config: Config,
  train: Dataset,
  log: (m: string) => void,
  /** Taking turns with a training step on the same cores: no spinning threads between runs. */
  { takesTurns = false }: { takesTurns?: boolean } = {},
): Promise<Teacher> {
  const t = config.teacher;
  const providers: 'auto' | ['cpu'] | ['cuda'] = t.providers === 'auto' ? 'auto' : [t.providers];
  const common = {
    providers,
    threads: t.threads,
    log: log as (m: string) => void,
    ...(takesTurns ? { spinning: false } : {}),
  };
  const pretrained = t.source.startsWith('pretrained:') ? t.source.slice('pretrained:'.length) : null;
  if (t.source === 'builtin' || pretrained !== null) {
    // both are models of Fashion-MNIST's 28×28 garments
    if (config.data.dataset !== 'fashion-mnist') {
      throw new CompressError(
        'CONFIG',
        `teacher.source "${t.source}" is a Fashion-MNIST model; dataset ${config.data.dataset} needs its own teacher (--teacher model.onnx)`,
        { input: 'teacher.source' },
      );
    }
    return pretrained === null
      ? createFashionMnistTeacher(common)
      : checkedTeacher(await loadPretrained(pretrained, common), t.source);
  }
  if (!t.source) {
    throw new CompressError(
      'CONFIG',
      `teacher.source is empty: the ${config.preset} preset needs a teacher (--teacher model.onnx, a feature cache, or a module)`,
      { input: 'teacher.source' },
    );
  }
  const path = resolve(t.source);
  const ext = extname(path).toLowerCase();
  if (ext === '.onnx') {
    const channels = t.channels === 3 && (train.imageShape?.[2] ?? 3) === 1 ? 'gray-to-rgb' : 'strict';
    const model = await OnnxTeacher.create(path, {
      ...common,
      ...(t.layout ? { inputLayout: t.layout } : {}),
      // Left out when not configured, so the model's own metadata can say what it takes.
      ...(t.normalize !== undefined ? { normalize: t.normalize } : {}),
      channels,
    });
    return checkedTeacher(model, path);
  }
  if (['.ts', '.mts', '.cts'].includes(ext)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `teacher ${path}: Node.js 20 does not import TypeScript; compile the module to .js/.mjs (e.g. with tsc) and pass that file`,
      { input: path },
    );
  }
  if (['.js', '.mjs', '.cjs'].includes(ext))
    return checkedTeacher(await moduleTeacher(path, train), path, { code: 'EXTERNAL' });
  if (await isFeatureCache(path)) {
    return checkedTeacher(await CachedTeacher.open(path, { dataset: train }), path, {
      code: 'CORRUPT_INPUT',
    });
  }
  throw new CompressError(
    'INVALID_ARGUMENT',
    `teacher ${path}: expected "builtin", "pretrained:<name>" (a released student), an .onnx model, a feature cache written by cache-teacher, or a .js/.mjs module exporting a Teacher`,
    { input: path },
  );
}
