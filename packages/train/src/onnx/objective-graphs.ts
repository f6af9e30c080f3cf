// Every training method's objective as step-graph nodes: the loss and its gradient with respect to
// the student's features, written out analytically (the same formulas as the losses package's
// custom gradients, whose golden values the tests hold both engines to).
import { assertUnreachable } from '@compress/core';
import type { ObjectiveBuilder, ObjectiveParts, Tape } from '@compress/students';
import type { Method } from '../options.js';

/** The sizes and settings an objective graph is built for. */
export interface ObjectiveGraphOptions {
  method: Method;
  teacherDim: number;
  studentDim: number;
  /** K (CompRess variants). */
  queueSize: number;
  temperature: number;
  /** Classes of the classifier (CC: clusters; supervised: labels). */
  classes: number;
  /** Reg-BN's BatchNorm1d epsilon and running-statistics momentum (PyTorch's). */
  bnEpsilon: number;
  bnMomentum: number;
}

/** Per-step inputs an engine feeds, by name. */
export const TEACHER = 'teacher';
export const TEACHER_QUEUE = 'queue.teacher';
export const STUDENT_QUEUE = 'queue.student';
export const ONEHOT = 'onehot';
/** Outputs: the rows each queue takes after the step. */
export const TEACHER_ROWS = 'rows.teacher';
export const STUDENT_ROWS = 'rows.student';

const sumRows = (t: Tape, v: string) => t.op('ReduceSum', [v, t.i64([1])], { ints: { keepdims: 1 } });
const sumBatch = (t: Tape, v: string) => t.op('ReduceSum', [v, t.i64([0])], { ints: { keepdims: 0 } });

/** x / ‖x‖₂ per row (no epsilon, as the losses package) and the row norms [N, 1]. */
function normalize(t: Tape, x: string): { unit: string; norms: string } {
  const norms = t.op('Sqrt', [sumRows(t, t.op('Mul', [x, x]))]);
  return { unit: t.op('Div', [x, norms]), norms };
}

/** A linear head y = x·W + b of the objective (W [in, out], as the losses package holds it). */
function head(b: ObjectiveBuilder, name: string, inDim: number, outDim: number) {
  const w = b.parameter(`${name}.weight`, [inDim, outDim]);
  const bias = b.parameter(`${name}.bias`, [outDim]);
  const t = b.tape;
  return {
    y: t.op('Gemm', [b.features.name, w, bias]),
    /** dx, dW, db from dy. */
    backward(dy: string) {
      return {
        dx: t.op('Gemm', [dy, w], { ints: { transB: 1 } }),
        grads: {
          [`${name}.weight`]: t.op('Gemm', [b.features.name, dy], { ints: { transA: 1 } }),
          [`${name}.bias`]: sumBatch(t, dy),
        },
      };
    },
  };
}

/**
 * CompRess: KL(p‖q) of the student's softmax over its similarities to the student queue (or, for
 * one-queue, its head's to the teacher queue) against the teacher's over the teacher queue, at
 * temperature T, batch mean; queues as they are before this batch. Outputs the rows the queues
 * take: the normalised teacher features and the key encoder's (momentum) or the student's
 * (no-momentum) normalised features.
 */
function compress(b: ObjectiveBuilder, o: ObjectiveGraphOptions): ObjectiveParts {
  const t = b.tape;
  const n = b.batch;
  const oneQueue = o.method === 'one-queue';
  const teacher = b.input(TEACHER, [n, o.teacherDim]);
  const qt = b.input(TEACHER_QUEUE, [o.queueSize, o.teacherDim]);
  const qs = oneQueue ? qt : b.input(STUDENT_QUEUE, [o.queueSize, o.studentDim]);
  const hd = oneQueue ? head(b, 'head', o.studentDim, o.teacherDim) : null;
  const h = hd ? hd.y : b.features.name;
  const dh = hd ? o.teacherDim : o.studentDim;
  const tn = normalize(t, teacher).unit;
  const { unit: sn, norms } = normalize(t, h);
  const invT = 1 / o.temperature;
  const lt = t.op('Gemm', [tn, qt], { ints: { transB: 1 }, floats: { alpha: invT } });
  const ls = t.op('Gemm', [sn, qs], { ints: { transB: 1 }, floats: { alpha: invT } });
  const logp = t.op('LogSoftmax', [lt], { ints: { axis: 1 } });
  const logq = t.op('LogSoftmax', [ls], { ints: { axis: 1 } });
  const p = t.op('Exp', [logp]);
  const q = t.op('Exp', [logq]);
  const rowKl = t.op('ReduceSum', [t.op('Mul', [p, t.op('Sub', [logp, logq])]), t.i64([1])], {
    ints: { keepdims: 0 },
  });
  const loss = t.op('ReduceMean', [rowKl], { ints: { keepdims: 0 } });
  // d loss/d sn = (q − p)·Qs / (B·T); through the normalisation: (g − (g·sn) sn) / ‖h‖
  const g = t.op('Mul', [t.op('MatMul', [t.op('Sub', [q, p]), qs]), t.scalar(1 / (n * o.temperature))]);
  const dhv = t.op('Div', [t.op('Sub', [g, t.op('Mul', [sumRows(t, t.op('Mul', [g, sn])), sn])]), norms]);
  const back = hd ? hd.backward(dhv) : { dx: dhv, grads: {} };
  const studentRows =
    o.method === 'momentum' ? normalize(t, b.keyFeatures!.name).unit : o.method === 'no-momentum' ? sn : null;
  return {
    loss,
    dfeatures: back.dx,
    grads: back.grads,
    outputs: {
      [TEACHER_ROWS]: { value: tn, shape: [n, o.teacherDim] },
      ...(studentRows ? { [STUDENT_ROWS]: { value: studentRows, shape: [n, dh] } } : {}),
    },
  };
}

