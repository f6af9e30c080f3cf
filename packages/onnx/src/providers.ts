/**
 * Execution providers of onnxruntime-node: which are installed, and how to install CUDA.
 *
 * onnxruntime-node ships its CPU provider inside the npm package; the CUDA provider's libraries
 * (for CUDA 12) are downloaded by the package's install script from NuGet. compress installs with
 * that script skipped, so CUDA is present only where the user ran it.
 */

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The onnxruntime-node package directory. */
export function onnxruntimeNodeDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('onnxruntime-node/package.json'));
}

/** Where onnxruntime-node keeps its native libraries for this platform. */
export function nativeDir(): string {
  return join(onnxruntimeNodeDir(), 'bin', 'napi-v6', process.platform, process.arch);
}

/** The file whose presence means the CUDA provider is installed. */
export function cudaProviderFile(): string {
  return join(nativeDir(), 'libonnxruntime_providers_cuda.so');
}

/** True when onnxruntime-node's CUDA provider libraries are installed (Linux x64 only). */
export function isCudaInstalled(): boolean {
  return process.platform === 'linux' && process.arch === 'x64' && existsSync(cudaProviderFile());
}

/** What to do to get CUDA, for error messages. */
export function cudaInstallHint(): string {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return `onnxruntime-node has a CUDA provider for Linux x64 only; this is ${process.platform}/${process.arch}: use providers ['cpu']`;
  }
  const script = join(onnxruntimeNodeDir(), 'script', 'install.js');
  return (
    `onnxruntime-node's CUDA provider is not installed (${cudaProviderFile()} is missing): its install script, ` +
    'which downloads the CUDA 12 libraries from NuGet, was skipped. On a machine with CUDA 12 and cuDNN 9, run ' +
    `\`ONNXRUNTIME_NODE_INSTALL=1 node ${script}\` (the same as installing with the flag ` +
    '`--onnxruntime-node-install`; pnpm users can instead allow the build of onnxruntime-node and run ' +
    "`ONNXRUNTIME_NODE_INSTALL=1 pnpm rebuild onnxruntime-node`), or use providers ['cpu']"
  );
}
