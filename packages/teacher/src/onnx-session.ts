import { CompressError } from '@compress/core';
import {
  createSession,
  cudaInstallHint,
  isCudaInstalled,
  type OrtSession,
  type Provider,
} from '@compress/onnx';
import type { ResolvedOnnxTeacherOptions } from './onnx-teacher-options.js';

/**
 * Opens the teacher's session with @compress/onnx's session factory on the providers the options
 * ask for: `'auto'` tries CUDA where it is installed and falls back to the CPU; an explicit CUDA
 * request where it is missing is a BACKEND_UNAVAILABLE error that says how to install it.
 */
export async function openSession(
  bytes: Uint8Array,
  source: string,
  opts: ResolvedOnnxTeacherOptions,
): Promise<{ session: OrtSession; provider: Provider; reason: string }> {
  const create = async (providers: readonly Provider[]) => {
    try {
      return await createSession(bytes, {
        threads: opts.threads,
        providers,
        spinning: opts.spinning,
        user: 'OnnxTeacher',
      });
    } catch (error) {
      if (error instanceof CompressError) throw error;
      const message = String((error as Error)?.message ?? error);
      if (
        providers.includes('cuda') &&
        /cuda|provider|\.so/i.test(message) &&
        !/protobuf|model/i.test(message)
      ) {
        throw new CompressError(
          'BACKEND_UNAVAILABLE',
          `OnnxTeacher ${source}: onnxruntime could not start the CUDA provider: ${message}. Check the CUDA 12 and cuDNN 9 libraries (LD_LIBRARY_PATH), or use providers ['cpu']`,
          { input: 'providers', cause: error },
        );
      }
      throw new CompressError(
        'CORRUPT_INPUT',
        `OnnxTeacher: cannot load ${source} as an ONNX model: ${message}`,
        { input: source, cause: error },
      );
    }
  };

  if (opts.providers === 'auto') {
    if (!isCudaInstalled()) {
      return {
        session: await create(['cpu']),
        provider: 'cpu',
        reason: "providers 'auto': onnxruntime-node's CUDA provider is not installed",
      };
    }
    try {
      return {
        session: await create(['cuda', 'cpu']),
        provider: 'cuda',
        reason: "providers 'auto': CUDA is installed",
      };
    } catch (error) {
      if (!(error instanceof CompressError) || error.code !== 'BACKEND_UNAVAILABLE') throw error;
      return {
        session: await create(['cpu']),
        provider: 'cpu',
        reason: `providers 'auto': CUDA is installed but did not start (${error.message})`,
      };
    }
  }
  const providers = opts.providers;
  if (providers[0] === 'cuda' && !isCudaInstalled()) {
    throw new CompressError(
      'BACKEND_UNAVAILABLE',
      `OnnxTeacher ${source}: providers ${JSON.stringify(providers)} asks for CUDA, but ${cudaInstallHint()}`,
      {
        input: 'providers',
      },
    );
  }
  const usable = providers.filter((p) => p !== 'cuda' || isCudaInstalled());
  const session = await create(usable);
  const provider = usable[0]!;
  return { session, provider, reason: `providers ${JSON.stringify(providers)}` };
}
