import { esc, palette, svgDoc, svgToPng, ticks } from './svg.js';

/** A curve: points (x, y) in order of x. */
export interface Curve {
  name: string;
  points: readonly (readonly [number, number])[];
}

/** One panel of {@link trainingCurvesPng}: curves sharing a y axis. */
export interface CurvePanel {
  title: string;
  yLabel: string;
  curves: readonly Curve[];
  /** Markers on the points (sparse curves such as a monitor's). @default false */
  markers?: boolean;
}

/**
 * Training curves as one PNG: panels stacked over a shared x axis (steps), e.g. the loss and the
 * k-NN monitor of a run. Panels without points are left out; null when none has any.
 */
export async function trainingCurvesPng(
  panels: readonly CurvePanel[],
  options: { title?: string; xLabel?: string } = {},
): Promise<Buffer | null> {
  const shown = panels.filter((p) => p.curves.some((c) => c.points.length > 0));
  if (shown.length === 0) return null;
  const xs = shown.flatMap((p) => p.curves.flatMap((c) => c.points.map(([x]) => x)));
  const [xlo, xhi] = [Math.min(...xs), Math.max(...xs)];
  const left = 70;
  const w = 560;
  const h = 200;
  const gap = 70;
  // a legend column right of the plots when a panel has several curves
  const legend = panels.some((p) => p.curves.length > 1)
    ? 40 + 6.5 * Math.max(...panels.flatMap((p) => p.curves.map((c) => c.name.length)))
    : 0;
  let top = options.title ? 50 : 20;
  const X = (x: number) => left + ((x - xlo) / (xhi - xlo || 1)) * w;
  const parts: string[] = [];
  if (options.title)
    parts.push(
      `<text x="${left + w / 2}" y="28" font-size="16" text-anchor="middle">${esc(options.title)}</text>`,
    );
  for (const panel of shown) {
    const ys = panel.curves.flatMap((c) => c.points.map(([, y]) => y));
    const [ylo, yhi] = [Math.min(...ys), Math.max(...ys)];
    const pad = (yhi - ylo) * 0.1 || 1;
    const [lo, hi] = [ylo - pad, yhi + pad];
    const Y = (v: number) => top + h - ((v - lo) / (hi - lo || 1)) * h;
    parts.push(`<text x="${left}" y="${top - 8}" font-size="13">${esc(panel.title)}</text>`);
    for (const t of ticks(lo, hi)) {
      parts.push(`<line x1="${left}" x2="${left + w}" y1="${Y(t)}" y2="${Y(t)}" stroke="#e5e5e5"/>`);
      parts.push(`<text x="${left - 6}" y="${Y(t) + 4}" font-size="11" text-anchor="end">${t}</text>`);
    }
    for (const t of ticks(xlo, xhi)) {
      parts.push(`<line x1="${X(t)}" x2="${X(t)}" y1="${top}" y2="${top + h}" stroke="#f0f0f0"/>`);
      parts.push(`<text x="${X(t)}" y="${top + h + 16}" font-size="11" text-anchor="middle">${t}</text>`);
    }
    parts.push(
      `<text transform="translate(18,${top + h / 2}) rotate(-90)" font-size="12" text-anchor="middle">${esc(panel.yLabel)}</text>`,
    );
    panel.curves.forEach((c, i) => {
      const colour = palette(i);
      parts.push(
        `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${c.points.map(([x, y]) => `${X(x)},${Y(y)}`).join(' ')}"/>`,
      );
      if (panel.markers) {
        for (const [x, y] of c.points)
          parts.push(`<circle cx="${X(x)}" cy="${Y(y)}" r="3.5" fill="${colour}"/>`);
      }
      if (legend > 0) {
        parts.push(
          `<rect x="${left + w + 16}" y="${top + 4 + i * 16}" width="10" height="10" fill="${colour}"/>`,
        );
        parts.push(
          `<text x="${left + w + 30}" y="${top + 13 + i * 16}" font-size="11">${esc(c.name)}</text>`,
        );
      }
    });
    top += h + gap;
  }
  const bottom = top - gap + 40;
  if (options.xLabel)
    parts.push(
      `<text x="${left + w / 2}" y="${bottom - 6}" font-size="12" text-anchor="middle">${esc(options.xLabel)}</text>`,
    );
  return svgToPng(svgDoc(left + w + 30 + legend, bottom + 10, parts.join('')));
}