/**
 * Reg / Reg-BN: MSE (mean over B·Dt entries) between a linear projection of the student (Reg-BN:
 * then BatchNorm1d in train mode, running statistics with the unbiased variance) and the
 * L2-normalised teacher features.
 */
function reg(b: ObjectiveBuilder, o: ObjectiveGraphOptions): ObjectiveParts {
  const t = b.tape;
  const n = b.batch;
  const d = o.teacherDim;
  const tn = normalize(t, b.input(TEACHER, [n, d])).unit;
  const proj = head(b, 'projection', o.studentDim, d);
  let z = proj.y;
  let bnBackward: ((dz: string) => { dy: string; grads: Record<string, string> }) | null = null;
  const next: Record<string, string> = {};
  if (o.method === 'reg-bn') {
    const gamma = b.parameter('bn.weight', [d]);
    const beta = b.parameter('bn.bias', [d]);
    const runningMean = b.buffer('bn.running_mean', [d]);
    const runningVar = b.buffer('bn.running_var', [d]);
    const mean = t.op('ReduceMean', [proj.y], { intLists: { axes: [0] }, ints: { keepdims: 0 } });
    const centred = t.op('Sub', [proj.y, mean]);
    const variance = t.op('ReduceMean', [t.op('Mul', [centred, centred])], {
      intLists: { axes: [0] },
      ints: { keepdims: 0 },
    });
    const invStd = t.op('Reciprocal', [t.op('Sqrt', [t.op('Add', [variance, t.scalar(o.bnEpsilon)])])]);
    const xhat = t.op('Mul', [centred, invStd]);
    z = t.op('Add', [t.op('Mul', [xhat, gamma]), beta]);
    const mom = o.bnMomentum;
    next['bn.running_mean'] = t.op('Add', [
      t.op('Mul', [runningMean, t.scalar(1 - mom)]),
      t.op('Mul', [mean, t.scalar(mom)]),
    ]);
    next['bn.running_var'] = t.op('Add', [
      t.op('Mul', [runningVar, t.scalar(1 - mom)]),
      t.op('Mul', [variance, t.scalar((mom * n) / (n - 1))]),
    ]);
    bnBackward = (dz) => {
      const dBeta = sumBatch(t, dz);
      const dGamma = sumBatch(t, t.op('Mul', [dz, xhat]));
      const inner = t.op('Sub', [
        t.op('Sub', [dz, t.op('Mul', [dBeta, t.scalar(1 / n)])]),
        t.op('Mul', [xhat, t.op('Mul', [dGamma, t.scalar(1 / n)])]),
      ]);
      return {
        dy: t.op('Mul', [inner, t.op('Mul', [gamma, invStd])]),
        grads: { 'bn.weight': dGamma, 'bn.bias': dBeta },
      };
    };
  }
  const diff = t.op('Sub', [z, tn]);
  const loss = t.op('ReduceMean', [t.op('Mul', [diff, diff])], { ints: { keepdims: 0 } });
  const dz = t.op('Mul', [diff, t.scalar(2 / (n * d))]);
  const bn = bnBackward?.(dz);
  const back = proj.backward(bn ? bn.dy : dz);
  return { loss, dfeatures: back.dx, grads: { ...back.grads, ...bn?.grads }, next };
}

/** CC and supervised: cross-entropy (batch mean) of a linear classifier; labels come one-hot. */
function classifier(b: ObjectiveBuilder, o: ObjectiveGraphOptions): ObjectiveParts {
  const t = b.tape;
  const n = b.batch;
  const onehot = b.input(ONEHOT, [n, o.classes]);
  const cls = head(b, 'classifier', o.studentDim, o.classes);
  const logp = t.op('LogSoftmax', [cls.y], { ints: { axis: 1 } });
  const loss = t.op('Neg', [
    t.op('Div', [t.op('ReduceSum', [t.op('Mul', [onehot, logp])], { ints: { keepdims: 0 } }), t.scalar(n)]),
  ]);
  const dlogits = t.op('Div', [t.op('Sub', [t.op('Exp', [logp]), onehot]), t.scalar(n)]);
  const back = cls.backward(dlogits);
  return { loss, dfeatures: back.dx, grads: back.grads };
}

/** The objective of `o.method` as a step-graph builder. */
export function objectiveGraph(o: ObjectiveGraphOptions): (b: ObjectiveBuilder) => ObjectiveParts {
  switch (o.method) {
    case 'momentum':
    case 'no-momentum':
    case 'one-queue':
      return (b) => compress(b, o);
    case 'reg':
    case 'reg-bn':
      return (b) => reg(b, o);
    case 'cc':
    case 'supervised':
      return (b) => classifier(b, o);
    default:
      return assertUnreachable(o.method, 'method');
  }
}
