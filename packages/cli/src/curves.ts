import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '@compress/core';
import { trainingCurvesPng } from '@compress/eval';
import type { RunDir } from '@compress/train';

/** The loss and k-NN monitor points of a run directory's metrics.jsonl. */
export async function readCurves(
  dir: RunDir,
): Promise<{ loss: [number, number][]; knn: [number, number][]; method: string | null }> {
  let text = '';
  try {
    text = await readFile(dir.file('metrics.jsonl'), 'utf8');
  } catch {
    return { loss: [], knn: [], method: null };
  }
  const loss = new Map<number, number>();
  const knn = new Map<number, number>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line);
    } catch {
      continue; // a line cut by a kill
    }
    // a resumed run writes its steps again from the checkpoint: the later value wins
    if (typeof r.step === 'number' && typeof r.loss === 'number' && r.event === undefined)
      loss.set(r.step, r.loss);
    if (typeof r.step === 'number' && r.monitor === 'knn1' && typeof r.accuracy === 'number')
      knn.set(r.step, r.accuracy * 100);
  }
  let method: string | null = null;
  try {
    method =
      (JSON.parse(await readFile(dir.file('config.json'), 'utf8')) as { method?: string }).method ?? null;
  } catch {}
  const sorted = (m: Map<number, number>) => [...m].sort((a, b) => a[0] - b[0]);
  return { loss: sorted(loss), knn: sorted(knn), method };
}

/** Writes `training-curves.png` (loss and k-NN monitor against steps) into a run directory. */
export async function writeTrainingCurves(dir: RunDir): Promise<string | null> {
  const { loss, knn, method } = await readCurves(dir);
  const png = await trainingCurvesPng(
    [
      { title: 'training loss', yLabel: 'loss', curves: [{ name: 'loss', points: loss }] },
      {
        title: 'k-NN monitor (held-out images)',
        yLabel: '1-NN top-1 (%)',
        curves: [{ name: '1-NN', points: knn }],
        markers: true,
      },
    ],
    { title: `training curves${method ? `: ${method}` : ''}`, xLabel: 'step' },
  );
  if (png === null) return null;
  const file = dir.file('training-curves.png');
  await writeFileAtomic(file, png);
  return file;
}
