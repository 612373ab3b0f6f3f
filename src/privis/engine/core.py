"""Pieces both engines share: per-item seeding, aligned batches, shape rules, the run context and summary.

Randomness per item (``docs/architecture.md``, "Randomness"). An item's output must depend only on the item and
the seed, so that batching, worker count and resuming do not change it:

- a protector that declares ``accepts_ids`` (its ``transform`` takes ``ids``) gets ``ids``: ``(B,)`` int64
  stable 63-bit hashes of the item ids (:func:`~privis.engine.journal.item_hash`); it must derive item
  ``i``'s randomness from ``(random_state, ids[i])`` alone (mode ``"ids"``);
- a ``stochastic`` protector (it has a ``random_state``) without ``ids`` is re-seeded per batch with a seed
  derived from ``(seed, id of the batch's first item)`` (mode ``"batch-seed"``). Batches are aligned on
  positions in the full enumeration (batch ``k`` holds positions ``k B .. k B + B - 1``), so a batch computed
  whole gives the same outputs in a fresh and in a resumed run. Caveat: the items of a batch that a crash
  interrupted halfway are re-protected in a smaller batch, and a method that draws its randomness for
  the whole batch at once (e.g. Veil's flip masks) then gives those items different (equally valid)
  outputs; so does a different ``batch_size``, and so do Ray's batches;
- a protector without randomness (mode ``"none"``) is called as is.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from privis.data.stream import StreamItem, StreamSource
from privis.engine.journal import Journal, JournalState, item_hash, item_hashes
from privis.errors import ImageFileError, InvalidInputError
from privis.methods.base import Protector
from privis.sysinfo import peak_rss_mb

__all__ = ["Group", "RunContext", "RunSummary", "batch_tags", "conform", "derive_seed", "fitted_fingerprint",
           "ids_mode", "is_private_param", "iter_groups", "protect_batch", "public_params"]


def ids_mode(protector: Protector) -> str:
    """``"ids"``, ``"batch-seed"`` or ``"none"``: how the engine makes an item's randomness its own, read
    from the protector's declared tags (``accepts_ids``, then ``stochastic``)."""
    if protector.accepts_ids:
        return "ids"
    if protector.stochastic:
        return "batch-seed"
    return "none"


def derive_seed(seed: int, item_id: str) -> int:
    """A 63-bit seed from ``(seed, item_id)`` (BLAKE2b), for the per-batch fallback."""
    return item_hash(f"{int(seed)}\x00{item_id}")


def protect_batch(protector: Protector, mode: str, seed: int | None, images: Tensor, labels: Tensor,
                  hashes: np.ndarray, first_id: str) -> Tensor:
    """Run ``protector.transform`` on one batch with the item-level seeding of ``mode`` (module docstring)."""
    if mode == "ids":  # the protector declares accepts_ids: its transform takes ids
        transform: Callable[..., Tensor] = protector.transform
        return transform(images, labels, ids=torch.from_numpy(np.ascontiguousarray(hashes)))
    if mode == "batch-seed" and seed is not None:
        protector.set_params(random_state=derive_seed(seed, first_id))
        try:
            return protector.transform(images, labels)
        finally:
            protector.set_params(random_state=seed)
    return protector.transform(images, labels)


def batch_tags(protector: Protector, images: Tensor, ids: list[str]) -> list[str | None]:
    """The protector's public per-item tags (:meth:`~privis.methods.base.Protector.item_tags`) for the batch
    about to be protected, one per item (None where it gives none); recorded as each item's ``tag``.

    Raises:
        InvalidInputError: the protector returned a number of tags other than one per item.
    """
    tags = protector.item_tags(images, ids)
    if tags is None:
        return [None] * len(ids)
    if len(tags) != len(ids):
        raise InvalidInputError(f"{protector.name}.item_tags returned {len(tags)} tags for {len(ids)} images")
    return [str(t) for t in tags]


#: Parameter-name endings that hold the owner's file paths (a key file, ...): never written into OUT.
_PATH_PARAMS = ("_file", "_path", "_dir")


def is_private_param(protector: Protector | type[Protector], key: str) -> bool:
    """Whether parameter ``key`` names the owner's files or secrets (the class's ``private_params``, or a name
    ending in ``_file``, ``_path`` or ``_dir``): never written where others read results."""
    return key in protector.private_params or key.endswith(_PATH_PARAMS)


