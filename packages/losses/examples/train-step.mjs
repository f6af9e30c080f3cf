// CompRess training steps on the tfjs wasm backend. To stay self-contained, the "student network"
// here is a trainable B×Ds feature matrix (a real student is a network whose output goes in its
// place). Run after `pnpm build`: node examples/train-step.mjs
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { CompressLoss } from '../dist/index.js';

await tf.setBackend('wasm');
const [B, Dt, Ds] = [64, 128, 32];

const loss = new CompressLoss({
  variant: 'one-queue', // or 'momentum' (pass key-encoder features) / 'no-momentum'
  teacherDim: Dt,
  studentDim: Ds,
  queueSize: 4096, // the paper's (and default) K is 128000
  batchSize: B,
  datasetSize: 50000, // optional: refuses K ≥ N, warns when K > N/2
  seed: 0,
});
const teacherFeats = tf.randomNormal([B, Dt]); // constants: what the teacher says about the batch
const studentFeats = tf.variable(tf.randomNormal([B, Ds])); // stands in for the student's output
const optimizer = tf.train.sgd(0.5);

for (let step = 0; step < 30; step++) {
  // 1. the loss inside the tape, against the queues as they were before this batch
  const { value, grads } = tf.variableGrads(
    () => loss.forward(teacherFeats, studentFeats),
    [studentFeats, ...loss.trainableVariables], // the one-queue head Ds→Dt trains too
  );
  // 2. the optimizer step
  optimizer.applyGradients(grads);
  // 3. the batch joins the queues
  loss.update();
  if (step % 10 === 0) console.log(`step ${step}: loss ${value.dataSync()[0].toFixed(4)}`);
  tf.dispose([value, grads]);
}
const checkpoint = loss.state(); // queues, pointer, step and head; loss.restore(checkpoint) brings them back
console.log(`step ${checkpoint.step}, pointer ${checkpoint.teacherQueue.pointer}, engine ${loss.engineName}`);
loss.dispose();
