import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeOnnxModel } from './graph.js';
import {
  createNativeSession,
  isOnnxRuntimeNativeAvailable,
  isSupportedOnnxRuntimeVersion,
  ONNXRUNTIME_NODE_RANGE,
  requireOnnxRuntimeNative,
} from './native.js';
import { createSession } from './runtime.js';

const who = { user: 'a test', otherwise: 'nothing' };

const addOne = encodeOnnxModel({
  name: 'add-one',
  opset: 13,
  nodes: [{ opType: 'Add', inputs: ['x', 'one'], outputs: ['y'] }],
  inputs: [{ name: 'x', shape: ['n'] }],
  outputs: [{ name: 'y', shape: ['n'] }],
  initializers: [{ name: 'one', dims: [1], values: [1] }],
});

describe('the native session', () => {
  it('is found, of a supported version, and runs synchronously into a given buffer', () => {
    expect(isOnnxRuntimeNativeAvailable()).toBe(true);
    const native = requireOnnxRuntimeNative(who);
    expect(isSupportedOnnxRuntimeVersion(native.version)).toBe(true);
    const session = createNativeSession(native, addOne, { threads: 1, spinning: false });
    const y = new Float32Array(3);
    session.run(
      { x: new native.Tensor('float32', Float32Array.of(1, 2, 3), [3]) },
      { y: new native.Tensor('float32', y, [3]) },
      {},
    );
    expect(Array.from(y)).toEqual([2, 3, 4]);
    session.dispose?.();
  });

  it('the async session factory takes the same options', async () => {
    const session = await createSession(addOne, { threads: 0 });
    const { Tensor } = (await import('onnxruntime-node')).default;
    const out = await session.run({ x: new Tensor('float32', Float32Array.of(5), [1]) });
    expect(Array.from(out.y!.data as Float32Array)).toEqual([6]);
    await session.release();
  });

  it('knows which versions it supports', () => {
    expect(ONNXRUNTIME_NODE_RANGE).toBe('~1.30.0');
    expect(isSupportedOnnxRuntimeVersion('1.30.0')).toBe(true);
    expect(isSupportedOnnxRuntimeVersion('1.30.2-dev')).toBe(true);
    expect(isSupportedOnnxRuntimeVersion('1.29.1')).toBe(false);
    expect(isSupportedOnnxRuntimeVersion('2.30.0')).toBe(false);
  });
});

describe('one onnxruntime-node range across the workspace', () => {
  const packages = join(import.meta.dirname, '..', '..');
  for (const name of readdirSync(packages)) {
    const manifest = JSON.parse(readFileSync(join(packages, name, 'package.json'), 'utf8')) as Record<
      string,
      Record<string, string> | undefined
    >;
    const peer = manifest.peerDependencies?.['onnxruntime-node'];
    const dev = manifest.devDependencies?.['onnxruntime-node'] ?? manifest.dependencies?.['onnxruntime-node'];
    if (peer === undefined && dev === undefined) continue;
    it(`${name}: peer ${ONNXRUNTIME_NODE_RANGE}, the pinned version from the workspace catalog`, () => {
      if (name !== 'cli') expect(peer).toBe(ONNXRUNTIME_NODE_RANGE);
      expect(dev).toBe('catalog:');
    });
  }
});
