"""Progress bars for long work.

Shown on a terminal; silent under CI, with ``PRIVIS_NO_PROGRESS`` set, or when stderr is not a TTY --
unless ``PRIVIS_PROGRESS=1`` asks for them (a long run under ``nohup`` whose log should show where it
is): off a terminal the bars are then written as plain lines at most every 30 s.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_LOG_INTERVAL_S = 30.0


def progress_enabled() -> bool:
    if os.environ.get("PRIVIS_NO_PROGRESS"):
        return False
    if os.environ.get("PRIVIS_PROGRESS"):
        return True
    return not os.environ.get("CI") and sys.stderr.isatty()


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar when progress is enabled, else return it unchanged."""
    if not progress_enabled():
        return iterable
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
    return tqdm(iterable, total=total, desc=desc, unit=unit, mininterval=_LOG_INTERVAL_S, ncols=100,
                file=sys.stderr)
