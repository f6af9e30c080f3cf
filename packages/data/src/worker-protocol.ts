import type { DatasetSpec } from './datasets/spec.js';
import type { LoaderBatch } from './pipeline.js';
import type { TransformSpec } from './transforms/transform.js';

/** What a loader worker is started with. */
export interface WorkerData {
  dataset: DatasetSpec;
  transform: TransformSpec | null;
  concurrency: number;
}

export interface WorkerRequest {
  id: number;
  seed: number;
  epoch: number;
  step: number;
  indices: Int32Array;
  /** A released batch's buffer to write this batch into, when its size fits (transferred). */
  spare: ArrayBuffer | null;
}

export type WorkerReply =
  | { type: 'batch'; id: number; batch: LoaderBatch; spare: ArrayBuffer | null }
  | {
      type: 'error';
      id: number;
      spare: ArrayBuffer | null;
      error: {
        code: string | undefined;
        message: string;
        input: string | undefined;
        stack: string | undefined;
      };
    };
