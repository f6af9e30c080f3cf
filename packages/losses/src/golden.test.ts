// The CompRess loss against PyTorch golden values (read at run time, every case the file holds), on
// the tfjs `cpu` backend (tfjs and onnxruntime engines) and the `wasm` backend (wasm, tfjs and, as
// `auto` picks it, onnxruntime engines). The intermediates (logits, p, log q) come from each engine's
// own similarities: tfjs ops, the wasm heap products and SIMD softmax pass, the onnxruntime graph.
import { readFileSync } from 'node:fs';
import { goldenPath } from '@compress/vitest-config';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { CompressLoss } from './compress-loss.js';
import type { LossVariant } from './variants/spec.js';

type M = number[][];
interface Step {
  inputs: { teacher_feats: M; student_feats: M; key_feats?: M };
  ptr_before: number;
  rows_written: number[];
  intermediate: { teacher_logits: M; student_logits: M; teacher_probs: M; student_log_probs: M };
  loss: number;
  grad_student_feats: M;
  grad_W?: M;
  grad_b?: number[];
  queues_after: { teacher: { values: M; ptr: number }; student?: { values: M; ptr: number } };
}
interface Case {
  name: string;
  variant: LossVariant;
  T: number;
  B: number;
  K: number;
  Dt: number;
  Ds: number;
  initial: { queue_teacher: M; queue_student?: M; ptr: number; W?: M; b?: number[] };
  steps: Step[];
}

const golden = JSON.parse(readFileSync(goldenPath('compress-loss.json'), 'utf8')) as {
  description: string;
  cases: Case[];
};
// The tolerance the file states: |got − want| ≤ rel·|want| + abs·max|want|.
const tol = /\|got - want\| <= ([0-9.e-]+) \* \|want\| \+ ([0-9.e-]+) \* max\|want\|/.exec(
  golden.description,
);
if (tol === null) throw new Error('compress-loss.json: cannot find the stated tolerance in its description');
const REL = Number(tol[1]);
const ABS = Number(tol[2]);

const flat = (m: M | number[]): Float32Array => Float32Array.from((m as number[][]).flat() as number[]);

function expectClose(got: ArrayLike<number>, want: M | number[] | number, what: string): void {
  const w = typeof want === 'number' ? [want] : ((want as number[][]).flat() as number[]);
  expect(got.length, `${what}: length`).toBe(w.length);
  let maxAbs = 0;
  for (const v of w) maxAbs = Math.max(maxAbs, Math.abs(v));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < w.length; i++) {
    const excess = Math.abs(got[i]! - w[i]!) - (REL * Math.abs(w[i]!) + ABS * maxAbs);
    if (excess > worst) {
      worst = excess;
      at = i;
    }
  }
  expect(at, `${what}: entry ${at} is ${got[at]}, expected ${w[at]} (beyond tolerance by ${worst})`).toBe(-1);
}

const setups = [
  { backend: 'cpu', engine: 'tfjs', expectEngine: 'tfjs' },
  { backend: 'wasm', engine: 'wasm', expectEngine: 'wasm' },
  { backend: 'wasm', engine: 'tfjs', expectEngine: 'tfjs' },
  { backend: 'wasm', engine: 'auto', expectEngine: 'onnxruntime' },
  { backend: 'cpu', engine: 'onnxruntime', expectEngine: 'onnxruntime' },
] as const;

describe.each(setups)('golden compress-loss.json on $backend (engine $expectEngine)', (setup) => {
  it.each(golden.cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await tf.setBackend(setup.backend);
    await tf.ready();
    expect(tf.getBackend()).toBe(setup.backend);
    const loss = new CompressLoss({
      variant: c.variant,
      teacherDim: c.Dt,
      studentDim: c.Ds,
      queueSize: c.K,
      temperature: c.T,
      batchSize: c.B,
      engine: setup.engine,
      initial: {
        teacherQueue: flat(c.initial.queue_teacher),
        ...(c.initial.queue_student ? { studentQueue: flat(c.initial.queue_student) } : {}),
        pointer: c.initial.ptr,
        ...(c.initial.W && c.initial.b ? { headWeight: flat(c.initial.W), headBias: flat(c.initial.b) } : {}),
      },
    });
    expect(loss.engineName).toBe(setup.expectEngine);
    try {
      for (const [n, step] of c.steps.entries()) {
        const at = `${c.name} step ${n + 1}`;
        const B = step.inputs.teacher_feats.length;
        expect(loss.teacherQueue.pointer, `${at}: pointer before`).toBe(step.ptr_before);
        const teacher = tf.tensor2d(step.inputs.teacher_feats);
        const student = tf.variable(tf.tensor2d(step.inputs.student_feats));
        const key = step.inputs.key_feats ? tf.tensor2d(step.inputs.key_feats) : undefined;
        expect(teacher.shape).toEqual([B, c.Dt]);

        const sim = loss.similarities(teacher, student, key);
        expectClose(sim.teacherLogits, step.intermediate.teacher_logits, `${at}: teacher logits`);
        expectClose(sim.studentLogits, step.intermediate.student_logits, `${at}: student logits`);
        expectClose(sim.teacherProbs, step.intermediate.teacher_probs, `${at}: p`);
        expectClose(sim.studentLogProbs, step.intermediate.student_log_probs, `${at}: log q`);

        const vars = [student, ...loss.trainableVariables];
        const { value, grads } = tf.variableGrads(() => loss.forward(teacher, student, key), vars);
        expectClose(value.dataSync(), step.loss, `${at}: loss`);
        expectClose(grads[student.name]!.dataSync(), step.grad_student_feats, `${at}: d loss/d student`);
        if (loss.head !== null) {
          expectClose(grads[loss.head.weight.name]!.dataSync(), step.grad_W!, `${at}: d loss/d W`);
          expectClose(grads[loss.head.bias.name]!.dataSync(), step.grad_b!, `${at}: d loss/d b`);
        } else {
          expect(step.grad_W).toBeUndefined();
        }

        const rows = loss.update();
        expect(Array.from(rows), `${at}: rows written`).toEqual(step.rows_written);
        expectClose(loss.teacherQueue.values(), step.queues_after.teacher.values, `${at}: teacher queue`);
        expect(loss.teacherQueue.pointer, `${at}: teacher pointer`).toBe(step.queues_after.teacher.ptr);
        if (step.queues_after.student) {
          expectClose(loss.studentQueue!.values(), step.queues_after.student.values, `${at}: student queue`);
          expect(loss.studentQueue!.pointer, `${at}: student pointer`).toBe(step.queues_after.student.ptr);
        } else {
          expect(loss.studentQueue).toBeNull();
        }
        tf.dispose([teacher, student, key, value, ...Object.values(grads)].filter((t) => t !== undefined));
      }
    } finally {
      loss.dispose();
    }
  });
});
