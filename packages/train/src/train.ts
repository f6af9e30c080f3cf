// train(...): the whole run on a Trainer — progress, metrics lines, checkpoints, monitor, stop signal.
import type { Student } from '@compress/students';
import { Trainer, type TrainOptions } from './trainer.js';

export interface TrainResult {
  /** The trained student (the caller's to dispose). */
  student: Student;
  /** The student file of the last checkpoint ('' without a run directory). */
  checkpoint: string;
  steps: number;
  /** The engine that ran the steps. */
  engine: 'tfjs' | 'onnxruntime';
  stopped: boolean;
  seconds: number;
  imagesPerSecond: number;
  finalLoss: number;
}

/**
 * Trains a student as the paper does: the same augmented batch to teacher and student, SGD with
 * momentum and weight decay, the step learning-rate schedule, the key encoder's EMA (momentum
 * variant); with a run directory, metrics lines and checkpoints (student, key, optimizer, queues,
 * position) written atomically every `schedule.checkpointEvery` steps and at every epoch end, and
 * `resume` continuing a killed run to the same weights as an unbroken one.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const started = performance.now();
  const trainer = await Trainer.create(options);
  const run = trainer.run;
  const log = options.log ?? (() => {});
  const { schedule, method } = trainer;
  let stopped = false;
  let lastLoss = Number.NaN;
  try {
    for (let e = await trainer.step(); e; e = await trainer.step()) {
      lastLoss = e.loss;
      const step = e.globalStep;
      const metrics = { loss: e.loss, lr: e.lr, 'img/s': e.imagesPerSecond };
      options.onProgress?.({
        phase: `train ${method} (${trainer.engine.name})`,
        done: step,
        total: e.totalSteps,
        unit: 'steps',
        metrics,
      });
      if (run && (step % schedule.logEvery === 0 || step === e.totalSteps)) {
        await run.dir.metric({ epoch: e.epoch + 1, step, ...metrics });
      }
      if (options.signal?.aborted) {
        stopped = true;
        if (run) {
          const checkpoint = await trainer.save();
          log(`stopped: checkpoint at step ${step} in ${checkpoint}; continue with ${run.names.resume}`);
        }
        break;
      }
      if (schedule.monitorEvery > 0 && step % schedule.monitorEvery === 0) {
        const knn = await trainer.monitor();
        if (knn !== null) {
          await run?.dir.metric({ step, monitor: 'knn1', accuracy: knn.accuracy, images: knn.queries });
        }
      }
      if (run && (e.endOfEpoch || step % schedule.checkpointEvery === 0 || step === e.totalSteps)) {
        await trainer.save();
      }
      if (e.endOfEpoch && schedule.monitorEvery === 0) {
        const knn = await trainer.monitor();
        if (knn !== null) {
          log(
            `epoch ${e.epoch + 1}: monitor 1-NN ${(knn.accuracy * 100).toFixed(2)}% on ${knn.queries} held-out images (against ${knn.base} training images)`,
          );
          await run?.dir.metric({
            epoch: e.epoch + 1,
            step,
            monitor: 'knn1',
            accuracy: knn.accuracy,
            images: knn.queries,
          });
        }
      }
    }
    if (run && !stopped && (!trainer.checkpoint || trainer.position.globalStep === 0)) await trainer.save();
  } catch (error) {
    await trainer.close();
    trainer.student.dispose();
    await run?.dir.discardIfUnused();
    throw error;
  }
  await trainer.close();
  const result: TrainResult = {
    student: trainer.student,
    checkpoint: trainer.checkpoint,
    steps: trainer.position.globalStep,
    engine: trainer.engine.name,
    stopped,
    seconds: (performance.now() - started) / 1000,
    imagesPerSecond: trainer.imagesPerSecond,
    finalLoss: lastLoss,
  };
  return result;
}
