import { fileURLToPath } from 'node:url';
import { OnnxTeacher, type OnnxTeacherOptions } from './onnx-teacher.js';

/**
 * Path of the built-in teacher of the `fashion-mnist` preset, shipped in this package
 * (`models/fashion-mnist-teacher.onnx`; see `models/MODEL_CARD.md`).
 */
export function fashionMnistTeacherPath(): string {
  return fileURLToPath(new URL('../models/fashion-mnist-teacher.onnx', import.meta.url));
}

/**
 * The built-in Fashion-MNIST teacher: a SimCLR ResNet trained by `tooling/teacher-train`. It takes
 * the ImageBatch as it is (NHWC [B, 28, 28, 1], values in [0, 1]) and normalises inside.
 */
export function createFashionMnistTeacher(
  options: Omit<OnnxTeacherOptions, 'inputLayout' | 'normalize' | 'channels' | 'outputName'> = {},
): Promise<OnnxTeacher> {
  return OnnxTeacher.create(fashionMnistTeacherPath(), {
    ...options,
    inputLayout: 'NHWC',
    normalize: 'none',
    channels: 'strict',
  });
}
