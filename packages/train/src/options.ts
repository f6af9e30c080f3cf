/** What is trained: the three CompRess variants and the paper's Table 1 baselines. */
export const methods = ['momentum', 'no-momentum', 'one-queue', 'reg', 'reg-bn', 'cc', 'supervised'] as const;
export type Method = (typeof methods)[number];

/** The objective's settings. */
export interface LossOptions {
  /** T of the paper (0.04). */
  temperature: number;
  /** K, the number of anchors in each queue. */
  queueSize: number;
  /** m of the key encoder's EMA (momentum variant). */
  keyMomentum: number;
  /** Pseudo-label clusters of the CC baseline. */
  ccClusters: number;
}

/** SGD and the step learning-rate schedule. */
export interface OptimOptions {
  batchSize: number;
  epochs: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  /** Epochs at which the learning rate is multiplied by `gamma`. */
  milestones: number[];
  gamma: number;
  /** Stop after this many steps in all; unset: all epochs. */
  maxSteps?: number;
}

/** When checkpoints, metric lines and the k-NN monitor happen. */
export interface ScheduleOptions {
  /** Write a checkpoint every this many steps (and at every epoch end), when there is a run directory. */
  checkpointEvery: number;
  /** Write a metrics line every this many steps. */
  logEvery: number;
  /** Run the k-NN monitor every this many steps (0: only at the end of each epoch). */
  monitorEvery: number;
}

/** The paper's settings (CompRess, NeurIPS 2020, §4). */
export const paperLoss: LossOptions = {
  temperature: 0.04,
  queueSize: 128000,
  keyMomentum: 0.999,
  ccClusters: 16000,
};
export const paperOptim: OptimOptions = {
  batchSize: 256,
  epochs: 130,
  lr: 0.01,
  momentum: 0.9,
  weightDecay: 1e-4,
  milestones: [90, 120],
  gamma: 0.2,
};
export const defaultSchedule: ScheduleOptions = { checkpointEvery: 1000, logEvery: 50, monitorEvery: 0 };
