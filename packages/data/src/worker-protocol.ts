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
}

export type WorkerReply =
  | { type: 'batch'; id: number; batch: LoaderBatch }
  | {
      type: 'error';
      id: number;
      error: {
        code: string | undefined;
        message: string;
        input: string | undefined;
        stack: string | undefined;
      };
    };
