import { describe, expect, it } from 'vitest';
import { encodeOnnxModel, FLOAT, INT64 } from './graph.js';
import { readOnnxMetadata } from './metadata.js';
import { loadOnnxRuntime } from './runtime.js';

describe('encodeOnnxModel', () => {
  it('writes a model onnxruntime loads and runs as specified (float and int attributes, named dims)', async () => {
    const ort = (await loadOnnxRuntime())!;
    expect(ort).not.toBeNull();
    const model = encodeOnnxModel({
      name: 'gemm-check',
      opset: 13,
      nodes: [
        {
          opType: 'Gemm',
          inputs: ['a', 'b', 'c'],
          outputs: ['y'],
          ints: { transB: 1 },
          floats: { alpha: 0.5, beta: -3 },
        },
      ],
      inputs: [
        { name: 'a', elemType: FLOAT, shape: ['m', 'd'] },
        { name: 'b', elemType: FLOAT, shape: ['n', 'd'] },
        { name: 'c', elemType: FLOAT, shape: [1, 'n'] },
      ],
      outputs: [{ name: 'y', elemType: FLOAT, shape: ['m', 'n'] }],
    });
    // Field 1 (ir_version) = 7 first: the bytes 0x08 0x07.
    expect(Array.from(model.subarray(0, 2))).toEqual([0x08, 0x07]);
    const session = await ort.InferenceSession.create(model, {});
    const a = Float32Array.of(1, 2, 3, 4, 5, 6); // 2 × 3
    const b = Float32Array.of(1, 0, 0, 0, 1, 1); // 2 × 3 (transposed in the product)
    const c = Float32Array.of(1, 2);
    const out = await session.run({
      a: new ort.Tensor('float32', a, [2, 3]),
      b: new ort.Tensor('float32', b, [2, 3]),
      c: new ort.Tensor('float32', c, [1, 2]),
    });
    // y = 0.5·a·bᵀ − 3·c: a·bᵀ = [[1, 5], [4, 11]].
    expect(Array.from(out.y!.data as Float32Array)).toEqual([0.5 - 3, 2.5 - 6, 2 - 3, 5.5 - 6]);
    expect(out.y!.dims).toEqual([2, 2]);
  });

  it('encodes long strings and large values with multi-byte lengths and varints', () => {
    const long = 'x'.repeat(300);
    const bytes = encodeOnnxModel({ name: long, opset: 300, nodes: [], inputs: [], outputs: [] });
    // The graph name's length (300) is the varint 0xAC 0x02, after its tag (field 2, wire type 2).
    const at = Buffer.from(bytes).indexOf(Buffer.from([0x12, 0xac, 0x02]));
    expect(at).toBeGreaterThan(0);
    expect(
      Buffer.from(bytes)
        .subarray(at + 3, at + 303)
        .toString(),
    ).toBe(long);
  });

  it('writes initializers (float32 and int64, arrays or typed arrays), node names, negative ints and metadata', async () => {
    const ort = (await loadOnnxRuntime())!;
    const model = encodeOnnxModel(
      {
        name: 'init-check',
        opset: 13,
        nodes: [
          { opType: 'Add', inputs: ['x', 'w'], outputs: ['s'], name: 'add' },
          { opType: 'Reshape', inputs: ['s', 'shape'], outputs: ['r'] },
          { opType: 'Softmax', inputs: ['r'], outputs: ['y'], ints: { axis: -1 } },
        ],
        inputs: [{ name: 'x', shape: [2, 2] }],
        outputs: [{ name: 'y', elemType: FLOAT, shape: [1, 4] }],
        initializers: [
          { name: 'w', dims: [2, 2], values: Float32Array.of(0, 1, 2, 3) },
          { name: 'shape', elemType: INT64, dims: [2], values: BigInt64Array.of(1n, -1n) },
        ],
      },
      { irVersion: 8, producerName: 'tests', producerVersion: '1.2.3', metadata: { a: '1', 'b.c': 'two' } },
    );
    expect(readOnnxMetadata(model)).toEqual({ a: '1', 'b.c': 'two' });
    const session = await ort.InferenceSession.create(model, {});
    const out = await session.run({ x: new ort.Tensor('float32', new Float32Array(4), [2, 2]) });
    const e = [0, 1, 2, 3].map(Math.exp);
    const sum = e.reduce((a, b) => a + b, 0);
    const y = Array.from(out.y!.data as Float32Array);
    expect(out.y!.dims).toEqual([1, 4]);
    for (const [i, v] of y.entries()) expect(v).toBeCloseTo(e[i]! / sum, 6);
  });

  it('refuses an initializer whose values do not fill its dims', () => {
    expect(() =>
      encodeOnnxModel({
        name: 'bad',
        opset: 13,
        nodes: [],
        inputs: [],
        outputs: [],
        initializers: [{ name: 'w', dims: [3], values: [1, 2] }],
      }),
    ).toThrow('initializer w has 2 values for dims [3]');
  });
});
