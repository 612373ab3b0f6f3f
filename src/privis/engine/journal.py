"""The run journal: a JSONL file recording each finished item, the basis of ``--resume``.

The journal lives in the run's owner-side state folder (:mod:`privis.engine.state`), never in the output
folder, and holds one JSON object per line:

- ``{"kind": "run", ...}``: first line, the run's identity (method, parameters, a salted check value of
  the seed, the source, output format, image shape, a fingerprint of the fitted state, the random
  ``run_id``, ...). A resumed run must match it, so one folder never mixes the outputs of two runs.
- ``{"kind": "writing", "paths"}``: the output paths of a batch, appended before its files are written:
  a file there that no ``item`` line lists was still written by privis (a crash between the rename and
  the ``item`` line), so a resume or ``--force`` may replace it.
- ``{"kind": "item", "id", "source", "path", "label", "sha256"}``: appended once the output file is in
  place (written atomically: temporary file, fsync, rename). A crash between the rename and this line
  only means the item is protected again on resume, to the same bytes, under the same name.
- ``{"kind": "skipped", "id", "source", "reason"}``: a bad input passed over under ``--skip-bad``.
- ``{"kind": "failed", "id", "source", "reason"}``: the bad input that stopped a run without ``--skip-bad``.
- ``{"kind": "resume"}`` / ``{"kind": "end", ...}``: bookkeeping.

The file is created (and a resumed run's ``resume`` line appended) only when the run writes its first
output: a run that fails before that leaves no journal. Lines are appended in batches, flushed and
fsynced. A line torn by a crash is cut off on the next open. The journal is only ever read line by line
(resuming keeps 8 bytes per finished item: a sorted array of 64-bit id hashes), so its size never bounds
the dataset's.

At the end of a complete run ``OUT/manifest.json`` (the ``privis-folder`` manifest that ``folder:OUT``
reads back) is written from the journal, streamed, atomically, with only what is safe to hand out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

import privis
from privis.data.folder import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION
from privis.errors import DatasetError
from privis.fsutil import atomic_stream

__all__ = [
    "JOURNAL_FORMAT",
    "JOURNAL_NAME",
    "Journal",
    "JournalState",
    "item_hash",
    "item_hashes",
    "journal_outputs",
    "read_journal",
    "remove_temp_files",
]

JOURNAL_NAME = "journal.jsonl"
JOURNAL_FORMAT = "privis-run"
JOURNAL_VERSION = 1
_MASK63 = (1 << 63) - 1


def item_hash(item_id: str) -> int:
    """A stable 63-bit integer for an item id (BLAKE2b), used both as the resume key and as ``ids``."""
    digest = hashlib.blake2b(item_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK63


def item_hashes(ids: list[str]) -> np.ndarray:
    """``(N,)`` int64 array of :func:`item_hash` values."""
    return np.fromiter((item_hash(i) for i in ids), dtype=np.int64, count=len(ids))


_TEMP_RE = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


def remove_temp_files(out: Path, suffixes: tuple[str, ...]) -> int:
    """Delete the temporary files killed atomic writes left under ``out`` (``.NAME.XXXXXXXX.tmp`` beside a
    ``NAME`` ending in one of ``suffixes``); return how many. Other hidden files are the user's and stay."""
    removed = 0
    if not out.is_dir():
        return 0
    for dirpath, _dirnames, filenames in os.walk(out):
        for fname in filenames:
            match = _TEMP_RE.match(fname)
            if match is not None and match["target"].endswith(suffixes):
                os.unlink(os.path.join(dirpath, fname))
                removed += 1
    return removed


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a journal, line by line; a torn (incomplete) last line is ignored.

    Raises:
        DatasetError: a complete line that is not a JSON object.
    """
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                return  # torn by a crash mid-append: the item it described is simply not done
            try:
                record = json.loads(raw)
            except ValueError as exc:
                raise DatasetError(f"{path}: line {number} is not JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise DatasetError(f"{path}: line {number} is not a JSON object")
            yield record


class JournalState:
    """What a journal says: its header, finished items (as sorted id hashes) and open skips.

    Attributes:
        header: the ``run`` record.
        done: sorted ``(D,)`` int64 hashes of finished item ids.
        skipped: id -> skipped record, for bad inputs not finished since.
        ended: whether the last run record says the run completed.
    """

    def __init__(self, path: Path) -> None:
        records = read_journal(path)
        first = next(records, None)
        if first is None or first.get("kind") != "run" or first.get("format") != JOURNAL_FORMAT:
            raise DatasetError(f"{path}: not a privis run journal (no run record on its first line)")
        if first.get("version") != JOURNAL_VERSION:
            raise DatasetError(f"{path}: journal version {first.get('version')!r} is not supported")
        self.header = first
        chunks: list[np.ndarray] = []
        buffer: list[str] = []
        self.skipped: dict[str, dict[str, Any]] = {}
        self.ended = False
        for record in records:
            kind = record.get("kind")
            if kind == "item":
                buffer.append(str(record["id"]))
                if len(buffer) >= 65536:
                    chunks.append(item_hashes(buffer))
                    buffer = []
                self.ended = False
            elif kind == "skipped":
                self.skipped[str(record["id"])] = record
                self.ended = False
            elif kind == "end":
                self.ended = True
            elif kind == "resume":
                self.ended = False
        if buffer:
            chunks.append(item_hashes(buffer))
        self.done = np.unique(np.concatenate(chunks)) if chunks else np.zeros(0, dtype=np.int64)
        for key in list(self.skipped):
            if self.is_done(np.array([item_hash(key)], dtype=np.int64))[0]:
                del self.skipped[key]

    def is_done(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean ``(N,)``: which hashes belong to finished items."""
        if self.done.size == 0:
            return np.zeros(hashes.shape[0], dtype=bool)
        pos = np.searchsorted(self.done, hashes)
        pos = np.minimum(pos, self.done.size - 1)
        return self.done[pos] == hashes


