#!/usr/bin/env node
// Compiles native/jpeg_crop.c (the libjpeg-turbo crop decoder, a Node-API addon) into
// native/build/jpeg_crop.node. Runs in `pnpm build` and when the package is installed.
//
// It needs a C compiler ($CC, else the first of cc, gcc, clang) and libjpeg-turbo's headers and library (Debian:
// `apt-get install gcc libjpeg62-turbo-dev`); Node-API's headers come with Node.js or from the
// node-api-headers package. Without them the package still works: ImageFolder then decodes JPEGs
// with sharp (the `decoder` option says which). COMPRESS_REQUIRE_NATIVE=1 makes a failed build an
// error (CI sets it).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, '..', 'native', 'jpeg_crop.c');
const out = join(here, '..', 'native', 'build', 'jpeg_crop.node');
const required = process.env.COMPRESS_REQUIRE_NATIVE === '1';

/** Directories that hold node_api.h: Node's own include dir, then the node-api-headers package. */
function napiIncludes() {
  const dirs = [join(dirname(process.execPath), '..', 'include', 'node')];
  try {
    const pkg = createRequire(import.meta.url).resolve('node-api-headers/package.json');
    dirs.push(join(dirname(pkg), 'include'));
  } catch {
    // not installed: Node's own headers must do
  }
  return dirs.filter((d) => existsSync(join(d, 'node_api.h')));
}

function onPath(command) {
  return (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, command)));
}

function build() {
  if (
    existsSync(out) &&
    statSync(out).mtimeMs >= statSync(source).mtimeMs &&
    !process.argv.includes('--force')
  ) {
    return 'up to date';
  }
  const includes = napiIncludes();
  if (includes.length === 0) throw new Error('node_api.h not found (install node-api-headers)');
  const cc = process.env.CC || ['cc', 'gcc', 'clang'].find(onPath);
  if (!cc) throw new Error('no C compiler found (cc, gcc or clang; or set CC)');
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    execFileSync(
      cc,
      ['-O3', '-fPIC', '-shared', '-Wall', '-Wextra', `-I${includes[0]}`, source, '-ljpeg', '-o', tmp],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    renameSync(tmp, out); // atomic: a concurrent load never sees half a file
  } catch (error) {
    rmSync(tmp, { force: true });
    const detail = error.stderr?.toString().trim() || error.message;
    throw new Error(`${cc} failed: ${detail.split('\n').slice(0, 6).join('\n')}`);
  }
  return 'built native/build/jpeg_crop.node';
}

try {
  const what = build();
  if (what !== 'up to date') console.log(`@compress/data: libjpeg-turbo decoder ${what}`);
} catch (error) {
  const message = `@compress/data: the libjpeg-turbo decoder was not built (${error.message}); ImageFolder decodes JPEGs with sharp instead. Debian: apt-get install gcc libjpeg62-turbo-dev, then rebuild.`;
  if (required) {
    console.error(message);
    process.exit(1);
  }
  console.warn(message);
}
