import { CompressError, type Dataset, type FeatureMatrix, Rng } from '@compress/core';
import sharp from 'sharp';
import { UMAP } from 'umap-js';
import { blues, esc, palette, svgDoc, svgToPng, ticks } from './svg.js';

export interface HeatmapOptions {
  title?: string;
  rowTitle?: string;
  colTitle?: string;
}

/**
 * A confusion matrix as a heat-map PNG: cells shaded by their share of the row, with counts.
 * `matrix` is rows × cols, row-major.
 */
export async function confusionHeatmapPng(
  matrix: ArrayLike<number>,
  rowLabels: readonly string[],
  colLabels: readonly string[],
  options: HeatmapOptions = {},
): Promise<Buffer> {
  const rows = rowLabels.length;
  const cols = colLabels.length;
  if (matrix.length !== rows * cols) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `confusionHeatmapPng: matrix has ${matrix.length} cells, expected ${rows}×${cols}`,
      { input: 'matrix' },
    );
  }
  const cell = Math.max(22, Math.min(56, Math.floor(640 / Math.max(rows, cols))));
  const left = 160;
  const top = 60;
  const bottom = 130;
  const width = left + cols * cell + 30;
  const height = top + rows * cell + bottom;
  const parts: string[] = [];
  if (options.title)
    parts.push(
      `<text x="${width / 2}" y="28" font-size="16" text-anchor="middle">${esc(options.title)}</text>`,
    );
  for (let r = 0; r < rows; r++) {
    let total = 0;
    for (let c = 0; c < cols; c++) total += matrix[r * cols + c]!;
    for (let c = 0; c < cols; c++) {
      const v = matrix[r * cols + c]!;
      const share = total > 0 ? v / total : 0;
      const x = left + c * cell;
      const y = top + r * cell;
      parts.push(
        `<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${blues(share)}" stroke="#ddd"/>`,
      );
      if (cell >= 28) {
        parts.push(
          `<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" font-size="${Math.min(12, cell / 3)}" text-anchor="middle" fill="${share > 0.55 ? 'white' : '#222'}">${v}</text>`,
        );
      }
    }
    parts.push(
      `<text x="${left - 6}" y="${top + r * cell + cell / 2 + 4}" font-size="12" text-anchor="end">${esc(rowLabels[r]!)}</text>`,
    );
  }
  for (let c = 0; c < cols; c++) {
    const x = left + c * cell + cell / 2;
    const y = top + rows * cell + 8;
    parts.push(
      `<text transform="translate(${x},${y}) rotate(45)" font-size="12" text-anchor="start">${esc(colLabels[c]!)}</text>`,
    );
  }
  if (options.colTitle) {
    parts.push(
      `<text x="${left + (cols * cell) / 2}" y="${height - 12}" font-size="13" text-anchor="middle">${esc(options.colTitle)}</text>`,
    );
  }
  if (options.rowTitle) {
    parts.push(
      `<text transform="translate(16,${top + (rows * cell) / 2}) rotate(-90)" font-size="13" text-anchor="middle">${esc(options.rowTitle)}</text>`,
    );
  }
  return svgToPng(svgDoc(width, height, parts.join('')));
}

export interface MontageOptions {
  /** Clusters shown (chosen at random). @default 10 */
  clusters?: number;
  /** Images per cluster (chosen at random). @default 12 */
  perCluster?: number;
  /** Side of each tile in pixels. @default 56 */
  tile?: number;
  /** @default 0 */
  seed?: number;
  /** Label of each row, e.g. `cluster 3 → Sneaker`. */
  rowLabel?: (cluster: number) => string;
}

/**
 * A montage PNG of random images from random clusters, one row per cluster (like the paper's
 * cluster figure).
 */
export async function clusterMontagePng(
  dataset: Dataset,
  assignments: ArrayLike<number>,
  options: MontageOptions = {},
): Promise<Buffer> {
  if (assignments.length !== dataset.length) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `clusterMontagePng: ${assignments.length} cluster assignments for a dataset of ${dataset.length} images`,
      { input: 'assignments' },
    );
  }
  const rng = new Rng(options.seed ?? 0);
  const tile = options.tile ?? 56;
  const per = options.perCluster ?? 12;
  const members = new Map<number, number[]>();
  for (let i = 0; i < assignments.length; i++) {
    const c = assignments[i]!;
    let list = members.get(c);
    if (!list) members.set(c, (list = []));
    list.push(i);
  }
  const ids = rng.shuffle([...members.keys()].sort((a, b) => a - b)).slice(0, options.clusters ?? 10);
  ids.sort((a, b) => a - b);
  const labelWidth = options.rowLabel ? 190 : 0;
  const width = labelWidth + per * (tile + 2) + 2;
  const height = ids.length * (tile + 2) + 2;
  const composites: sharp.OverlayOptions[] = [];
  const labels: string[] = [];
  for (const [row, c] of ids.entries()) {
    const list = members.get(c)!;
    const chosen = rng.shuffle(list.slice()).slice(0, per);
    for (const [col, index] of chosen.entries()) {
      const { image } = await dataset.get(index);
      const png = await sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), {
        raw: { width: image.width, height: image.height, channels: image.channels as 1 | 3 | 4 },
      })
        .resize(tile, tile, { fit: 'cover', kernel: 'nearest' })
        .png()
        .toBuffer();
      composites.push({ input: png, left: labelWidth + 2 + col * (tile + 2), top: 2 + row * (tile + 2) });
    }
    if (options.rowLabel) {
      labels.push(
        `<text x="${labelWidth - 8}" y="${2 + row * (tile + 2) + tile / 2 + 5}" font-size="14" text-anchor="end">${esc(options.rowLabel(c))}</text>`,
      );
    }
  }
  const background = await svgToPng(svgDoc(width, height, labels.join('')));
  return sharp(background).composite(composites).png().toBuffer();
}

