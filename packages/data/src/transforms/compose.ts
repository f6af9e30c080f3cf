import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CompressError, type ImageTransform } from '@compress/core';
import { centerCrop, horizontalFlip, resize } from './geometry.js';
import { grayscaleToRgb, normalize, toFloat } from './pixel.js';
import { randomResizedCrop } from './random-resized-crop.js';
import {
  asTransform,
  defineTransform,
  type ModuleTransformSpec,
  type Transform,
  type TransformSpec,
} from './transform.js';

/**
 * Applies transforms in order, all drawing from the same `rng` — torchvision's `Compose`. Nested
 * composes are flattened. The result has a spec (usable in worker threads) when every part has one.
 */
export function compose(transforms: readonly (Transform | ImageTransform)[]): Transform {
  if (!Array.isArray(transforms)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `compose: expected an array of transforms, got ${typeof transforms}`,
      {
        input: 'transforms',
      },
    );
  }
  const steps: Transform[] = [];
  for (const [i, t] of transforms.entries()) {
    if (typeof t !== 'function') {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `compose: transform ${i} is not a function (got ${typeof t})`,
        {
          input: `transforms[${i}]`,
        },
      );
    }
    const tr = asTransform(t);
    steps.push(...(tr.steps ?? [tr]));
  }
  const specs = steps.map((s) => s.spec);
  const spec = specs.every((s) => s !== null)
    ? { kind: 'compose' as const, transforms: specs as TransformSpec[] }
    : null;
  return defineTransform(
    spec,
    (image, rng) => {
      let out = image;
      for (const step of steps) out = step(out, rng);
      return out;
    },
    { steps },
  );
}

/**
 * Loads a transform of your own from a module so that worker threads can rebuild it: imports
 * `url`, calls its export `exportName` with `options`, and returns the transform with the spec
 * `{ kind: 'module', url, export, options }`. The factory may be async; `options` must be
 * structured-clonable.
 *
 * ```ts
 * // jitter.js:  export function jitter({ strength }) { return (image, rng) => … }
 * const t = compose([randomResizedCrop(28), await moduleTransform(new URL('./jitter.js', import.meta.url), 'jitter', { strength: 0.4 })]);
 * ```
 */
export async function moduleTransform(
  url: string | URL,
  exportName = 'default',
  options?: unknown,
): Promise<Transform> {
  const spec: ModuleTransformSpec = { kind: 'module', url: moduleUrl(url), export: exportName };
  if (options !== undefined) spec.options = options;
  return buildTransform(spec);
}

export function moduleUrl(url: string | URL): string {
  if (url instanceof URL) return url.href;
  return isAbsolute(url) ? pathToFileURL(url).href : url;
}

/** Imports `spec.url` and returns its export `spec.export` (a factory). */
export async function importFactory(
  spec: { url: string; export?: string },
  what: string,
): Promise<(options: unknown) => unknown> {
  const name = spec.export ?? 'default';
  let mod: Record<string, unknown>;
  try {
    mod = (await import(moduleUrl(spec.url))) as Record<string, unknown>;
  } catch (error) {
    throw new CompressError(
      'NOT_FOUND',
      `${what}: cannot import module ${spec.url}: ${(error as Error).message}`,
      {
        input: spec.url,
        cause: error,
      },
    );
  }
  const factory = mod[name];
  if (typeof factory !== 'function') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${what}: module ${spec.url} has no function export '${name}' (found: ${Object.keys(mod).join(', ') || 'no exports'})`,
      { input: spec.url },
    );
  }
  return factory as (options: unknown) => unknown;
}

const transformKinds: readonly TransformSpec['kind'][] = [
  'randomResizedCrop',
  'horizontalFlip',
  'resize',
  'centerCrop',
  'toFloat',
  'normalize',
  'grayscaleToRgb',
  'compose',
  'module',
];

/** Rebuilds a transform from its {@link TransformSpec} (what worker threads do). */
export async function buildTransform(spec: TransformSpec): Promise<Transform> {
  switch (spec?.kind) {
    case 'randomResizedCrop':
      return randomResizedCrop(spec.size, { scale: spec.scale, ratio: spec.ratio });
    case 'horizontalFlip':
      return horizontalFlip(spec.p);
    case 'resize':
      return resize(spec.size);
    case 'centerCrop':
      return centerCrop(spec.size);
    case 'toFloat':
      return toFloat();
    case 'normalize':
      return normalize(spec.mean, spec.std);
    case 'grayscaleToRgb':
      return grayscaleToRgb();
    case 'compose': {
      if (!Array.isArray(spec.transforms)) {
        throw new CompressError('INVALID_ARGUMENT', 'transform spec compose: `transforms` must be an array', {
          input: 'transforms',
        });
      }
      return compose(await Promise.all(spec.transforms.map(buildTransform)));
    }
    case 'module': {
      const factory = await importFactory(spec, 'moduleTransform');
      const t = (await factory(spec.options)) as unknown;
      if (typeof t !== 'function') {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `moduleTransform: export '${spec.export ?? 'default'}' of ${spec.url} returned ${typeof t}, expected a transform function (image, rng) => image`,
          { input: spec.url },
        );
      }
      return defineTransform(spec, t as ImageTransform);
    }
    default: {
      const exhaustive: never = spec;
      const kind = (exhaustive as { kind?: unknown } | null)?.kind;
      throw new CompressError(
        'INVALID_ARGUMENT',
        `transform spec: unknown kind ${JSON.stringify(kind)}; expected one of ${transformKinds.join(', ')}`,
        { input: 'spec.kind' },
      );
    }
  }
}
