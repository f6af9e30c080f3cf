import { basename } from 'node:path';
import { CompressError, type Dataset } from '@compress/core';

/** What the class checks need of a dataset: its classes, and a name or an ImageFolder's root. */
export type ClassList = Pick<Dataset, 'name' | 'classes'> & { readonly root?: string };

export interface CheckSameClassesOptions {
  /**
   * How the two sides are called in the message.
   * @default an ImageFolder's folder name with a slash (`train/`, `val/`; the whole paths where
   * those are equal), else the dataset's `name`
   */
  names?: readonly [string, string];
}

export interface CheckClassCountOptions {
  /** How the dataset is called in the message. @default as in {@link checkSameClasses} */
  name?: string;
  /** What needs the classes, for the message. @default 'training or evaluating with labels' */
  purpose?: string;
  /** Fewest classes accepted. @default 2 */
  min?: number;
}

function sideNames(a: ClassList, b: ClassList): [string, string] {
  if (typeof a.root === 'string' && typeof b.root === 'string') {
    const x = `${basename(a.root)}/`;
    const y = `${basename(b.root)}/`;
    return x === y ? [`${a.root}/`, `${b.root}/`] : [x, y];
  }
  const x = typeof a.root === 'string' ? `${basename(a.root)}/` : a.name;
  const y = typeof b.root === 'string' ? `${basename(b.root)}/` : b.name;
  return x === y ? [`${a.name} (first)`, `${b.name} (second)`] : [x, y];
}

function nameOf(d: ClassList): string {
  return typeof d.root === 'string' ? `${basename(d.root)}/` : d.name;
}

/** `[a, b, c]`, the first 10 names then how many more. */
function list(names: readonly string[]): string {
  const shown = names.slice(0, 10).join(', ');
  return names.length > 10 ? `[${shown}, … ${names.length - 10} more]` : `[${shown}]`;
}

/**
 * Refuses two splits (train and val/test) whose class lists differ: labels are positions in the
 * class list, so `train/{a,b,c}` with `val/{a,b,d}` would score `d` images as `c`. The MISMATCH
 * error names the classes only on each side ("val/ has classes [d] that train/ lacks; train/ has
 * [c] that val/ lacks"), or says that the same classes come in a different order.
 */
export function checkSameClasses(
  train: ClassList,
  test: ClassList,
  options: CheckSameClassesOptions = {},
): void {
  const [r, t] = options.names ?? sideNames(train, test);
  const a = train.classes;
  const b = test.classes;
  if (a.length === b.length && a.every((c, i) => c === b[i])) return;
  const inA = new Set(a);
  const inB = new Set(b);
  const onlyB = b.filter((c) => !inA.has(c));
  const onlyA = a.filter((c) => !inB.has(c));
  const input = typeof test.root === 'string' ? test.root : test.name;
  if (onlyA.length === 0 && onlyB.length === 0) {
    throw new CompressError(
      'MISMATCH',
      `${r} and ${t} have the same classes in a different order (${r} ${list(a)}, ${t} ${list(b)}); labels are positions in the class list, so they would not mean the same classes: list the classes in one order`,
      { input },
    );
  }
  const parts: string[] = [];
  if (onlyB.length > 0)
    parts.push(`${t} has ${onlyB.length === 1 ? 'class' : 'classes'} ${list(onlyB)} that ${r} lacks`);
  if (onlyA.length > 0) parts.push(`${r} has ${list(onlyA)} that ${t} lacks`);
  throw new CompressError(
    'MISMATCH',
    `${parts.join('; ')} (${r} has ${a.length === 1 ? '1 class' : `${a.length} classes`}, ${t} ${b.length}): both splits need the same classes, as labels are positions in the sorted class list`,
    { input },
  );
}

/**
 * Refuses a dataset with fewer than `min` (2) classes for anything that trains or evaluates with
 * labels: with one class every prediction is right and every accuracy is 100%.
 */
export function checkClassCount(dataset: ClassList, options: CheckClassCountOptions = {}): void {
  const min = options.min ?? 2;
  const n = dataset.classes.length;
  if (n >= min) return;
  const name = options.name ?? nameOf(dataset);
  const found = n === 0 ? 'no classes' : `${n} class${n === 1 ? '' : 'es'} ${list(dataset.classes)}`;
  const why = n === 1 ? ': with one class every prediction is right and every accuracy is 100%' : '';
  throw new CompressError(
    'INVALID_ARGUMENT',
    `${name} has ${found}; ${options.purpose ?? 'training or evaluating with labels'} needs at least ${min}${why}${
      typeof dataset.root === 'string' ? ` (add class folders ${dataset.root}/<class>/)` : ''
    }`,
    { input: typeof dataset.root === 'string' ? dataset.root : dataset.name },
  );
}

/**
 * Both checks for a train split and the splits evaluated against it: at least `min` classes, and
 * the same class list in each.
 */
export function checkSplitClasses(
  train: ClassList,
  others: readonly ClassList[],
  options: Omit<CheckClassCountOptions, 'name'> = {},
): void {
  checkClassCount(train, options);
  for (const other of others) checkSameClasses(train, other);
}
