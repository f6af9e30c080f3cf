export { registerWasmTrainingKernels, wasmTrainingKernels } from './kernels/register_all_kernels.js';
