"""The run journal: a JSONL manifest recording each finished item, the basis of ``--resume``.

``OUT/manifest.jsonl`` (a file directly in OUT, which :func:`privis.data.load_folder` never reads as an
image) holds one JSON object per line:

- ``{"kind": "run", ...}``: first line, the run's identity (method, public parameters, a fingerprint of
  the seed, the source, output format, image shape, a fingerprint of the fitted state, ...). A resumed run
  must match it, so one folder never mixes the outputs of two different runs.
- ``{"kind": "item", "id", "source", "path", "label", "sha256"}``: appended once the output file is in
  place (written atomically: temporary file, fsync, rename). A crash between the rename and this line
  only means the item is protected again on resume, to the same bytes, under the same name.
- ``{"kind": "skipped", "id", "source", "reason"}``: a bad input passed over under ``--skip-bad``.
- ``{"kind": "failed", "id", "source", "reason"}``: the bad input that stopped a run without ``--skip-bad``.
- ``{"kind": "resume"}`` / ``{"kind": "end", ...}``: bookkeeping.

Lines are appended in batches, flushed and fsynced. A line torn by a crash is cut off on the next
open. The journal is only ever read line by line (resuming keeps 8 bytes per finished item: a sorted
array of 64-bit id hashes), so its size never bounds the dataset's.

At the end of a complete run ``OUT/manifest.json`` (the ``privis-folder`` manifest that
``folder:OUT`` reads back) is written from the journal, streamed, atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
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
    "read_journal",
    "remove_temp_files",
]

JOURNAL_NAME = "manifest.jsonl"
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


def remove_temp_files(out: Path) -> int:
    """Delete temporary files a killed atomic write left under ``out`` (``.NAME.XXXX.tmp``); return how many."""
    removed = 0
    for dirpath, _dirnames, filenames in os.walk(out):
        for fname in filenames:
            if fname.startswith(".") and fname.endswith(".tmp"):
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
    """Append-only writer of ``OUT/manifest.jsonl`` (one flush + fsync per :meth:`append`)."""

    def __init__(self, out: Path, header: dict[str, Any] | None) -> None:
        self.path = out / JOURNAL_NAME
        out.mkdir(parents=True, exist_ok=True)
        if header is None:
            self._cut_torn_tail()
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        if header is not None:
            record = {"kind": "run", "format": JOURNAL_FORMAT, "version": JOURNAL_VERSION, **header}
            self.append([record])
        else:
            self.append([{"kind": "resume"}])

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

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        text = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
        self._fh.write(text.encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def write_folder_manifest(out: Path, header: dict[str, Any], extra: dict[str, Any]) -> Path:
    """Write ``OUT/manifest.json`` (format ``privis-folder``) from the journal, streamed and atomic.

    Items appear in journal order (the order they finished), each with its item ``id`` and, when the
    protector gave one, its public verification ``tag``; ``skipped`` lists bad inputs that were never
    finished afterwards.
    """
    journal = out / JOURNAL_NAME
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
            "source": header.get("source"),
            "class_names": class_names,
            "class_dirs": class_dirs,
        }
        fh.write(json.dumps(head, ensure_ascii=False, indent=2)[:-2] + ',\n  "items": [')
        for record in read_journal(journal):
            kind = record.get("kind")
            if kind == "item":
                item = {"path": record["path"], "label": record["label"],
                        "class_name": class_names[record["label"]], "sha256": record["sha256"],
                        "source": record["source"], "id": record["id"]}
                if "tag" in record:
                    item["tag"] = record["tag"]
                fh.write(("\n    " if count == 0 else ",\n    ") + json.dumps(item, ensure_ascii=False))
                count += 1
                skipped.pop(str(record["id"]), None)  # a bad input fixed and finished on a resume
            elif kind == "skipped":
                skipped[str(record["id"])] = {"path": str(record["source"]), "reason": str(record["reason"])}
        tail = {"count": count, "skipped": list(skipped.values()), "extra": extra}
        fh.write("\n  ],\n" + json.dumps(tail, ensure_ascii=False, indent=2)[2:] + "\n")
    return path