export interface ScatterOptions {
  /** Points embedded (a seeded random subset). @default 2000 */
  maxPoints?: number;
  /** @default 0 */
  seed?: number;
  title?: string;
  /** UMAP neighbours. @default 15 */
  neighbors?: number;
  classNames?: readonly string[];
}

/** 2-D UMAP embedding (umap-js) of a seeded subset of the rows. Returns points and their rows. */
export function embed2d(
  features: FeatureMatrix,
  options: { maxPoints?: number; seed?: number; neighbors?: number } = {},
): { rows: Int32Array; points: Float32Array } {
  const rng = new Rng(options.seed ?? 0);
  const n = Math.min(features.rows, options.maxPoints ?? 2000);
  const rows = rng.permutation(features.rows).slice(0, n).sort();
  const data: number[][] = Array.from(rows, (r) =>
    Array.from(features.data.subarray(r * features.dim, (r + 1) * features.dim)),
  );
  const umap = new UMAP({
    nComponents: 2,
    nNeighbors: Math.min(options.neighbors ?? 15, n - 1),
    random: () => rng.next(),
  });
  const out = umap.fit(data);
  const points = new Float32Array(n * 2);
  out.forEach((p, i) => {
    points[2 * i] = p[0]!;
    points[2 * i + 1] = p[1]!;
  });
  return { rows, points };
}

/** A 2-D embedding scatter PNG (UMAP) coloured by class, with a legend. */
export async function embeddingScatterPng(
  features: FeatureMatrix,
  labels: ArrayLike<number>,
  options: ScatterOptions = {},
): Promise<Buffer> {
  if (labels.length !== features.rows) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `embeddingScatterPng: ${features.rows} feature rows but ${labels.length} labels`,
      { input: 'labels' },
    );
  }
  const { rows, points } = embed2d(features, options);
  let minX = Infinity;
  let maxX = -Infinity;
  let minY = Infinity;
  let maxY = -Infinity;
  for (let i = 0; i < rows.length; i++) {
    minX = Math.min(minX, points[2 * i]!);
    maxX = Math.max(maxX, points[2 * i]!);
    minY = Math.min(minY, points[2 * i + 1]!);
    maxY = Math.max(maxY, points[2 * i + 1]!);
  }
  const size = 640;
  const pad = 20;
  const legend = 170;
  const top = options.title ? 40 : 10;
  const sx = (x: number) => pad + ((x - minX) / (maxX - minX || 1)) * (size - 2 * pad);
  const sy = (y: number) => top + ((y - minY) / (maxY - minY || 1)) * (size - 2 * pad);
  const parts: string[] = [];
  if (options.title)
    parts.push(
      `<text x="${(size + legend) / 2}" y="26" font-size="16" text-anchor="middle">${esc(options.title)}</text>`,
    );
  const classes = new Set<number>();
  for (let i = 0; i < rows.length; i++) {
    const l = labels[rows[i]!]!;
    classes.add(l);
    parts.push(
      `<circle cx="${sx(points[2 * i]!).toFixed(1)}" cy="${sy(points[2 * i + 1]!).toFixed(1)}" r="2.4" fill="${palette(l)}" fill-opacity="0.8"/>`,
    );
  }
  [...classes]
    .sort((a, b) => a - b)
    .forEach((l, i) => {
      const y = top + 10 + i * 20;
      parts.push(`<circle cx="${size + 10}" cy="${y}" r="6" fill="${palette(l)}"/>`);
      parts.push(
        `<text x="${size + 22}" y="${y + 4}" font-size="12">${esc(options.classNames?.[l] ?? `class ${l}`)}</text>`,
      );
    });
  return svgToPng(svgDoc(size + legend, size + top - pad + 10, parts.join('')));
}

export interface BarChartOptions {
  title?: string;
  yLabel?: string;
  /** Fixed y range; by default [0, max]. */
  yRange?: [number, number];
}

