import sharp from 'sharp';

/** Escapes text for SVG. */
export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Renders an SVG document to PNG bytes (librsvg inside sharp). */
export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png({ compressionLevel: 9 }).toBuffer();
}

/** Ten distinguishable colours (Tableau 10), then a hue wheel. */
export function palette(i: number): string {
  const tab10 = [
    '#4e79a7',
    '#f28e2b',
    '#e15759',
    '#76b7b2',
    '#59a14f',
    '#edc948',
    '#b07aa1',
    '#ff9da7',
    '#9c755f',
    '#bab0ac',
  ];
  return i < tab10.length ? tab10[i]! : `hsl(${(i * 137.5) % 360}, 60%, 50%)`;
}

/** White → dark blue ramp for v in [0, 1]. */
export function blues(v: number): string {
  const t = Math.max(0, Math.min(1, v));
  const r = Math.round(247 - t * (247 - 8));
  const g = Math.round(251 - t * (251 - 48));
  const b = Math.round(255 - t * (255 - 107));
  return `rgb(${r},${g},${b})`;
}

export function svgDoc(width: number, height: number, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif"><rect width="${width}" height="${height}" fill="white"/>${body}</svg>`;
}

/** "Nice" axis ticks covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}