def public_params(protector: Protector, *, secret: bool = False) -> dict[str, Any]:
    """Constructor parameters as JSON values: models named by class, other objects by ``repr``.

    ``random_state`` is always left out (the seed regenerates a method's masks and noise; the owner-side
    run state keeps only a salted check value of it). Unless ``secret``, parameters naming the owner's
    files (``key_file``, any ``*_file``, ``*_path``, ``*_dir``) are left out too: this is what may be
    written next to the outputs. ``secret=True`` keeps them, for the owner-side identity of a run.
    """
    out: dict[str, Any] = {}
    for key, value in protector.get_params().items():
        if key == "random_state" or (not secret and is_private_param(protector, key)):
            continue
        if isinstance(value, nn.Module):
            out[key] = type(value).__name__
        elif isinstance(value, str | int | float | bool | type(None)):
            out[key] = value
        else:
            out[key] = repr(value)
    return out


def _hash_value(h: Any, value: Any) -> bool:
    """Feed ``value`` into hash ``h``; False when it is of a kind not fingerprinted."""
    if isinstance(value, Tensor):
        h.update(str((tuple(value.shape), str(value.dtype))).encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(value, nn.Module):
        for name, tensor in sorted(value.state_dict().items()):
            h.update(name.encode())
            _hash_value(h, tensor)
    elif isinstance(value, np.ndarray):
        h.update(str((value.shape, str(value.dtype))).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, str | int | float | bool | type(None)):
        h.update(repr(value).encode())
    elif isinstance(value, list | tuple):
        for v in value:
            _hash_value(h, v)
    else:
        return False
    return True


def fitted_fingerprint(protector: Protector) -> str:
    """SHA-256 over the fitted state (public attributes ending in ``_``: tensors, models, arrays, numbers).

    Figures of a ``transform`` call are not fitted state: protectors keep them in private attributes (read
    by ``diagnostics``), so every public ``*_`` attribute is hashed. A resume reloads the fitted protector
    the interrupted run saved (or refits one that could not be pickled) and must find the same
    fingerprint, else its outputs would not match the interrupted run's.
    """
    h = hashlib.sha256()
    for key in sorted(vars(protector)):
        if key.endswith("_") and not key.startswith("_"):
            h.update(key.encode())
            _hash_value(h, getattr(protector, key))
    return h.hexdigest()


def conform(array: np.ndarray, shape: tuple[int, int, int], where: str | Path, first: str) -> np.ndarray:
    """Bring one decoded ``(C, H, W)`` image to the run's ``shape`` or raise why it cannot be.

    Grey images in a colour run are repeated over 3 channels (lossless); a colour image in a grey run and
    any size other than the run's are bad items.
    """
    c, h, w = shape
    if array.shape[1:] != (h, w):
        raise ImageFileError(where, f"size {array.shape[2]}x{array.shape[1]} (WxH) differs from the run's "
                                    f"{w}x{h} (fixed by {first})")
    if array.shape[0] == c:
        return array
    if c == 3 and array.shape[0] == 1:
        return np.repeat(array, 3, axis=0)
    raise ImageFileError(where, f"colour image in a grey run (the run's shape is fixed by {first})")


@dataclass
class Group:
    """One aligned batch: ``index`` = position // batch_size; ``items`` not yet done; ``first_id`` the id
    at the batch's first position (done or not); ``hashes`` of the items' ids."""

    index: int
    items: list[StreamItem]
    first_id: str
    hashes: np.ndarray


def iter_groups(items: Iterator[StreamItem], batch_size: int, state: JournalState | None) -> Iterator[Group]:
    """Aligned batches of the items not yet done (empty batches are left out)."""

    def finish(index: int, batch: list[StreamItem]) -> Group | None:
        hashes = item_hashes([it.id for it in batch])
        first = batch[0].id
        if state is not None:
            keep = ~state.is_done(hashes)
            if not keep.all():
                batch = [it for it, k in zip(batch, keep, strict=True) if k]
                hashes = hashes[keep]
        return Group(index, batch, first, hashes) if batch else None

    current: list[StreamItem] = []
    index = -1
    for item in items:
        g = item.position // batch_size
        if g != index and current:
            group = finish(index, current)
            if group is not None:
                yield group
            current = []
        index = g
        current.append(item)
    if current:
        group = finish(index, current)
        if group is not None:
            yield group


@dataclass
class RunSummary:
    """What a run did. ``found`` counts everything the source holds (items and ignored entries);
    ``done`` items finished by this run, ``already_done`` those a resumed run found finished; ``skipped``
    bad inputs passed over (``--skip-bad``); ``ignored`` entries never read by rule (a folder's hidden
    files, link loops); ``failed`` the bad input that stopped the run (0 or 1). A complete run accounts for
    every input: ``found == done + already_done + skipped + ignored``. ``images_per_second`` = done /
    seconds of the protecting loop (for Ray, after ``startup_seconds`` spent starting or joining the
    cluster)."""

    out: str
    engine: str = "local"
    done: int = 0
    already_done: int = 0
    skipped: int = 0
    failed: int = 0
    found: int = 0
    ignored: int = 0
    seconds: float = 0.0
    complete: bool = False
    startup_seconds: float = 0.0
    jpeg_max_abs_change: int | None = None
    jpeg_psnr_db: float | None = None
    peak_rss_mb: float = 0.0
    _sse: float = field(default=0.0, repr=False)
    _pixels: int = field(default=0, repr=False)

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def add_records(self, records: list[dict[str, Any]]) -> None:
        """Count finished items (and JPEG changes) of journal records."""
        for r in records:
            if r.get("kind") != "item":
                continue
            self.done += 1
            if "max_abs_change" in r:
                self.jpeg_max_abs_change = max(self.jpeg_max_abs_change or 0, int(r["max_abs_change"]))
                self._sse += float(r["sse"])
                self._pixels += int(r["pixels"])
        if self._pixels:
            mse = self._sse / self._pixels
            self.jpeg_psnr_db = float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))

    @property
    def unaccounted(self) -> int:
        """Inputs found but neither written nor skipped nor ignored: 0 for a complete run, the items not
        reached when a run stopped."""
        return self.found - self.done - self.already_done - self.skipped - self.ignored - self.failed

    def line(self) -> str:
        """One line: ``found N: done, already done, skipped, failed, ignored`` (plus ``not reached`` for a
        stopped run), then speed, time and memory."""
        text = (f"found {self.found}: done {self.done}, already done {self.already_done}, skipped {self.skipped}, "
                f"failed {self.failed}, ignored {self.ignored}")
        if self.unaccounted > 0:
            text += f", not reached {self.unaccounted}"
        text += (f"; {self.images_per_second:.1f} images/s ({self.seconds:.1f} s, "
                 f"peak memory {self.peak_rss_mb:.1f} MiB)")
        if self.startup_seconds:
            text += f"; cluster start {self.startup_seconds:.1f} s"
        if self.jpeg_max_abs_change is not None:
            text += (f"; JPEG changed protected pixels by up to {self.jpeg_max_abs_change}/255 "
                     f"(PSNR {self.jpeg_psnr_db:.2f} dB)")
        return text


