"""VisualMixer throughput: privis' batched implementation against a per-window loop of Algorithm 1.

The reference below is Algorithm 1 written straightforwardly: for each image, tile it by the coarsest
window, then pop regions one at a time from a work list; a region at the smallest window, or whose VFE
density is at most the median of the initial regions, is shuffled with ``rng.permutation`` per channel;
otherwise its quadrants are pushed. It uses the same bounds, windows, edge rule and VFE statistic as
privis (so both produce the same partition), differing only in how the work is organised. Each side runs
in its own process (spawned), so its peak resident memory is its own, in the same run. Each side is timed
``--repeat`` times (the machine may be shared): the JSON keeps every run, the best and median rate, the CPU
seconds per image, and the load average before each run; ``speedup`` is best over best, ``speedup_median``
median over median, ``speedup_cpu`` the ratio of CPU time per image (the least sensitive to other load).

Inputs: Fashion-MNIST test images (28 x 28 grey, repeated to the requested count) and 224 x 224 RGB crops of
scikit-image's astronaut photograph at random offsets.

``--permutations table counter`` times each permutation scheme in the same run (``auto``, the default, is
the table scheme on the CPU and the counter scheme on a GPU); ``--device cuda`` moves the images there first
(the timing waits for the device to finish; the reference loop always runs on the CPU).

Run:  .venv/bin/python benchmarks/bench_visualmixer.py [--json benchmarks/results/visualmixer.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from privis import data as pdata
from privis.methods.visualmixer import VisualMixer
from privis.sysinfo import peak_rss_mb


def reference_visualmixer(images: np.ndarray, levels: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Algorithm 1, one image and one region at a time. ``images`` ``(N, C, H, W)`` float32."""
    n, c, h, w = images.shape
    out = images.copy()
    floor = levels[-1]

    def cuts(start: int, length: int, s: int) -> list[tuple[int, int]]:
        k = max(1, length // s)
        edges = [start + j * s for j in range(k)] + [start + length]
        return [(edges[j], edges[j + 1] - edges[j]) for j in range(k)]

    for i in range(n):
        img = images[i].astype(np.float64)
        gx = np.zeros((c, h, w))
        gy = np.zeros((c, h, w))
        gx[:, :, :-1] = img[:, :, 1:] - img[:, :, :-1]
        gy[:, :-1, :] = img[:, 1:, :] - img[:, :-1, :]
        vmap = (gx ** 2 + gy ** 2).mean(0)  # Eq. 1-2, channel mean (Eq. 4)
        s0 = levels[0]
        regions = [(y, hh, x, ww, s0) for y, hh in cuts(0, h, s0) for x, ww in cuts(0, w, s0)]
        dens = [vmap[y:y + hh, x:x + ww].sum() / (hh * ww) for y, hh, x, ww, _ in regions]
        median = float(np.median(dens))
        work = list(regions)
        while work:
            y, hh, x, ww, s = work.pop()
            if s <= floor or vmap[y:y + hh, x:x + ww].sum() / (hh * ww) <= median:
                for ch in range(c):
                    block = out[i, ch, y:y + hh, x:x + ww].reshape(-1)
                    out[i, ch, y:y + hh, x:x + ww] = block[rng.permutation(block.size)].reshape(hh, ww)
            else:
                half = s // 2
                work += [(yy, h2, xx, w2, half) for yy, h2 in cuts(y, hh, half) for xx, w2 in cuts(x, ww, half)]
    return out


def load_images(kind: str, n: int, seed: int) -> torch.Tensor:
    if kind == "28x28-grey":
        base = pdata.load("fashion-mnist:test" if pdata.fashion_mnist_available() else "digits:all").images
        reps = -(-n // base.shape[0])
        return base.repeat(reps, 1, 1, 1)[:n].contiguous()
    photo = pdata.load("astronaut").images[0]  # (3, 512, 512)
    gen = torch.Generator().manual_seed(seed)
    ys = torch.randint(0, 512 - 224, (n,), generator=gen)
    xs = torch.randint(0, 512 - 224, (n,), generator=gen)
    return torch.stack([photo[:, y:y + 224, x:x + 224] for y, x in zip(ys.tolist(), xs.tolist(), strict=True)])


def _worker(side: str, kind: str, n: int, seed: int, repeat: int, scheme: str, device: str,
            queue: mp.Queue) -> None:
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    torch.set_num_threads(threads)
    images = load_images(kind, n, seed)
    vm = VisualMixer(n_jobs=threads, permutations=scheme).fit(images[:64])
    arr = images.numpy()
    if side == "privis":
        images = images.to(device)
    base_rss = peak_rss_mb()
    walls, cpus, loads = [], [], []
    extra: dict = {}
    if side == "privis":
        vm.transform(images[:32])  # warm-up (geometry cache)
    for r in range(repeat):  # the machine may be shared: keep every run, report the best and the median
        loads.append(load_average())
        c0, t0 = time.process_time(), time.perf_counter()
        if side == "privis":
            vm.transform(images)
            if images.is_cuda:
                torch.cuda.synchronize()
        else:
            reference_visualmixer(arr, vm.levels_, np.random.default_rng(seed + r))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    if side == "privis":
        extra = vm.diagnostics()
    best = min(walls)
    queue.put({"side": side, "images": kind, "n": n, "permutations": scheme, "device": str(images.device),
               "seconds": best, "images_per_second": n / best,
               "images_per_second_median": n / float(np.median(walls)), "seconds_all": walls,
               "cpu_seconds_per_image": min(cpus) / n, "cpu_seconds_all": cpus, "uptime_before_runs": loads,
               "peak_rss_mb": peak_rss_mb(), "rss_after_load_mb": base_rss, "threads": threads,
               "levels": list(vm.levels_), **{k: extra[k] for k in ("keyspace_bits_mean", "regions_mean")
                                                if k in extra}})


def run(side: str, kind: str, n: int, seed: int, repeat: int, scheme: str = "auto", device: str = "cpu") -> dict:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(side, kind, n, seed, repeat, scheme, device, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def load_average() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n28", type=int, default=20000, help="28x28 images for privis")
    parser.add_argument("--n28-ref", type=int, default=1000, help="28x28 images for the reference loop")
    parser.add_argument("--n224", type=int, default=1000, help="224x224 RGB images for privis")
    parser.add_argument("--n224-ref", type=int, default=20, help="224x224 RGB images for the reference loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side (best and median reported)")
    parser.add_argument("--permutations", nargs="+", default=["auto"], choices=["auto", "table", "counter"],
                        help="permutation schemes to time (one privis row each)")
    parser.add_argument("--device", default="cpu", help="device of privis' images (cpu, cuda)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/visualmixer.json"))
    args = parser.parse_args()
    rows = []
    for kind, n, n_ref in (("28x28-grey", args.n28, args.n28_ref), ("224x224-rgb", args.n224, args.n224_ref)):
        ref = run("reference", kind, n_ref, args.seed, args.repeat)
        for scheme in args.permutations:
            load_before = load_average()
            ours = run("privis", kind, n, args.seed, args.repeat, scheme, args.device)
            ratio = ours["images_per_second"] / ref["images_per_second"]
            ratio_median = ours["images_per_second_median"] / ref["images_per_second_median"]
            ratio_cpu = ref["cpu_seconds_per_image"] / ours["cpu_seconds_per_image"]
            rows.append({"images": kind, "privis": ours, "reference": ref, "speedup": ratio,
                         "speedup_median": ratio_median, "speedup_cpu": ratio_cpu,
                         "uptime_before": load_before, "uptime_after": load_average()})
            print(f"{kind} ({scheme}): privis {ours['images_per_second']:.0f} img/s best, "
                  f"{ours['images_per_second_median']:.0f} median (peak {ours['peak_rss_mb']:.0f} MiB), "
                  f"reference {ref['images_per_second']:.1f} img/s best "
                  f"(peak {ref['peak_rss_mb']:.0f} MiB); ratio {ratio:.1f}x best/best, {ratio_median:.1f}x median, "
                  f"{ratio_cpu:.1f}x CPU time; {load_before} -> {rows[-1]['uptime_after']}")
    result = {"name": "bench-visualmixer", "rows": rows, "threads": int(os.environ.get("BENCH_THREADS", "2")),
              "torch": torch.__version__, "numpy": np.__version__, "cpus": os.cpu_count()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    from privis.fsutil import atomic_write_text

    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
