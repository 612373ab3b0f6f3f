#!/usr/bin/env bash
# Installs privis and everything it needs into .venv at the repository root (idempotent).
# Debian packages, when apt-get exists and we may use it: Fashion-MNIST (dataset-fashion-mnist) and zsh (the
# suite runs the README's commands in bash and zsh; without zsh that test is skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
WANT=""
[ -d /usr/share/datasets/fashion-mnist ] || WANT="dataset-fashion-mnist"
command -v zsh >/dev/null 2>&1 || WANT="$WANT zsh"
if command -v apt-get >/dev/null 2>&1 && [ -n "$WANT" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  if $SUDO true 2>/dev/null || [ "$(id -u)" -eq 0 ]; then
    $SUDO apt-get update -qq || echo "setup: apt-get update failed; continuing without:$WANT" >&2
    for pkg in $WANT; do
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null \
        || echo "setup: could not install $pkg; $([ "$pkg" = zsh ] && echo "the README test runs in bash only" \
                || echo "privis falls back to digits")" >&2
    done
  fi
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned (pyproject.toml); installing it first keeps pip from resolving a CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
# Everything privis can do on one machine: serving, ONNX export, Ray (the tests exercise all of it).
.venv/bin/python -m pip install -q -e ".[dev,all]"
