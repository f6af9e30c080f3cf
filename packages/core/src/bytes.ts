/** A byte count in binary units: `512 B`, `12.0 KiB`, `3.4 MiB`, `1.50 GiB`, up to EiB. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = bytes / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u >= 2 ? 2 : 1)} ${units[u]}`;
}