/** A grouped bar chart PNG: one group per category, one bar per series. */
export async function barChartPng(
  categories: readonly string[],
  series: readonly { name: string; values: readonly (number | null)[] }[],
  options: BarChartOptions = {},
): Promise<Buffer> {
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const [lo, hi] = options.yRange ?? [0, Math.max(1, ...all)];
  const groupWidth = Math.max(48, series.length * 18 + 16);
  const left = 60;
  const top = options.title ? 50 : 20;
  const plotH = 320;
  const width = left + categories.length * groupWidth + 150;
  const height = top + plotH + 150;
  const y = (v: number) => top + plotH - ((v - lo) / (hi - lo || 1)) * plotH;
  const parts: string[] = [];
  if (options.title)
    parts.push(
      `<text x="${width / 2}" y="28" font-size="16" text-anchor="middle">${esc(options.title)}</text>`,
    );
  for (const t of ticks(lo, hi)) {
    parts.push(`<line x1="${left}" x2="${width - 20}" y1="${y(t)}" y2="${y(t)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${left - 6}" y="${y(t) + 4}" font-size="11" text-anchor="end">${t}</text>`);
  }
  if (options.yLabel)
    parts.push(
      `<text transform="translate(16,${top + plotH / 2}) rotate(-90)" font-size="12" text-anchor="middle">${esc(options.yLabel)}</text>`,
    );
  const barW = (groupWidth - 16) / Math.max(1, series.length);
  categories.forEach((cat, g) => {
    const gx = left + g * groupWidth + 8;
    series.forEach((s, i) => {
      const v = s.values[g];
      if (v === null || v === undefined) return;
      const yy = y(Math.max(lo, v));
      parts.push(
        `<rect x="${gx + i * barW}" y="${yy}" width="${barW - 1}" height="${top + plotH - yy}" fill="${palette(i)}"><title>${esc(`${s.name}: ${v}`)}</title></rect>`,
      );
    });
    parts.push(
      `<text transform="translate(${gx + (groupWidth - 16) / 2},${top + plotH + 10}) rotate(40)" font-size="12">${esc(cat)}</text>`,
    );
  });
  series.forEach((s, i) => {
    parts.push(
      `<rect x="${left + i * 110}" y="${height - 22}" width="12" height="12" fill="${palette(i)}"/>`,
    );
    parts.push(`<text x="${left + i * 110 + 16}" y="${height - 12}" font-size="12">${esc(s.name)}</text>`);
  });
  return svgToPng(svgDoc(width, height, parts.join('')));
}

export interface LineChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Log-scale x axis (e.g. queue size). @default false */
  logX?: boolean;
}

/** A line chart PNG with markers: one line per series over shared x values. */
export async function lineChartPng(
  xs: readonly number[],
  series: readonly { name: string; values: readonly (number | null)[] }[],
  options: LineChartOptions = {},
): Promise<Buffer> {
  const fx = (x: number) => (options.logX ? Math.log10(x) : x);
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const ylo = Math.min(...all);
  const yhi = Math.max(...all);
  const pad = (yhi - ylo) * 0.1 || 1;
  const [lo, hi] = [ylo - pad, yhi + pad];
  const xlo = fx(Math.min(...xs));
  const xhi = fx(Math.max(...xs));
  const left = 70;
  const top = options.title ? 50 : 20;
  const w = 560;
  const h = 320;
  const X = (x: number) => left + ((fx(x) - xlo) / (xhi - xlo || 1)) * w;
  const Y = (v: number) => top + h - ((v - lo) / (hi - lo || 1)) * h;
  const parts: string[] = [];
  if (options.title)
    parts.push(
      `<text x="${left + w / 2}" y="28" font-size="16" text-anchor="middle">${esc(options.title)}</text>`,
    );
  for (const t of ticks(lo, hi)) {
    parts.push(`<line x1="${left}" x2="${left + w}" y1="${Y(t)}" y2="${Y(t)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${left - 6}" y="${Y(t) + 4}" font-size="11" text-anchor="end">${t}</text>`);
  }
  for (const x of xs)
    parts.push(`<text x="${X(x)}" y="${top + h + 18}" font-size="11" text-anchor="middle">${x}</text>`);
  if (options.xLabel)
    parts.push(
      `<text x="${left + w / 2}" y="${top + h + 42}" font-size="12" text-anchor="middle">${esc(options.xLabel)}</text>`,
    );
  if (options.yLabel)
    parts.push(
      `<text transform="translate(18,${top + h / 2}) rotate(-90)" font-size="12" text-anchor="middle">${esc(options.yLabel)}</text>`,
    );
  series.forEach((s, i) => {
    const pts = xs
      .map((x, j) => [x, s.values[j]] as const)
      .filter((p): p is readonly [number, number] => p[1] !== null && p[1] !== undefined);
    parts.push(
      `<polyline fill="none" stroke="${palette(i)}" stroke-width="2" points="${pts.map(([x, v]) => `${X(x)},${Y(v)}`).join(' ')}"/>`,
    );
    for (const [x, v] of pts) parts.push(`<circle cx="${X(x)}" cy="${Y(v)}" r="4" fill="${palette(i)}"/>`);
    parts.push(
      `<rect x="${left + i * 130}" y="${top + h + 54}" width="12" height="12" fill="${palette(i)}"/>`,
    );
    parts.push(`<text x="${left + i * 130 + 16}" y="${top + h + 64}" font-size="12">${esc(s.name)}</text>`);
  });
  return svgToPng(svgDoc(left + w + 30, top + h + 80, parts.join('')));
}