@dataclass
class RunContext:
    """Everything an engine's executor needs for one run."""

    protector: Protector
    mode: str
    seed: int | None
    source: StreamSource
    out: Path
    class_names: list[str]
    class_dirs: list[str]
    shape: tuple[int, int, int]
    first: str
    batch_size: int
    workers: int
    skip_bad: bool
    fmt: str
    state: JournalState | None
    journal: Journal
    summary: RunSummary
    report: Callable[[str], None] | None = None
    started: float = field(default_factory=time.perf_counter)

    def record_skip(self, item: StreamItem, reason: str) -> None:
        self.journal.append([{"kind": "skipped", "id": item.id, "source": item.source, "reason": reason}])
        self.summary.skipped += 1

    def record_failure(self, item: StreamItem, reason: str) -> None:
        """Journal the bad input that stops the run (a resume retries it); a run that has written nothing
        yet leaves no journal for it."""
        self.journal.append([{"kind": "failed", "id": item.id, "source": item.source, "reason": reason}],
                            start=False)
        self.summary.failed += 1

    def finish_records(self, records: list[dict[str, Any]]) -> None:
        self.journal.append(records)
        self.summary.add_records(records)

    def close_summary(self) -> RunSummary:
        self.summary.seconds = time.perf_counter() - self.started
        self.summary.peak_rss_mb = peak_rss_mb()
        return self.summary
