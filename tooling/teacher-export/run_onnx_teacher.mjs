#!/usr/bin/env node
// Runs an ONNX model with compress's OnnxTeacher on images from a raw float32 file (NHWC, values in [0, 1]) and
// writes the features as raw float32. Used by export_teacher.py to compare the ONNX file with PyTorch.
//   node run_onnx_teacher.mjs '{"model": "...", "images": "...", "shape": [B, H, W, C], "options": {...}, "features": "..."}'
import { readFileSync, writeFileSync } from 'node:fs';
import { OnnxTeacher } from '@compress/teacher';

const spec = JSON.parse(process.argv[2] ?? '{}');
const buf = readFileSync(spec.images);
const images = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
const [b] = spec.shape;
const teacher = await OnnxTeacher.create(spec.model, { ...spec.options, providers: ['cpu'], log: false });
const features = await teacher.embed({
  indices: Int32Array.from({ length: b }, (_, i) => i),
  images,
  shape: spec.shape,
});
writeFileSync(
  spec.features,
  new Uint8Array(features.data.buffer, features.data.byteOffset, features.data.byteLength),
);
await teacher.dispose();
