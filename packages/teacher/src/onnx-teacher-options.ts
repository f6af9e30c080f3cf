import { CompressError } from '@compress/core';
import type { Provider } from '@compress/onnx';
import type { InputLayout, Normalization } from './layout.js';

/** How the data's channels meet the model's. */
export type ChannelMode = 'strict' | 'gray-to-rgb';

export interface OnnxTeacherOptions {
  /**
   * Execution providers in order of preference. `'auto'` uses CUDA where onnxruntime-node's CUDA
   * provider is installed and starts, else the CPU, and reports its choice through `log`. Asking
   * for `'cuda'` explicitly where it is not installed is a BACKEND_UNAVAILABLE error that says how
   * to install it.
   * @default 'auto'
   */
  providers?: 'auto' | readonly Provider[];
  /**
   * Layout of the model's image input. Inferred from the model's input shape when not given
   * (a dimension of 1 or 3 right after the batch → NCHW, last → NHWC); NCHW when the shape cannot
   * tell, as PyTorch exports are NCHW.
   * @default inferred
   */
  inputLayout?: InputLayout;
  /**
   * Per-channel normalisation applied to the [0, 1] images before the model: `'imagenet'` for
   * MoCo, SwAV and torchvision models; `'none'` for SimCLR and models that normalise inside (the
   * built-in Fashion-MNIST teacher, everything tooling/teacher-export writes with
   * `--normalize inside`, students exported by `exportOnnx` with normalisation inside); or your own
   * `{ mean, std }` (one value, or one per model channel). Where the model's metadata says what it
   * expects (`compress.normalization`, `compress.onnxTeacherOptions`), a normalisation on top of a
   * model that takes [0, 1] pixels is refused, and one that differs from the metadata's is logged.
   * @default 'none'
   */
  normalize?: 'none' | 'imagenet' | Normalization;
  /**
   * `'gray-to-rgb'` repeats a one-channel image into the 3 channels a model takes (as torchvision's
   * `Grayscale(num_output_channels=3)`); `'strict'` requires the data to have the model's channel
   * count.
   * @default 'strict'
   */
  channels?: ChannelMode;
  /**
   * Images per onnxruntime run; larger batches are split. Memory grows with it; throughput barely
   * does beyond 32 on a CPU.
   * @default 32
   */
  batchSize?: number;
  /**
   * Intra-op threads of the session: 0 = one per core (`os.availableParallelism()`), as
   * everywhere in compress. (Before @compress/onnx, 0 let onnxruntime choose: one per physical core.)
   * @default 0
   */
  threads?: number;
  /**
   * Whether onnxruntime's pool threads spin for a while after each run (its default). Off when the
   * teacher takes turns with other work on the same cores (a training step on onnxruntime): the
   * spinning threads would take the cores that work needs.
   * @default true
   */
  spinning?: boolean;
  /**
   * The model output to use as features. Outputs of shape [B, D] or [B, D, 1, 1] are accepted.
   * @default the model's first output
   */
  outputName?: string;
  /**
   * Receives one line saying which execution provider was chosen and why; `false` for silence.
   * @default console.info
   */
  log?: ((message: string) => void) | false;
}

export const defaultOnnxTeacherOptions: Required<Omit<OnnxTeacherOptions, 'inputLayout' | 'outputName'>> = {
  providers: 'auto',
  normalize: 'none',
  channels: 'strict',
  batchSize: 32,
  threads: 0,
  spinning: true,
  log: (message) => console.info(message),
};

/** The options with every default filled in. */
export type ResolvedOnnxTeacherOptions = Required<Omit<OnnxTeacherOptions, 'inputLayout' | 'outputName'>>;

/** Checks batchSize, threads, providers and channels; INVALID_ARGUMENT naming the option otherwise. */
export function validateOptions(opts: ResolvedOnnxTeacherOptions): void {
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `OnnxTeacher: batchSize must be an integer ≥ 1, got ${opts.batchSize}`,
      {
        input: 'batchSize',
      },
    );
  }
  if (!Number.isInteger(opts.threads) || opts.threads < 0) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `OnnxTeacher: threads must be an integer ≥ 0 (0 = one per core), got ${opts.threads}`,
      { input: 'threads' },
    );
  }
  if (opts.providers !== 'auto') {
    if (!Array.isArray(opts.providers) || opts.providers.length === 0) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `OnnxTeacher: providers must be 'auto' or a non-empty list of 'cuda' | 'cpu', got ${JSON.stringify(opts.providers)}`,
        { input: 'providers' },
      );
    }
    for (const p of opts.providers) {
      if (p !== 'cuda' && p !== 'cpu') {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `OnnxTeacher: unknown execution provider ${JSON.stringify(p)}; expected 'cuda' or 'cpu'`,
          { input: 'providers' },
        );
      }
    }
  }
  if (opts.channels !== 'strict' && opts.channels !== 'gray-to-rgb') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `OnnxTeacher: channels must be 'strict' or 'gray-to-rgb', got ${JSON.stringify(opts.channels)}`,
      { input: 'channels' },
    );
  }
}
