import { CompressError } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import type { LossEngine } from './engine.js';
import { OnnxLossEngine, onnxRuntimeInstalled } from './onnxruntime.js';
import { TfjsEngine } from './tfjs.js';
import { WasmEngine } from './wasm.js';
import { WasmHeap } from './wasm-heap.js';

/**
 * The engine `choice` names; `auto`: onnxruntime where onnxruntime-node is installed, else wasm
 * where the active tfjs backend is wasm, else tfjs.
 */
export function chooseEngine(choice: 'auto' | 'wasm' | 'tfjs' | 'onnxruntime', threads: number): LossEngine {
  if (choice === 'tfjs') return new TfjsEngine();
  if (choice === 'onnxruntime' || (choice === 'auto' && onnxRuntimeInstalled()))
    return OnnxLossEngine.create(threads);
  const heap = tf.getBackend() === 'wasm' ? WasmHeap.of(tf.backend()) : null;
  if (heap !== null) return new WasmEngine(heap);
  if (choice === 'wasm') {
    throw new CompressError(
      'BACKEND_UNAVAILABLE',
      `CompressLoss: engine 'wasm' needs the tfjs wasm backend (@tensorflow/tfjs-backend-wasm 4.x) to be active, found backend '${tf.getBackend()}'; call tf.setBackend('wasm') first or use engine 'auto'`,
      { input: 'engine' },
    );
  }
  return new TfjsEngine();
}
