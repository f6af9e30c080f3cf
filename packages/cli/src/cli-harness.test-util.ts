// What the command-line tests share: running the built `compress-ssl` as a user does, checking that
// a failure is one message with its exit code, and the small module teacher the tests train with.
import { spawn } from 'node:child_process';
import { expect } from 'vitest';

const bin = new URL('../dist/bin.js', import.meta.url).pathname;

/** What a `compress-ssl` run left: exit code (or signal), stdout, stderr and wall time. */
export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs `compress-ssl args…` (the package's build) in a child process, with the environment of the
 * tests minus the variables that change its behaviour (debug output, a Kubernetes job index), plus `env`.
 */
export function cli(args: readonly string[], env: Record<string, string> = {}): Promise<Ran> {
  const started = performance.now();
  const { COMPRESS_DEBUG: _, JOB_COMPLETION_INDEX: __, ...base } = process.env;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...base, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started }),
    );
  });
}

/** A failed command: exit `code`, one `compress-ssl: …` message matching `pattern`, no stack trace. */
export function expectOneMessage(r: Ran, code: number, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  const messages = r.stderr.split('\n').filter((l) => l.startsWith('compress-ssl: '));
  expect(messages, r.stderr).toHaveLength(1);
  expect(messages[0]).toMatch(pattern);
  expect(r.stderr, 'no stack trace without --debug').not.toMatch(/^\s+at /m);
}

/**
 * A tiny deterministic teacher as a user would write one, as module source: a fixed random
 * projection of the pixels to `dim` features. `killAt` > 0 makes it kill its own process (SIGKILL)
 * in that call of `embed`, as a machine going away would.
 */
export function projectionTeacherSource(fingerprint = 'projection-16', dim = 16, killAt = 0): string {
  return `let calls = 0;
export default {
  dim: ${dim},
  fingerprint: '${fingerprint}',
  async embed(batch) {
    if (++calls === ${killAt}) process.kill(process.pid, 'SIGKILL');
    const [b, h, w, c] = batch.shape;
    const per = h * w * c;
    const out = new Float32Array(b * 16);
    for (let i = 0; i < b; i++)
      for (let j = 0; j < 16; j++) {
        let s = 0;
        for (let p = 0; p < per; p += 7) s += batch.images[i * per + p] * Math.sin(1 + j * 13.7 + p * 0.61);
        out[i * 16 + j] = s;
      }
    return { rows: b, dim: 16, data: out };
  },
  dispose() {},
};`;
}