class Journal:
    """Append-only writer of a run journal (one flush + fsync per :meth:`append`), created on first use.

    Args:
        path: the journal file (in the private state folder; created 0600).
        header: the ``run`` record of a new run, or ``None`` to continue an existing journal.
        on_start: called once just before the file is first written (e.g. to clear what a replaced run
            left); nothing is written, and ``on_start`` is not called, by a run that never gets that far.
    """

    def __init__(self, path: Path, header: dict[str, Any] | None,
                 on_start: Callable[[], None] | None = None) -> None:
        self.path = path
        self._header = header
        self._on_start = on_start
        self._fh: Any = None
        self._closed = False

    @property
    def started(self) -> bool:
        return self._fh is not None

    def start(self) -> None:
        """Create the journal (or reopen it, cutting a torn tail) and write the ``run``/``resume`` line."""
        if self._fh is not None:
            return
        if self._closed:
            raise DatasetError(f"{self.path}: journal already closed")
        if self._on_start is not None:
            self._on_start()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._header is None:
            self._cut_torn_tail()
            flags = os.O_WRONLY | os.O_APPEND
        else:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC
        self._fh = os.fdopen(os.open(self.path, flags, 0o600), "ab")
        os.fchmod(self._fh.fileno(), 0o600)
        if self._header is not None:
            self._write([{"kind": "run", "format": JOURNAL_FORMAT, "version": JOURNAL_VERSION, **self._header}])
        else:
            self._write([{"kind": "resume"}])

    def _cut_torn_tail(self) -> None:
        """Truncate a last line that a crash left without its newline."""
        with open(self.path, "rb+") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size == 0:
                return
            # scan back to the last newline
            pos, chunk = size, 4096
            while pos > 0:
                start = max(0, pos - chunk)
                fh.seek(start)
                data = fh.read(pos - start)
                if start + len(data) == size and data.endswith(b"\n"):
                    return
                idx = data.rfind(b"\n")
                if idx >= 0:
                    fh.truncate(start + idx + 1)
                    return
                pos = start
            fh.truncate(0)

    def append(self, records: list[dict[str, Any]], *, start: bool = True) -> None:
        """Append ``records`` (starting the journal first); with ``start=False`` a journal not started yet
        drops them (a run that wrote nothing leaves nothing behind)."""
        if not records:
            return
        if self._fh is None:
            if not start:
                return
            self.start()
        self._write(records)

    def _write(self, records: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
        self._fh.write(text.encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._closed = True
        if self._fh is not None and not self._fh.closed:
            self._fh.close()


def journal_outputs(path: Path) -> Iterator[tuple[str, str | None]]:
    """``(relative output path, sha256 or None)`` of every file a journal says privis wrote or was writing."""
    if not path.is_file():
        return
    for record in read_journal(path):
        kind = record.get("kind")
        if kind == "item":
            yield str(record.get("path")), str(record.get("sha256"))
        elif kind == "writing":
            for rel in record.get("paths") or []:
                yield str(rel), None


def write_folder_manifest(out: Path, journal: Path, header: dict[str, Any], extra: dict[str, Any],
                          public: Callable[[str], str] = str) -> Path:
    """Write ``OUT/manifest.json`` (format ``privis-folder``) from the journal, streamed and atomic.

    Items appear in journal order (the order they finished), each with ``path``, ``label``, ``class_name``,
    ``sha256``, ``id`` (the engine's item id), ``source`` and, when the journal has them, ``tag`` and
    ``orientation`` (the EXIF orientation applied to the input when reading it);
    ``skipped`` lists bad inputs that were never finished afterwards. ``public`` rewrites every source
    and reason text before it is written (the caller strips the owner's absolute paths with it).
    """
    class_names = list(header["class_names"])
    class_dirs = list(header["class_dirs"])
    skipped: dict[str, dict[str, Any]] = {}
    count = 0
    path = out / MANIFEST_NAME
    with atomic_stream(path) as fh:
        head = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "privis_version": privis.__version__,
            "source": public(str(header.get("source"))),
            "class_names": class_names,
            "class_dirs": class_dirs,
        }
        fh.write(json.dumps(head, ensure_ascii=False, indent=2)[:-2] + ',\n  "items": [')
        for record in read_journal(journal):
            kind = record.get("kind")
            if kind == "item":
                item = {"path": record["path"], "label": record["label"],
                        "class_name": class_names[record["label"]], "sha256": record["sha256"],
                        "id": str(record["id"]), "source": public(str(record["source"]))}
                for key in ("tag", "orientation"):
                    if key in record:
                        item[key] = record[key]
                fh.write(("\n    " if count == 0 else ",\n    ") + json.dumps(item, ensure_ascii=False))
                count += 1
                skipped.pop(str(record["id"]), None)  # a bad input fixed and finished on a resume
            elif kind == "skipped":
                skipped[str(record["id"])] = {"path": public(str(record["source"])),
                                              "reason": public(str(record["reason"]))}
        tail = {"count": count, "skipped": list(skipped.values()), "extra": extra}
        fh.write("\n  ],\n" + json.dumps(tail, ensure_ascii=False, indent=2)[2:] + "\n")
    return path
