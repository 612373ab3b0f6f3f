"""What the benchmarks share: a side timed in its own process (so its peak memory is its own) and the report
printed and written atomically as JSON."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from privis.experiments.perturbation_tables import load_average
from privis.fsutil import atomic_write_text
from privis.sysinfo import peak_rss_mb


def in_fresh_process(worker: Callable[..., dict], *args: object) -> dict:
    """``worker(*args)`` in a freshly spawned process; its result (a dict of figures)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(worker, *args).result()


def emit(report: dict[str, Any], path: Path | None) -> dict[str, Any]:
    """Print ``report`` as JSON and, with ``path``, write it there atomically; returns ``report``."""
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        atomic_write_text(path, text + "\n")
    return report


def side_parser(doc: str | None, *, what: str, n_ref: int) -> argparse.ArgumentParser:
    """The options every privis-vs-reference benchmark takes: ``--n`` (privis' batch), ``--n-ref`` (the
    reference's images), ``--threads``, ``--seed`` and ``--json``; ``what`` says what is done to the images."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256, help=f"batch {what} by privis")
    ap.add_argument("--n-ref", type=int, default=n_ref, help=f"images {what} by the per-image reference")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    return ap


def side_figures(kind: str, n: int, seconds: float, **extra: Any) -> dict[str, Any]:
    """One side's figures: ``n`` images in ``seconds``, as images per second, and this process' peak memory."""
    return {"kind": kind, "n": n, **extra, "seconds": seconds, "images_per_second": n / seconds,
            "peak_rss_mb": peak_rss_mb()}


def compare_sides(worker: Callable[..., dict], args: argparse.Namespace, *worker_args: object,
                  **settings: Any) -> dict[str, Any]:
    """``worker(kind, n, *worker_args, args.threads, args.seed)`` for ``"privis"`` (``args.n`` images) and
    ``"reference"`` (``args.n_ref``), each in a fresh process; the report (``settings``, threads, load average,
    both sides and privis' speed ratio) is emitted (:func:`emit`) to ``args.json``."""
    rows = {kind: in_fresh_process(worker, kind, args.n_ref if kind == "reference" else args.n, *worker_args,
                                   args.threads, args.seed)
            for kind in ("privis", "reference")}
    report = {**settings, "threads": args.threads, "load_average": load_average(), **rows,
              "ratio_privis_to_reference": rows["privis"]["images_per_second"]
              / rows["reference"]["images_per_second"]}
    return emit(report, args.json)
