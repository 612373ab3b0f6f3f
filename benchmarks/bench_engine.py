"""Acceptance benchmarks of the streaming engine (issue 6).

1. kill-resume: a folder job (default 20,000 28x28 grey PNGs, the ``noise`` baseline whose output depends
   only on the item and the seed) is killed with SIGKILL at three random moments (each when a random
   share, 5-40 %, of the remaining items has been journalled, plus a random 0-200 ms, so kills land
   mid-batch), resumed each time, then run to the end; the result must hold exactly N outputs, no
   temporary file, N distinct journalled items, and every output byte-identical to an uninterrupted run
   with the same seed.
2. memory: peak RSS of a 100,000-image job against a 10,000-image job with the same batch size.
3. ray: Ray Data on a local 2-CPU cluster against the local engine on the same folder and seed: identical
   outputs, throughput, and overhead (wall time of the whole command, cluster start-up included).
4. workers: local engine throughput with ``--workers 2`` against 1, for a cheap method (``noise``,
   I/O bound) and an expensive one (``veil``, default 300 steps, compute bound).

Every run is a separate ``privis`` process. Images are generated under a temporary folder (default under
/work/main/runs) and deleted at the end.

Run:  .venv/bin/python benchmarks/bench_engine.py [--n 20000] [--mem-n 100000] [--json runs/engine.json]
      [--parts kill,memory,ray,workers]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from privis.engine import journal_path

ROOT = Path(__file__).resolve().parents[1]
PRIVIS = [str(Path(sys.executable).parent / "privis"), "protect"]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_folder(root: Path, n: int, *, classes: int = 10, size: int = 28, seed: int = 0) -> Path:
    """``n`` random grey ``size``x``size`` PNGs in ``classes`` class folders (a few KB each)."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"c{i % classes}" / f"img{i:07d}.png")
    return root


def link_subset(src: Path, dst: Path, n: int, classes: int = 10) -> Path:
    """A folder of the first ``n`` images of ``src`` as hard links (no copy)."""
    for i in range(n):
        c = f"c{i % classes}"
        (dst / c).mkdir(parents=True, exist_ok=True)
        os.link(src / c / f"img{i:07d}.png", dst / c / f"img{i:07d}.png")
    return dst


def run(args: list[str], **kw) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(PRIVIS + args, capture_output=True, text=True, **kw)
    return proc, time.perf_counter() - t0


def parse_summary(stdout: str) -> dict:
    """Figures of the engine's summary line (``done N, ..., X images/s (S s, peak memory M MiB)``)."""
    line = next(ln for ln in stdout.splitlines() if ln.startswith("done "))
    parts = line.replace("(", ",").replace(")", ",").split(",")
    out = {}
    for p in parts:
        p = p.strip()
        if p.startswith("done "):
            out["done"] = int(p.split()[1])
        elif p.startswith("already done"):
            out["already_done"] = int(p.split()[2])
        elif p.endswith("images/s"):
            out["images_per_second"] = float(p.split()[0])
        elif "cluster start" in p:
            out["startup_seconds"] = float(p.split()[-2])
        elif p.startswith("peak memory"):
            out["peak_rss_mb"] = float(p.split()[2])
        elif p.endswith(" s") and "seconds" not in out:
            out["seconds"] = float(p.split()[0])
    return out


