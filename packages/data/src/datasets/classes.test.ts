import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompressError } from '@compress/core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkClassCount, checkSameClasses, checkSplitClasses } from './classes.js';
import { imageFolder } from './image-folder.js';

const dir = mkdtempSync(join(tmpdir(), 'compress-data-classes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function folder(root: string, classes: string[]): Promise<void> {
  for (const c of classes) {
    mkdirSync(join(root, c), { recursive: true });
    await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 10, g: 20, b: 30 } } })
      .png()
      .toFile(join(root, c, 'x.png'));
  }
}

function caught(f: () => void): CompressError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(CompressError);
    return error as CompressError;
  }
  throw new Error('expected an error');
}

beforeAll(async () => {
  await folder(join(dir, 'train'), ['a', 'b', 'c']);
  await folder(join(dir, 'val'), ['a', 'b', 'd']);
  await folder(join(dir, 'test'), ['a', 'b', 'c']);
  await folder(join(dir, 'one'), ['only']);
  await folder(join(dir, 'x', 'images'), ['a', 'b']);
  await folder(join(dir, 'y', 'images'), ['a']);
});

describe('checkSameClasses', () => {
  it('refuses ImageFolder splits with differing classes, naming the classes on each side', async () => {
    const train = await imageFolder(join(dir, 'train'));
    const val = await imageFolder(join(dir, 'val'));
    const e = caught(() => checkSameClasses(train, val));
    expect(e.code).toBe('MISMATCH');
    expect(e.input).toBe(join(dir, 'val'));
    expect(e.message).toBe(
      'val/ has class [d] that train/ lacks; train/ has [c] that val/ lacks (train/ has 3 classes, val/ 3): both splits need the same classes, as labels are positions in the sorted class list',
    );
    checkSameClasses(train, await imageFolder(join(dir, 'test')));
  });

  it('says which side lacks what when one is a subset, and uses the whole paths for equal folder names', async () => {
    const x = await imageFolder(join(dir, 'x', 'images'));
    const y = await imageFolder(join(dir, 'y', 'images'));
    expect(caught(() => checkSameClasses(x, y)).message).toBe(
      `${join(dir, 'x', 'images')}/ has [b] that ${join(dir, 'y', 'images')}/ lacks (${join(dir, 'x', 'images')}/ has 2 classes, ${join(dir, 'y', 'images')}/ 1): both splits need the same classes, as labels are positions in the sorted class list`,
    );
    expect(caught(() => checkSameClasses(y, x, { names: ['train', 'val'] })).message).toMatch(
      /^val has class \[b\] that train lacks \(train has 1 class, val 2\)/,
    );
  });

  it('refuses the same classes in another order, and lists at most 10 names', () => {
    const e = caught(() =>
      checkSameClasses(
        { name: 'mine/train', classes: ['a', 'b'] },
        { name: 'mine/val', classes: ['b', 'a'] },
      ),
    );
    expect(e.message).toBe(
      'mine/train and mine/val have the same classes in a different order (mine/train [a, b], mine/val [b, a]); labels are positions in the class list, so they would not mean the same classes: list the classes in one order',
    );
    const many = Array.from({ length: 14 }, (_, i) => `n${i}`);
    expect(
      caught(() => checkSameClasses({ name: 'p', classes: ['z'] }, { name: 'q', classes: many })).message,
    ).toContain(
      'q has classes [n0, n1, n2, n3, n4, n5, n6, n7, n8, n9, … 4 more] that p lacks; p has [z] that q lacks',
    );
  });
});

describe('checkClassCount', () => {
  it('refuses a single class and none, accepts two', async () => {
    const one = await imageFolder(join(dir, 'one'));
    const e = caught(() => checkClassCount(one));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.input).toBe(join(dir, 'one'));
    expect(e.message).toBe(
      `one/ has 1 class [only]; training or evaluating with labels needs at least 2: with one class every prediction is right and every accuracy is 100% (add class folders ${join(dir, 'one')}/<class>/)`,
    );
    expect(
      caught(() => checkClassCount({ name: 'mod', classes: [] }, { purpose: 'the linear probe' })).message,
    ).toBe('mod has no classes; the linear probe needs at least 2');
    checkClassCount(await imageFolder(join(dir, 'train')));
  });

  it('checkSplitClasses does both', async () => {
    const train = await imageFolder(join(dir, 'train'));
    checkSplitClasses(train, [await imageFolder(join(dir, 'test'))]);
    expect(caught(() => checkSplitClasses(train, [{ name: 'v', classes: ['a', 'b', 'd'] }])).code).toBe(
      'MISMATCH',
    );
    expect(caught(() => checkSplitClasses({ name: 'single', classes: ['a'] }, [])).code).toBe(
      'INVALID_ARGUMENT',
    );
  });
});
