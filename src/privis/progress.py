"""Progress bars for long work.

Shown on a terminal; silent under CI, with ``PRIVIS_NO_PROGRESS`` set, or when stderr is not a TTY --
unless ``PRIVIS_PROGRESS=1`` asks for them (a long run under ``nohup`` whose log should show where it
is): off a terminal the bars are then written as plain lines at most every 30 s. Never shown when the
process has no stderr (started with it closed, ``2>&-``): the work goes on without them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_LOG_INTERVAL_S = 30.0


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError, OSError):  # None (started with stderr closed: ``2>&-``) or closed
        return False


def progress_enabled() -> bool:
    """Whether bars are shown (module docstring); never when there is no stderr to show them on."""
    if os.environ.get("PRIVIS_NO_PROGRESS") or sys.stderr is None:
        return False
    if os.environ.get("PRIVIS_PROGRESS"):
        return True
    return not os.environ.get("CI") and _stderr_is_tty()


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar when progress is enabled, else return it unchanged."""
    if not progress_enabled():
        return iterable
    if _stderr_is_tty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
    return tqdm(iterable, total=total, desc=desc, unit=unit, mininterval=_LOG_INTERVAL_S, ncols=100,
                file=sys.stderr)
