// TEMPORARY: a local stand-in for `mergeKnnResults` of @compress/cluster, which is being added there
// with this signature. When it lands, import it from @compress/cluster and delete this file (and
// its test).
import type { KnnResult, Metric } from '@compress/cluster';

/**
 * The global top-k of a base searched in parts: `parts[j].result` is the exact top-k of base rows
 * `offset … offset + rows − 1` for every query (indices local to the part). Returns, for every
 * query, the best k of all parts' candidates, best first, ties to the lower global index; k is the
 * largest of the parts' k (fewer when the parts hold fewer candidates in all).
 */
export function mergeKnnResults(
  parts: readonly { result: KnnResult; offset: number }[],
  metric: Metric,
): KnnResult {
  if (parts.length === 0) throw new RangeError('mergeKnnResults: no parts');
  const queries = parts[0]!.result.indices.length / parts[0]!.result.k;
  const k = Math.min(
    Math.max(...parts.map((p) => p.result.k)),
    parts.reduce((a, p) => a + p.result.k, 0),
  );
  const lowerIsBetter = metric === 'l2';
  const indices = new Int32Array(queries * k);
  const scores = new Float32Array(queries * k);
  const cursor = new Int32Array(parts.length);
  for (let q = 0; q < queries; q++) {
    cursor.fill(0);
    for (let j = 0; j < k; j++) {
      let best = -1;
      let bestScore = 0;
      let bestIndex = 0;
      for (let p = 0; p < parts.length; p++) {
        const { result, offset } = parts[p]!;
        if (cursor[p]! >= result.k) continue;
        const at = q * result.k + cursor[p]!;
        const s = result.scores[at]!;
        const i = offset + result.indices[at]!;
        const better =
          best < 0 || (lowerIsBetter ? s < bestScore : s > bestScore) || (s === bestScore && i < bestIndex);
        if (better) {
          best = p;
          bestScore = s;
          bestIndex = i;
        }
      }
      cursor[best] = cursor[best]! + 1;
      indices[q * k + j] = bestIndex;
      scores[q * k + j] = bestScore;
    }
  }
  return { indices, scores, k };
}
