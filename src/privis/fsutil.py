"""Atomic file writes: a reader never sees a partial file, a crash never leaves one (brief: writes are atomic)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_stream(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open ``path`` for an atomic, streamed write (``mode`` ``"w"`` text or ``"wb"`` bytes): the caller writes
    to a temporary file beside ``path``; on success it is fsynced and renamed over ``path``, on error removed.
    For files too large to build in memory, and the one place the temp-fsync-rename pattern lives."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_stream mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename."""
    with atomic_stream(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))
