"""What the benchmarks share: a side timed in its own process (so its peak memory is its own) and the report
printed and written atomically as JSON."""

from __future__ import annotations

import json
import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from privis.fsutil import atomic_write_text


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
