"""In-process engine: fit once, then protect and save batch by batch.

Each batch is written (atomically, file by file) as soon as it is protected, so a crash loses at most
the batch in flight; the manifest records the method, its public parameters, the package versions and
every skipped input. Secrets (masks, permutations) never reach the disk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from privis import data as pdata
from privis.errors import InvalidInputError
from privis.methods.base import Protector
from privis.progress import progress
from privis.results import package_versions


def public_params(protector: Protector) -> dict[str, Any]:
    """Constructor parameters safe to record: models are named by class, not serialised."""
    out: dict[str, Any] = {}
    for key, value in protector.get_params().items():
        out[key] = type(value).__name__ if isinstance(value, torch.nn.Module) else value
    return out


def source_folders(dataset: pdata.Dataset) -> list[Path]:
    """Input folders of a ``folder:`` dataset, so the writer can refuse to write into them."""
    if dataset.name.startswith("folder:"):
        return [Path(dataset.name.split(":", 1)[1])]
    return []


def protect_dataset(protector: Protector, dataset: pdata.Dataset, out: str | Path, *,
                    fit_on: pdata.Dataset | None = None, batch_size: int = 256,
                    overwrite: bool = False) -> dict[str, float]:
    """Fit ``protector`` on ``fit_on`` (default ``dataset``) and write ``dataset`` protected to ``out``.

    Returns:
        ``written``, ``skipped``, ``seconds`` and ``images_per_second`` (protection and writing).
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    fit_on = fit_on or dataset
    protector.fit(fit_on.images, fit_on.labels)
    writer = pdata.FolderWriter(
        out, dataset.class_names, inputs=source_folders(dataset) + source_folders(fit_on),
        overwrite=overwrite, skipped=dataset.skipped, source=dataset.name,
        extra={"method": protector.name, "params": public_params(protector), "versions": package_versions()},
    )
    t0 = time.perf_counter()
    n = len(dataset)
    starts = range(0, n, batch_size)
    for start in progress(starts, total=len(starts), desc=f"protect {protector.name}", unit="batch"):
        stop = min(start + batch_size, n)
        batch = dataset.images[start:stop]
        labels = dataset.labels[start:stop]
        protected = protector.transform(batch, labels)
        paths = dataset.paths[start:stop] if dataset.paths else None
        writer.write(protected, labels, paths)
    writer.close()
    seconds = time.perf_counter() - t0
    return {"written": n, "skipped": len(dataset.skipped), "seconds": seconds,
            "images_per_second": n / max(seconds, 1e-9)}
