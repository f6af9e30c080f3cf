import { freemem } from 'node:os';
import { CompressError, formatBytes } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import type { Resolved } from './compress-loss-options.js';
import type { LossEngine } from './engines/engine.js';
import { OnnxLossEngine } from './engines/onnxruntime.js';
import { WasmHeap } from './engines/wasm-heap.js';

/**
 * An OUT_OF_MEMORY error of the queues and step workspace, rewritten to say what they need on
 * this engine and about which K would fit.
 */
export function outOfMemory(
  o: Resolved,
  qDim: number,
  engine: LossEngine,
  cause: CompressError,
): CompressError {
  const B = o.batchSize;
  const wasm = engine.name === 'wasm';
  const bp = (B + 3) & ~3; // the wasm engine pads the batch to the SIMD width
  const dim = Math.max(o.teacherDim, o.studentDim);
  // Bytes per queue row: the queues, and the step's K×B matrices (three on wasm, ~ten on onnxruntime).
  const perRow =
    4 * (o.teacherDim + qDim) +
    (wasm ? 12 * bp : engine.name === 'onnxruntime' ? OnnxLossEngine.workspaceBytes(B, 1) : 0);
  const need = o.queueSize * perRow + (wasm ? 8 * dim * bp : 0);
  let fits = '';
  if (engine.name === 'onnxruntime') {
    const perRowNative = 4 * (o.teacherDim + qDim) + OnnxLossEngine.workspaceBytes(B, 1);
    fits = `; about K = ${Math.floor((freemem() * 0.9) / perRowNative)} would fit the memory free now (${formatBytes(freemem())})`;
  }
  const heap = wasm ? WasmHeap.of(tf.backend()) : null;
  if (heap !== null) {
    // What the heap can still grow by (free blocks inside it may add a little).
    const room = Math.max(heap.heapMax - heap.heapSize, 0);
    fits = `; about K = ${Math.floor((room * 0.9) / perRow)} would fit the room left (${formatBytes(room)})`;
  }
  return new CompressError(
    'OUT_OF_MEMORY',
    `CompressLoss: queues of K = ${o.queueSize} rows (teacher ${o.teacherDim} + student ${qDim} dims) and the step workspace for B = ${B} need ${formatBytes(need)} on the ${engine.name} engine, which does not fit (${cause.message})${fits}`,
    { input: 'queueSize', cause },
  );
}
