"""The ``Result`` every experiment, evaluation, attack and benchmark returns (``docs/architecture.md``, "Result").

It lives at the bottom of the import graph so that every layer can build one; ``privis.report`` renders
it to HTML.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from privis.fsutil import atomic_write_text


def package_versions() -> dict[str, str]:
    """Versions of privis and the libraries whose behaviour shapes a result."""
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for pkg in ("privis", "torch", "numpy", "scipy", "scikit-image", "scikit-learn", "Pillow"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return versions


def file_label(path: str | Path) -> str:
    """How a result names a file the owner passed in: its name, never the folders above it (results are
    shared; the owner's paths stay with the owner)."""
    return Path(path).name


def _jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays, paths and tuples to plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if hasattr(value, "detach") and hasattr(value, "tolist"):  # torch.Tensor, without importing torch
        return _jsonable(value.detach().cpu().tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Figure:
    """An image or plot to embed in a report: PNG bytes and a caption."""

    title: str
    png: bytes
    caption: str = ""


@dataclass
class Result:
    """Outcome of a named run.

    Attributes:
        name: experiment / evaluation name.
        summary: flat mapping of names to numbers, the figures read first.
        tables: name -> list of row dicts (all rows share keys).
        config: the parameters that produced the result.
        notes: free-text remarks shown in the report (what was tried, caveats).
        figures: images and plots for the HTML report (not serialised to JSON).
        seconds: wall-clock duration.
        headline: one sentence saying what was measured and on what data, shown first in the report
            (optional; written to JSON only when set).
        targets: summary key -> the value it should reach (e.g. ``{"protected_acc_original": 0.85}``); the
            report states met / missed from the key's direction (higher or lower is better). Optional;
            written to JSON only when set.

    Examples:
        >>> import json
        >>> from privis.results import Result
        >>> result = Result("my-run", summary={"ssim_mean": 0.12}, config={"method": "blur"})
        >>> record = json.loads(result.to_json())
        >>> record["summary"], sorted(record)
        ({'ssim_mean': 0.12}, ['config', 'name', 'notes', 'seconds', 'summary', 'tables', 'versions'])
    """

    name: str
    summary: dict[str, float] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=package_versions)
    headline: str = ""
    targets: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": self.name,
            "summary": self.summary,
            "tables": self.tables,
            "config": self.config,
            "notes": self.notes,
            "versions": self.versions,
            "seconds": self.seconds,
        }
        record.update({key: value for key, value in (("headline", self.headline), ("targets", self.targets))
                       if value})
        return _jsonable(record)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def save_json(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.to_json() + "\n")
