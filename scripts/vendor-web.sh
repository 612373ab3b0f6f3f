#!/usr/bin/env bash
# Vendors the browser client's JavaScript runtime (ONNX Runtime Web, pinned with integrity hashes in
# web/package-lock.json) into src/privis/serve/static/vendor/, which pyproject's package-data ships in the
# wheel. Run before building a wheel; scripts/setup.sh runs it. Needs npm (Node >= 18); nothing is executed
# from the packages (--ignore-scripts), only their prebuilt dist files are copied.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --prefix web --ignore-scripts --no-audit --no-fund --loglevel=error
src=web/node_modules/onnxruntime-web/dist
dst=src/privis/serve/static/vendor
mkdir -p "$dst"
# WASM build (every browser) and the WebGPU build (its own WASM module; used when the browser has a GPU adapter).
for f in ort.wasm.min.js ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm \
         ort.webgpu.min.js ort-wasm-simd-threaded.asyncify.mjs ort-wasm-simd-threaded.asyncify.wasm; do
  cp "$src/$f" "$dst/$f.tmp" && mv "$dst/$f.tmp" "$dst/$f"
done
cp web/LICENSES.md "$dst/LICENSES.md"
echo "vendored onnxruntime-web $(node -p "require('./web/node_modules/onnxruntime-web/package.json').version") into $dst"
