/**
 * The tarballs users install: `pnpm pack` each package, install the tarballs into an empty project
 * outside the workspace with npm, and run the package's README example there.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { packagesDir, readmeExample, readmeExamples, run } from './workspace.js';

const packed = ['core', 'onnx', 'data', 'cluster', 'losses', 'teacher', 'students', 'eval', 'train'];
/** The packed packages whose README example runs here (the others are installed as dependencies). */
const examples = ['onnx', 'data', 'cluster', 'losses', 'teacher', 'train'];
let app: string;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'compress-pack-'));
  for (const name of packed) {
    await run('pnpm', ['pack', '--pack-destination', dir], { cwd: join(packagesDir, name) });
  }
  const tarballs = (await readdir(dir)).filter((f) => f.endsWith('.tgz')).map((f) => join(dir, f));
  app = join(dir, 'app');
  await run('mkdir', ['-p', app]);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // onnxruntime-node's install script downloads CUDA binaries from outside npm: skipped, as the
  // workspace does (its CPU binaries are in the package).
  await run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      ...tarballs,
      '@tensorflow/tfjs-core@4.22.0',
      '@tensorflow/tfjs-backend-wasm@4.22.0',
    ],
    { cwd: app, env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' }, timeout: 600_000 },
  );
}, 600_000);

describe('packed tarballs installed outside the workspace', () => {
  for (const name of examples) {
    it(`@compress/${name} runs its README example`, async () => {
      const file = join(app, `${name}-example.mjs`);
      await writeFile(file, readmeExample(name)!);
      await run(process.execPath, [file], { cwd: app, timeout: 240_000 });
    });
  }

  it('@compress/students ships its released students: the README loads one and extracts features', async () => {
    const code = readmeExamples('students').find((c) => c.includes('loadPretrained('));
    expect(code, 'packages/students/README.md has no loadPretrained example').toBeDefined();
    const file = join(app, 'students-pretrained.mjs');
    await writeFile(file, code!);
    const { stdout } = await run(process.execPath, [file], { cwd: app, timeout: 240_000 });
    expect(stdout).toMatch(/4 × \d+ features/);
  });

  it('@compress/data compiles its JPEG decoder when installed, and ImageFolder uses it', async () => {
    const addon = join(app, 'node_modules/@compress/data/native/build/jpeg_crop.node');
    if (process.env.COMPRESS_REQUIRE_NATIVE === '1') expect(existsSync(addon)).toBe(true);
    const file = join(app, 'data-decoder.mjs');
    await writeFile(
      file,
      `import { mkdirSync } from 'node:fs';
import sharp from 'sharp';
import { imageFolder } from '@compress/data';
mkdirSync('photos/cls', { recursive: true });
await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3a7' } }).jpeg().toFile('photos/cls/a.jpg');
const ds = await imageFolder('photos');
const { image } = await ds.getResized(0, () => ({ crop: { top: 4, left: 8, height: 32, width: 40 }, height: 16, width: 20 }));
console.log(JSON.stringify({ decoder: ds.decoder, shape: [image.height, image.width, image.channels] }));
`,
    );
    const { stdout } = await run(process.execPath, [file], { cwd: app, timeout: 60_000 });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(result.shape).toEqual([16, 20, 3]);
    expect(result.decoder).toBe(existsSync(addon) ? 'libjpeg-turbo' : 'sharp');
  });
});
