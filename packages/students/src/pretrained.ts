import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CompressError } from '@compress/core';
import { OnnxTeacher, type OnnxTeacherOptions } from '@compress/teacher';

/** Names of the released students, as `loadPretrained` takes them. */
export const pretrainedStudents = [
  'fashion-mnist/momentum',
  'fashion-mnist/one-queue',
  'fashion-mnist/no-momentum',
] as const;

export type PretrainedName = (typeof pretrainedStudents)[number];

/** One row of a released student's evaluation (percent, on the full Fashion-MNIST splits). */
export interface PretrainedNumbers {
  nn: number;
  knn20?: number;
  linear: number;
  ca: number;
  caSd?: number;
}

/** A released student's model card, as `pretrained/index.json` holds it. */
export interface PretrainedCard {
  name: PretrainedName;
  /** ONNX file, relative to the package's `pretrained/` folder. */
  file: string;
  sha256: string;
  bytes: number;
  /** The student network (`createStudent` name), its width and its feature dimension. */
  arch: string;
  width: number;
  dim: number;
  /** Input: NHWC `[batch, size, size, channels]` pixels in [0, 1]; the normalisation is inside. */
  input: { layout: 'NHWC'; size: number; channels: number; mean: number[]; std: number[] };
  /** How it was trained: the reproduction's preset, budget, method and its config. */
  recipe: Record<string, unknown>;
  /** Its row of the reproduction's table, and the teacher's and its random init's for scale. */
  numbers: { student: PretrainedNumbers; teacher: PretrainedNumbers; randomInit: PretrainedNumbers };
  /** When and where it was trained. */
  trained: { date: string; cpu: string; engine: string; trainSeconds: number };
  /**
   * What the released file computes, for checking a copy: the first test images' features
   * (`features`, `images` rows of `dim`) and 1-NN accuracy of test images against training images.
   */
  check: { images: number; features: number[]; knn: { train: number; test: number; accuracy: number } };
}

const pretrainedDir = new URL('../pretrained/', import.meta.url);

let cards: Map<string, PretrainedCard> | undefined;

function index(): Map<string, PretrainedCard> {
  if (!cards) {
    const file = fileURLToPath(new URL('index.json', pretrainedDir));
    const list = JSON.parse(readFileSync(file, 'utf8')) as PretrainedCard[];
    cards = new Map(list.map((card) => [card.name, card]));
  }
  return cards;
}

/** The model card of a released student; an unknown name is a NOT_FOUND error listing the names. */
export function pretrainedCard(name: string): PretrainedCard {
  const card = index().get(name);
  if (!card) {
    throw new CompressError(
      'NOT_FOUND',
      `no released student "${name}"; expected one of: ${pretrainedStudents.join(', ')}`,
      { input: 'name' },
    );
  }
  return card;
}

/** Path of a released student's ONNX file (NHWC pixels in [0, 1] in, `dim` features out). */
export function pretrainedPath(name: string): string {
  return fileURLToPath(new URL(pretrainedCard(name).file, pretrainedDir));
}

/**
 * Loads a released student — trained by the full Fashion-MNIST reproduction and shipped in this
 * package as ONNX with its normalisation inside — on onnxruntime-node. The result is a `Teacher`:
 * `embed(batch)` extracts features of an ImageBatch (NHWC [B, 28, 28, 1], values in [0, 1]), and
 * it can teach a smaller student in turn. The file's SHA-256 is checked against its model card.
 *
 * ```ts
 * const student = await loadPretrained('fashion-mnist/momentum');
 * const features = await student.embed(batch); // B × student.dim
 * ```
 */
export async function loadPretrained(
  name: string,
  options: Omit<OnnxTeacherOptions, 'inputLayout' | 'normalize' | 'channels' | 'outputName'> = {},
): Promise<OnnxTeacher> {
  const card = pretrainedCard(name);
  const path = pretrainedPath(name);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new CompressError('NOT_FOUND', `${name}: cannot read ${path}: ${(error as Error).message}`, {
      input: 'name',
      cause: error,
    });
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== card.sha256) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `${name}: ${path} has SHA-256 ${sha256}, expected ${card.sha256} (its model card); reinstall the package`,
      { input: 'name' },
    );
  }
  return OnnxTeacher.create(path, {
    ...options,
    inputLayout: 'NHWC',
    normalize: 'none',
    channels: 'strict',
  });
}
