"""Checkpoints of an experiment's slow steps: each step's result saved atomically and privately as
``root/key/STEP-DIGEST.pt`` (``key`` from the data and seed, ``DIGEST`` from the step's settings), so a killed
run continues from the last finished step; a damaged file is recomputed with one warning. Used by the Veil
tables (:mod:`privis.experiments.veil_tables`)."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from privis.fsutil import atomic_stream, private_dir

T = TypeVar("T")


def cache_root() -> Path:
    """The default checkpoint folder: ``$XDG_CACHE_HOME/privis/veil-tables``, else
    ``~/.cache/privis/veil-tables``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "privis" / "veil-tables"


def digest(value: Any) -> str:
    """Hex SHA-256 of ``value`` written as sorted JSON (non-JSON values by ``str``)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def data_fingerprint(*tensors: Tensor) -> str:
    """Hex SHA-256 of the tensors' shapes, dtypes and bytes (read from a CPU copy)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class Checkpoints:
    """The saved slow steps of one run, as ``root/key/STEP-DIGEST.pt`` (module docstring, "Checkpoints").

    Args:
        root: the checkpoint folder; None keeps nothing (every step is computed).
        key: the run's key (derived from its data and seed).

    Attributes:
        loaded, computed: the steps of this object's run read from a file / computed, in order.
    """

    def __init__(self, root: Path | None, key: str) -> None:
        self.root = root
        self.key = key
        self.loaded: list[str] = []
        self.computed: list[str] = []

    def step(self, name: str, spec: Mapping[str, Any], make: Callable[[], dict[str, Any]],
             use: Callable[[dict[str, Any]], T]) -> T:
        """``use(payload)`` of the saved payload of step ``name`` with settings ``spec``, else of ``make()``,
        which is then saved atomically (``0600``) before it is used.

        A file that cannot be read, was written for other settings or that ``use`` rejects is ignored with
        one warning and the step recomputed (and the file replaced).
        """
        if self.root is None:
            self.computed.append(name)
            return use(make())
        check = digest(spec)
        path = self.root / self.key / f"{name}-{check[:16]}.pt"
        if path.exists():
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
                if not isinstance(payload, dict) or payload.get("spec") != check:
                    raise ValueError("it was written for other settings")
                value = use(payload)
            # whatever a damaged file raises (unpickling, zip, shape or key errors), the step is recomputed
            except Exception as exc:  # noqa: BLE001
                warnings.warn(f"ignoring the unreadable checkpoint {path.name} of run {self.key} "
                              f"({_first_line(exc)}); recomputing it", stacklevel=2)
            else:
                self.loaded.append(name)
                return value
        payload = make()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)  # a folder the user named keeps its mode
        private_dir(path.parent)
        with atomic_stream(path, "wb", private=True) as fh:
            torch.save({**payload, "spec": check}, fh)
        self.computed.append(name)
        return use(payload)