def tree_digest(out: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every image file under ``out`` (class folders only)."""
    digests = {}
    for dirpath, _dirs, files in os.walk(out):
        for f in files:
            p = Path(dirpath) / f
            if p.parent == out:
                continue
            digests[p.relative_to(out).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return digests


def journal_items(out: Path) -> int:
    try:
        return sum(1 for line in open(journal_path(out), "rb") if line.startswith(b'{"kind":"item"'))
    except FileNotFoundError:
        return 0


def part_kill(work: Path, n: int, seed: int, batch: int, rng: random.Random) -> dict:
    src = make_folder(work / "kill-in", n)
    common = ["noise", "--data", f"folder:{src}", "--seed", str(seed), "--batch-size", str(batch)]
    ref = work / "kill-ref"
    proc, wall = run(common + ["--out", str(ref)])
    assert proc.returncode == 0, proc.stderr
    ref_summary = parse_summary(proc.stdout)
    victim = work / "kill-victim"
    kills = []
    for k in range(3):
        before = journal_items(victim)
        target = before + int((n - before) * rng.uniform(0.05, 0.40))
        extra = rng.uniform(0.0, 0.2)
        p = subprocess.Popen(PRIVIS + common + ["--out", str(victim), "--resume"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        while p.poll() is None and journal_items(victim) < target:
            time.sleep(0.01)
        time.sleep(extra)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait()
        at = journal_items(victim)
        temps = sum(1 for _d, _s, fs in os.walk(victim) for f in fs if f.endswith(".tmp"))
        kills.append({"kill": k + 1, "journalled_at_kill": at, "target": target, "extra_delay_s": round(extra, 3),
                      "returncode": p.returncode, "temp_files_left_by_kill": temps})
    proc, _ = run(common + ["--out", str(victim), "--resume"])
    assert proc.returncode == 0, proc.stderr
    final = parse_summary(proc.stdout)
    ref_d, vic_d = tree_digest(ref), tree_digest(victim)
    lines = journal_path(victim).read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines if line.startswith('{"kind":"item"')]
    manifest = json.loads((victim / "manifest.json").read_text())
    temps = [f for _d, _s, fs in os.walk(victim) for f in fs if f.endswith(".tmp")]
    result = {
        "n": n, "batch_size": batch, "reference_seconds": round(wall, 2), "reference": ref_summary, "kills": kills,
        "final_resume": final, "outputs": len(vic_d), "reference_outputs": len(ref_d),
        "identical_files": sum(1 for k, v in vic_d.items() if ref_d.get(k) == v),
        "journal_items": len(ids), "journal_distinct_items": len(set(ids)), "manifest_count": manifest["count"],
        "temp_files_at_end": len(temps), "load_average": load_average(),
    }
    result["pass"] = (len(vic_d) == n and result["identical_files"] == n and len(ids) == n and len(set(ids)) == n
                      and not temps and manifest["count"] == n)
    shutil.rmtree(src)
    shutil.rmtree(ref)
    shutil.rmtree(victim)
    return result


def _mem_run(src: Path, out: Path, batch: int) -> dict:
    proc, wall = run(["noise", "--data", f"folder:{src}", "--out", str(out), "--seed", "1", "--batch-size", str(batch)])
    assert proc.returncode == 0, proc.stderr
    s = parse_summary(proc.stdout)
    s["wall_seconds"] = round(wall, 2)
    s["load_average"] = load_average()
    return s


def part_memory(work: Path, n_big: int, n_small: int, batch: int) -> dict:
    t0 = time.perf_counter()
    big = make_folder(work / "mem-big", n_big)
    small = link_subset(big, work / "mem-small", n_small)
    gen = time.perf_counter() - t0
    s_small = _mem_run(small, work / "mem-small-out", batch)
    shutil.rmtree(work / "mem-small-out")
    s_big = _mem_run(big, work / "mem-big-out", batch)
    shutil.rmtree(work / "mem-big-out")
    shutil.rmtree(small)
    shutil.rmtree(big)
    ratio = s_big["peak_rss_mb"] / s_small["peak_rss_mb"]
    return {"n_small": n_small, "n_big": n_big, "batch_size": batch, "generate_seconds": round(gen, 1),
            "small": s_small, "big": s_big, "peak_ratio_big_over_small": round(ratio, 4),
            "pass": abs(ratio - 1.0) <= 0.10}


def part_ray(work: Path, n: int, seed: int, batch: int) -> dict:
    src = make_folder(work / "ray-in", n)
    common = ["noise", "--data", f"folder:{src}", "--seed", str(seed), "--batch-size", str(batch), "--workers", "2"]
    local, local_wall = run(common + ["--out", str(work / "ray-local")])
    assert local.returncode == 0, local.stderr
    load_local = load_average()
    ray, ray_wall = run(common + ["--out", str(work / "ray-ray"), "--engine", "ray"])
    assert ray.returncode == 0, ray.stderr
    a, b = tree_digest(work / "ray-local"), tree_digest(work / "ray-ray")
    result = {"n": n, "batch_size": batch, "workers": 2,
              "local": {**parse_summary(local.stdout), "wall_seconds": round(local_wall, 2),
                        "load_average": load_local},
              "ray": {**parse_summary(ray.stdout), "wall_seconds": round(ray_wall, 2), "load_average": load_average()},
              "outputs": len(b), "identical_files": sum(1 for k, v in b.items() if a.get(k) == v)}
    result["overhead_seconds"] = round(ray_wall - local_wall, 2)
    result["pass"] = result["identical_files"] == n == len(a)
    for d in ("ray-in", "ray-local", "ray-ray"):
        shutil.rmtree(work / d)
    return result


def part_workers(work: Path, n_cheap: int, n_expensive: int, batch: int, repeats: int) -> dict:
    """Each setting ``repeats`` times, 1 and 2 workers interleaved (the machine is shared: medians)."""
    src = make_folder(work / "w-in", n_cheap)
    rows = []
    summary = {}
    for method, n, extra in (("noise", n_cheap, ["--seed", "1"]),
                             ("veil", n_expensive, ["--seed", "1", "--fit-size", "2000"])):
        data = src if n == n_cheap else link_subset(src, work / f"w-in-{n}", n)
        for rep in range(repeats):
            for workers in (1, 2):
                out = work / f"w-out-{method}-{workers}"
                proc, wall = run([method, "--data", f"folder:{data}", "--out", str(out), "--batch-size", str(batch),
                                  "--workers", str(workers), *extra])
                assert proc.returncode == 0, proc.stderr
                rows.append({"method": method, "n": n, "workers": workers, "repeat": rep,
                             **parse_summary(proc.stdout), "wall_seconds": round(wall, 2),
                             "load_average": load_average()})
                shutil.rmtree(out)
        for workers in (1, 2):
            rates = [r["images_per_second"] for r in rows if r["method"] == method and r["workers"] == workers]
            summary[f"{method}_workers{workers}_median_images_per_second"] = float(np.median(rates))
        summary[f"{method}_speedup_2_over_1"] = round(summary[f"{method}_workers2_median_images_per_second"]
                                                      / summary[f"{method}_workers1_median_images_per_second"], 3)
        if data != src:
            shutil.rmtree(data)
    shutil.rmtree(src)
    return {"batch_size": batch, "repeats": repeats, "summary": summary, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--mem-n", type=int, default=100_000)
    ap.add_argument("--mem-small", type=int, default=10_000)
    ap.add_argument("--ray-n", type=int, default=5_000)
    ap.add_argument("--veil-n", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3, help="runs per setting in the workers part")
    ap.add_argument("--parts", default="kill,memory,ray,workers")
    ap.add_argument("--work", type=Path, default=ROOT / "runs")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    os.environ.setdefault("PRIVIS_NO_PROGRESS", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-engine-", dir=args.work))
    os.environ.setdefault("PRIVIS_STATE_DIR", str(work / "state"))  # the runs' journals, kept out of ~/.cache
    rng = random.Random(args.seed)
    results: dict = {"load_average_start": load_average()}
    try:
        for part in args.parts.split(","):
            t0 = time.perf_counter()
            if part == "kill":
                results[part] = part_kill(work, args.n, args.seed, args.batch_size, rng)
            elif part == "memory":
                results[part] = part_memory(work, args.mem_n, args.mem_small, args.batch_size)
            elif part == "ray":
                results[part] = part_ray(work, args.ray_n, args.seed, args.batch_size)
            elif part == "workers":
                results[part] = part_workers(work, args.n, args.veil_n, args.batch_size, args.repeats)
            else:
                raise SystemExit(f"unknown part {part!r}")
            results[part]["part_seconds"] = round(time.perf_counter() - t0, 1)
            print(json.dumps({part: results[part]}, indent=1), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
