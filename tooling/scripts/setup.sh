#!/usr/bin/env bash
# Sets up a fresh Debian machine with Node.js 20 for compress: Debian packages (Fashion-MNIST and
# the Python reference side), pnpm at the version pinned in package.json, the workspace's
# dependencies from the lockfile, and a build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."

# clang + lld: @compress/cluster compiles its WebAssembly kernels from C in its build (the compiled
# module is committed too, so a machine without them still builds). libjpeg62-turbo-dev:
# @compress/data compiles its libjpeg-turbo crop decoder (with clang, or cc when there is one).
apt_packages=(dataset-fashion-mnist python3-torch python3-torchvision python3-faiss python3-sklearn python3-scipy python3-onnx fonts-dejavu-core clang lld libjpeg62-turbo-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pnpm_version=$(node -p "require('./package.json').packageManager.split('@')[1]")
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  echo "setup: installing pnpm $pnpm_version"
  npm install -g "pnpm@$pnpm_version" >/dev/null
fi

# onnxruntime-node's install script downloads CUDA binaries from outside the npm registry; its CPU
# binaries ship inside the package. pnpm-workspace.yaml keeps that script from running.
export ONNXRUNTIME_NODE_INSTALL=skip
pnpm install --frozen-lockfile
pnpm build
