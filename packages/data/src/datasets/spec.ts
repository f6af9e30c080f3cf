import { CompressError, type Dataset } from '@compress/core';
import { importFactory, moduleUrl } from '../transforms/compose.js';
import { cifar10 } from './cifar10.js';
import type { SpecDataset } from './common.js';
import { fashionMnist } from './fashion-mnist.js';
import { ImageFolder, type ImageFolderSpec } from './image-folder.js';

/**
 * The serialisable form of a dataset, from which a worker thread reopens it ({@link openDataset}).
 * Every dataset made by this package carries its spec; a dataset of your own can be reopened from
 * a module ({@link moduleDataset}).
 */
export type DatasetSpec =
  | { kind: 'fashion-mnist'; split: 'train' | 'test'; root: string }
  | { kind: 'cifar10'; split: 'train' | 'test'; root: string }
  | ImageFolderSpec
  | ModuleDatasetSpec;

/** A dataset of your own: `url`'s export `export` (default `default`) called with `options`. */
export interface ModuleDatasetSpec {
  kind: 'module';
  url: string;
  export?: string;
  options?: unknown;
}

const datasetKinds: readonly DatasetSpec['kind'][] = ['fashion-mnist', 'cifar10', 'image-folder', 'module'];

/** Reopens a dataset from its {@link DatasetSpec}. */
export async function openDataset(spec: DatasetSpec): Promise<SpecDataset> {
  switch (spec?.kind) {
    case 'fashion-mnist':
      return fashionMnist({ split: spec.split, root: spec.root });
    case 'cifar10':
      return cifar10({ split: spec.split, root: spec.root });
    case 'image-folder': {
      const { root, listing, ...options } = spec;
      return ImageFolder.open(root, options, listing);
    }
    case 'module':
      return openModuleDataset(spec);
    default: {
      const exhaustive: never = spec;
      const kind = (exhaustive as { kind?: unknown } | null)?.kind;
      throw new CompressError(
        'INVALID_ARGUMENT',
        `dataset spec: unknown kind ${JSON.stringify(kind)}; expected one of ${datasetKinds.join(', ')}`,
        { input: 'spec.kind' },
      );
    }
  }
}

/**
 * Opens a dataset of your own from a module so that worker threads can reopen it: imports `url`,
 * calls its export `exportName` with `options` (it may be async) and returns the dataset with the
 * spec `{ kind: 'module', url, export, options }`. The dataset may provide `labels` (Int32Array);
 * otherwise they are read once through `get`.
 */
export async function moduleDataset(
  url: string | URL,
  exportName = 'default',
  options?: unknown,
): Promise<SpecDataset> {
  const spec: ModuleDatasetSpec = { kind: 'module', url: moduleUrl(url), export: exportName };
  if (options !== undefined) spec.options = options;
  return openModuleDataset(spec);
}

async function openModuleDataset(spec: ModuleDatasetSpec): Promise<SpecDataset> {
  const factory = await importFactory(spec, 'moduleDataset');
  const ds = (await factory(spec.options)) as Dataset & { labels?: Int32Array };
  if (!ds || typeof ds.get !== 'function' || !Number.isInteger(ds.length)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `moduleDataset: export '${spec.export ?? 'default'}' of ${spec.url} did not return a Dataset (an object with length and get(index))`,
      { input: spec.url },
    );
  }
  let labels = ds.labels;
  const wrapped: SpecDataset = {
    spec,
    get name() {
      return ds.name;
    },
    get length() {
      return ds.length;
    },
    get classes() {
      return ds.classes;
    },
    get imageShape() {
      return ds.imageShape;
    },
    get fingerprint() {
      return ds.fingerprint;
    },
    get labels() {
      if (!labels) {
        labels = new Int32Array(ds.length);
        for (let i = 0; i < ds.length; i++) {
          const s = ds.get(i);
          if (s instanceof Promise) {
            throw new CompressError(
              'UNSUPPORTED',
              `moduleDataset: ${ds.name} has an async get() and no labels array; give it a labels: Int32Array property`,
              { input: spec.url },
            );
          }
          labels[i] = s.label;
        }
      }
      return labels;
    },
    get: (index: number) => ds.get(index),
  };
  const resized = (ds as { getResized?: unknown }).getResized;
  if (typeof resized === 'function') Object.assign(wrapped, { getResized: resized.bind(ds) });
  return wrapped;
}
