#!/usr/bin/env bash
# The device-relevant benchmarks on one CUDA GPU, in under 8 minutes: `privis bench --device cuda` for every
# classification method at 224x224 RGB, and Veil, the perturbation generator and VisualMixer at 28x28 grey and
# 32x32 RGB at their defaults, then those three at all sizes in the configurations a GPU user picks (fp16
# generator, bf16 CUDA-graph Veil, counter-scheme shuffles); each row with images/s, peak host and device memory
# and its ratio to the roofline bound.
# Writes one JSON, $OUT/gpu_check.json (OUT defaults to benchmarks/results), and prints the acceptance rows.
# Exits non-zero when torch sees no CUDA device. `--dry-run` prints the plan (no CUDA needed, nothing measured).
# PYTHON: the interpreter (default .venv/bin/python, else python3); this checkout's src/ is imported first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUT=${OUT:-benchmarks/results}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
extra=()
case "${1:-}" in
  --dry-run) extra=(--dry-run) ;;
  "") "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else
    f"gpu_check: torch {torch.__version__} sees no CUDA device; nothing measured")' ;;
  *) echo "usage: benchmarks/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
parts=$(mktemp -d)
trap 'rm -rf "$parts"' EXIT
bench() {  # privis bench on CUDA; a measurement may take 120 s, the run its --budget (470 s in all)
  "$PYTHON" -c 'import sys; from privis.cli.main import main; sys.argv[0] = "privis"; main()' \
    bench --device cuda --threads 2 --timeout 120 "${extra[@]}" "$@"
}
bench --size 224x224-rgb --budget 240 --json "$parts/224.json"
bench veil perturbation visualmixer --size 28x28-grey --size 32x32-rgb --budget 120 --json "$parts/small.json"
# the GPU configurations the methods offer: half-precision generator, bf16 + CUDA-graph Veil, counter shuffles
bench veil perturbation visualmixer --size 28x28-grey --size 32x32-rgb --size 224x224-rgb \
  --param perturbation.precision=fp16 --param veil.precision=bf16 --param veil.compile=true \
  --param visualmixer.permutations=counter --budget "$((470 - SECONDS))" --json "$parts/fast.json"
mkdir -p "$OUT"
"$PYTHON" - "$parts/224.json" "$parts/small.json" "$parts/fast.json" "$OUT/gpu_check.json" <<'PY'
"""Merge the parts into one JSON and print the issue's GPU acceptance rows against their targets."""
import json
import sys

from privis.fsutil import atomic_write_text

*paths, out = sys.argv[1:]
parts = [json.load(open(p)) for p in paths]
table = "plan" if "plan" in parts[0]["tables"] else "throughput"
rows = [row for part in parts for row in part["tables"][table]]
report = {"name": "gpu_check", "tables": {table: rows}, "config": [p["config"] for p in parts],
          "notes": parts[0]["notes"], "versions": parts[0].get("versions"),
          "seconds": sum(p["seconds"] for p in parts)}
atomic_write_text(out, json.dumps(report, indent=2) + "\n")
# (method, size) -> least images/s; the generator's 0.02 ms per 32x32 image is 50,000 images/s.
targets = {("veil", "28x28-grey"): 20_000, ("veil", "224x224-rgb"): 400, ("visualmixer", "224x224-rgb"): 50_000,
           ("perturbation", "32x32-rgb"): 50_000}
if table == "throughput":
    print(f"{'method':<13} {'size':<12} {'images/s':>11} {'target':>8} {'met':>4} {'bound ratio':>12}  parameters")
    for row in rows:
        key = (row["method"], row["size"])
        if key in targets:
            ips = row.get("images_per_second")
            met = "-" if ips is None else ("yes" if ips >= targets[key] else "no")
            ratio = row.get("bound_ratio")
            print(f"{key[0]:<13} {key[1]:<12} {'-' if ips is None else f'{ips:.1f}':>11} {targets[key]:>8} "
                  f"{met:>4} {'-' if ratio is None else f'{ratio:.3f}':>12}  {row.get('measure_params', {})} "
                  f"{row.get('error', '')}")
print(f"wrote {out} ({len(rows)} rows)")
PY
