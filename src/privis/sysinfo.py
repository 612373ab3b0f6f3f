"""Process resource figures reported next to every throughput number."""

from __future__ import annotations

import resource
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def available_memory_bytes(device: torch.device | str = "cpu") -> int:
    """Memory a new allocation can use now, in bytes: free CUDA memory on a CUDA ``device``
    (``torch.cuda.mem_get_info``), else the host's available RAM (``psutil.virtual_memory().available``)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)
