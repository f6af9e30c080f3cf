import { describe, expect, it } from 'vitest';
import { formatBytes } from './bytes.js';

describe('formatBytes', () => {
  it('writes bytes in binary units, two decimals from GiB up', () => {
    expect([512, 12 * 1024, 3.4 * 2 ** 20, 1.5 * 2 ** 30, 2 ** 42, 2 ** 70].map(formatBytes)).toEqual([
      '512 B',
      '12.0 KiB',
      '3.4 MiB',
      '1.50 GiB',
      '4.00 TiB',
      '1024.00 EiB',
    ]);
  });
});
