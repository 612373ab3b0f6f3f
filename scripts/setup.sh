#!/usr/bin/env bash
# Installs privis and everything it needs into .venv at the repository root (idempotent).
# Debian packages: Fashion-MNIST (dataset-fashion-mnist) when apt-get exists and we may use it.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null 2>&1 && [ ! -d /usr/share/datasets/fashion-mnist ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  if $SUDO true 2>/dev/null || [ "$(id -u)" -eq 0 ]; then
    $SUDO apt-get update -qq || echo "setup: apt-get update failed; continuing without Fashion-MNIST" >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null \
      || echo "setup: could not install dataset-fashion-mnist; privis falls back to digits" >&2
  fi
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned (pyproject.toml); installing it first keeps pip from resolving a CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
# Everything privis can do on one machine: serving, ONNX export, Ray (the tests exercise all of it).
.venv/bin/python -m pip install -q -e ".[dev,all]"
