import type { UserConfig } from 'vitest/config';
export declare const baseConfig: UserConfig;
export default baseConfig;
/** Path of a golden-value file in `<repo>/../shared/golden` (or COMPRESS_GOLDEN_DIR). */
export declare function goldenPath(name: string): string;
