import { CompressError } from '@compress/core';
import { isOnnxRuntimeNativeAvailable } from '@compress/onnx';
import type { Student } from '@compress/students';
import { type StepEngine, TfjsEngine, type TfjsEngineOptions } from './engine.js';
import { OnnxEngine } from './onnx/engine.js';

/** Which engine runs the step: see {@link createEngine}. */
export type EngineChoice = 'auto' | 'onnxruntime' | 'tfjs';

export const engineChoices: readonly EngineChoice[] = ['auto', 'onnxruntime', 'tfjs'];

export interface EngineChoiceOptions extends TfjsEngineOptions {
  /** onnxruntime's intra-op threads for the step (0: one per core). */
  threads: number;
  log: (message: string) => void;
}

/**
 * The step engine of `choice`: `onnxruntime` (fails with BACKEND_UNAVAILABLE where
 * onnxruntime-node is not installed, UNSUPPORTED for a layer its graph does not know), `tfjs`, or
 * `auto` = onnxruntime where installed and able to build the student's step, else tfjs (the log
 * says why).
 */
export function createEngine(
  choice: EngineChoice,
  student: Student,
  options: EngineChoiceOptions,
): StepEngine {
  const { threads, log, ...rest } = options;
  if (!engineChoices.includes(choice)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `engine must be 'auto', 'onnxruntime' or 'tfjs', found ${JSON.stringify(choice)}`,
      { input: 'engine' },
    );
  }
  if (choice === 'onnxruntime' || (choice === 'auto' && isOnnxRuntimeNativeAvailable())) {
    try {
      const engine = OnnxEngine.create(student, { ...rest, threads });
      log(
        `step engine: onnxruntime, one graph per step (${threads === 0 ? 'one thread per core' : threads === 1 ? '1 thread' : `${threads} threads`})`,
      );
      return engine;
    } catch (error) {
      if (choice === 'onnxruntime' || !(error instanceof CompressError && error.code === 'UNSUPPORTED'))
        throw error;
      log(`step engine: tfjs (onnxruntime cannot build this step: ${error.message})`);
    }
  } else if (choice === 'auto') {
    log('step engine: tfjs (onnxruntime-node is not installed)');
  } else {
    log('step engine: tfjs');
  }
  return new TfjsEngine(student, rest);
}
