import { CompressError } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import { createStudent } from './models/registry.js';
import type { Student } from './models/student.js';
import type { Module } from './nn/module.js';

/** Copies every parameter and buffer of `from` into `to` (same architecture), exactly. */
export function copyState(from: Module, to: Module): void {
  const src = from.stateDict();
  const dst = to.stateDict();
  if (src.length !== dst.length) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `copyState: modules differ: ${src.length} tensors vs ${dst.length}`,
      { input: 'to' },
    );
  }
  tf.tidy(() => {
    src.forEach(([name, v], i) => {
      const [dName, d] = dst[i]!;
      if (name !== dName || v.shape.join() !== d.shape.join()) {
        throw new CompressError(
          'SHAPE_MISMATCH',
          `copyState: ${name} [${v.shape.join(', ')}] does not match ${dName} [${d.shape.join(', ')}]`,
          { input: 'to' },
        );
      }
      d.assign(tf.clone(v));
    });
  });
}

/**
 * key ← m·key + (1 − m)·student for every parameter (MoCo's momentum update). Buffers are not
 * averaged: the key encoder's BatchNorm statistics come from its own forward passes in train mode.
 */
export function momentumUpdate(key: Module, student: Module, m: number): void {
  const k = key.namedParameters();
  const s = student.namedParameters();
  if (k.length !== s.length) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `momentumUpdate: key has ${k.length} parameters, student ${s.length}`,
      { input: 'key' },
    );
  }
  tf.tidy(() => {
    k.forEach(([, kv], i) => {
      const sv = s[i]![1];
      kv.assign(tf.add(tf.mul(kv, m), tf.mul(sv, 1 - m)));
    });
  });
}

/**
 * The momentum variant's key encoder: an exponential moving average of the student
 * (m = 0.999 in CompRess), created as an exact copy; its forward runs in train mode so its
 * BatchNorm uses and updates its own batch statistics, and nothing records gradients for it.
 */
export class KeyEncoder {
  private constructor(
    readonly model: Student,
    readonly momentum: number,
  ) {}

  /** A copy of `student` (same architecture, options and weights). @param momentum m, @default 0.999 */
  static of(student: Student, momentum = 0.999): KeyEncoder {
    if (!(momentum >= 0 && momentum <= 1)) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `key encoder momentum must be in [0, 1], found ${momentum}`,
        { input: 'momentum' },
      );
    }
    const key = createStudent(student.spec.name, student.options, { initialize: false });
    copyState(student, key);
    return new KeyEncoder(key, momentum);
  }

  /** key ← m·key + (1 − m)·student; call after each optimizer step. */
  update(student: Student): void {
    momentumUpdate(this.model, student, this.momentum);
  }

  /** Key features of a normalised batch (train-mode BatchNorm, no gradient). */
  features(x: tf.Tensor4D): tf.Tensor2D {
    this.model.train();
    return tf.tidy(() => this.model.features(x));
  }

  dispose(): void {
    this.model.dispose();
  }
}
