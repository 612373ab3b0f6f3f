"""The Ray engine: the same run through Ray Data, on a local or a remote cluster (``--engine ray``).

Plan (one Ray Data pipeline, streamed)::

    from_items([shard 0 .. S-1])
      -> map_batches(_read_shard)       tasks: enumerate shard k lazily, skip finished items, read file bytes
      -> map_batches(ProtectWorker)     actor pool (:func:`actor_options`): the fitted protector is unpickled
                                        once per actor in ``__init__``; each batch is decoded, protected,
                                        and written atomically, and its journal records are returned
      -> iter_batches on the driver     records appended to the run journal as they arrive

Everything else (refusals, fitting, the journal, resume, the final manifest, the summary) is the driver's
and identical to the local engine (:mod:`privis.engine.run`). Items are seeded exactly as locally, so a
protector that takes ``ids`` (or has no randomness) gives byte-identical outputs under both engines;
one seeded per batch gets the seed of the first item of each *Ray* batch, whose composition Ray decides.

On a cluster with GPUs (``ray.cluster_resources()`` has ``"GPU"``) each actor holds ``num_gpus`` of one GPU
(1 by default: one model copy per GPU), there is one actor per such GPU share, its protector's models are
moved to that GPU and its batches are sized per device (:data:`GPU_BATCH_SIZE`); on a CPU-only cluster the
pool is ``workers`` CPU actors. Outputs do not depend on the placement beyond floating-point rounding.

The workers write the outputs themselves, so OUT must be a path every node sees (the same local disk
for a one-machine cluster, a shared file system otherwise). Requires the optional extra ``ray``
(``ray[data]``).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from privis.data.stream import StreamItem, StreamSource, decode_item
from privis.engine.core import RunContext, batch_tags, conform, protect_batch
from privis.engine.journal import item_hashes
from privis.engine.output import EncodedItem, output_rel, quantize, write_chunk
from privis.errors import ImageFileError, InvalidInputError, PrivisError
from privis.methods.base import Protector
from privis.progress import progress_enabled

__all__ = ["ActorPlan", "ProtectWorker", "actor_options", "run_ray"]

_ROW_CHUNK = 512  # rows per block emitted by a read task
#: Images one GPU protects per call unless asked otherwise (split between the actors that share it): enough
#: work per launch to leave the launch overhead behind; 1,024 images of 3 x 224 x 224 are 0.6 GB of float32.
GPU_BATCH_SIZE = 1024


@dataclass(frozen=True)
class ActorPlan:
    """Placement of the actor pool: ``size`` actors, each holding ``num_gpus`` GPUs (0: a CPU actor) and
    protecting ``batch_size`` images per call on ``device``."""

    size: int
    num_gpus: float
    batch_size: int

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus > 0 else "cpu"


def actor_options(resources: Mapping[str, float], workers: int | None, batch_size: int, *,
                  gpus_per_worker: float | None = None, gpu_batch_size: int | None = None) -> ActorPlan:
    """The actor pool for a cluster with ``resources`` (``ray.cluster_resources()``).

    Args:
        resources: the cluster's resource totals; its ``"GPU"`` count decides the placement.
        workers: actors asked for; None: ``1`` on a CPU cluster, one per GPU share on a GPU cluster (where
            more than the shares cannot be placed: at most that many).
        batch_size: images per call of a CPU actor.
        gpus_per_worker: GPUs each actor holds, in ``(0, 1]`` (None: 1, one model copy per GPU; 0.5: two
            copies share a GPU); ``0`` keeps CPU actors on a GPU cluster.
        gpu_batch_size: images per call of one GPU (None: ``max(batch_size, GPU_BATCH_SIZE)``); each actor
            gets its share, ``gpu_batch_size * gpus_per_worker``.

    Returns:
        The :class:`ActorPlan`.

    Raises:
        InvalidInputError: ``gpus_per_worker`` outside ``[0, 1]``, or a GPU total too small for one actor.
    """
    gpus = float(resources.get("GPU", 0.0))
    if gpus_per_worker is not None and not 0 <= gpus_per_worker <= 1:
        raise InvalidInputError(f"gpus_per_worker must be in [0, 1] (one model copy uses one GPU at most), "
                                f"got {gpus_per_worker}")
    if gpus <= 0 or gpus_per_worker == 0:
        return ActorPlan(size=workers or 1, num_gpus=0.0, batch_size=batch_size)
    share = 1.0 if gpus_per_worker is None else gpus_per_worker
    slots = int(gpus / share + 1e-9)  # floor, robust to 3 / 0.1 = 29.999...
    if slots < 1:
        raise InvalidInputError(f"the cluster has {gpus:g} GPU, less than the {share:g} each actor holds")
    per_device = gpu_batch_size or max(batch_size, GPU_BATCH_SIZE)
    return ActorPlan(size=slots if workers is None else min(workers, slots), num_gpus=share,
                     batch_size=max(1, round(per_device * share)))


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise PrivisError("--engine ray needs Ray Data: pip install 'privis[ray]' (ray[data])") from exc
    return ray


def _read_shard(batch: dict[str, np.ndarray], source: StreamSource, num_shards: int,
                done: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    """Enumerate the shards named in ``batch`` lazily; yield blocks of items not yet done, with payloads.

    Payload: the file's bytes (folders) or the pixels as ``.npy`` bytes (arrays); a file that cannot be
    read becomes an item with an ``error``.
    """
    for shard in batch["shard"].tolist():
        rows: list[StreamItem] = []
        for item in source.items(int(shard), num_shards):
            rows.append(item)
            if len(rows) >= _ROW_CHUNK:
                yield _rows_block(rows, done)
                rows = []
        if rows:
            yield _rows_block(rows, done)


def _rows_block(items: list[StreamItem], done: np.ndarray) -> dict[str, np.ndarray]:
    hashes = item_hashes([it.id for it in items])
    if done.size:
        pos = np.minimum(np.searchsorted(done, hashes), done.size - 1)
        keep = done[pos] != hashes
        items = [it for it, k in zip(items, keep, strict=True) if k]
        hashes = hashes[keep]
    payloads: list[bytes] = []
    errors: list[str] = []
    for it in items:
        error = it.error or ""
        data = b""
        if not error and it.file is not None:
            try:
                data = it.file.read_bytes()
            except OSError as exc:
                error = f"cannot read file ({exc.strerror or exc})"
        elif not error and it.array is not None:
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(it.array), allow_pickle=False)
            data = buffer.getvalue()
        payloads.append(data)
        errors.append(error)
    return {
        "id": np.array([it.id for it in items], dtype=object),
        "hash": hashes,
        "label": np.array([it.label for it in items], dtype=np.int64),
        "rel": np.array(["" if it.rel is None else it.rel for it in items], dtype=object),
        "has_rel": np.array([it.rel is not None for it in items], dtype=bool),
        "source": np.array([it.source for it in items], dtype=object),
        "file": np.array(["" if it.file is None else str(it.file) for it in items], dtype=object),
        "sha": np.array(["" if it.sha256 is None else it.sha256 for it in items], dtype=object),
        "scale": np.array([it.scale for it in items], dtype=np.float64),
        "error": np.array(errors, dtype=object),
        "payload": np.array(payloads, dtype=object),
    }


class ProtectWorker:
    """Ray Data callable class: one fitted protector per actor, loaded once, protecting and writing batches."""

    def __init__(self, protector: Protector, mode: str, seed: int | None, out: str, class_names: list[str],
                 class_dirs: list[str], shape: tuple[int, int, int], first: str, fmt: str,
                 device: str = "cpu") -> None:
        self.device = torch.device(device)
        if self.device.type != "cpu":  # this actor's copy of the fitted models goes to its GPU
            for value in vars(protector).values():
                if isinstance(value, nn.Module):
                    value.to(self.device)
        self.protector = protector
        self.mode, self.seed = mode, seed
        self.out = Path(out)
        self.class_names, self.class_dirs = class_names, class_dirs
        self.shape, self.first, self.fmt = tuple(shape), first, fmt

    def _decode(self, batch: dict[str, np.ndarray], k: int) -> tuple[StreamItem, np.ndarray | ImageFileError]:
        file = str(batch["file"][k])
        item = StreamItem(id=str(batch["id"][k]), position=-1, label=int(batch["label"][k]),
                          rel=str(batch["rel"][k]) if bool(batch["has_rel"][k]) else None,
                          source=str(batch["source"][k]), file=Path(file) if file else None,
                          sha256=str(batch["sha"][k]) or None, scale=float(batch["scale"][k]))
        where = item.file if item.file is not None else item.source
        try:
            if batch["error"][k]:
                raise ImageFileError(where, str(batch["error"][k]))
            data = bytes(batch["payload"][k])
            if item.file is not None:
                import hashlib

                from privis.data.folder import MANIFEST_NAME
                from privis.data.imagefile import decode_image
                from privis.data.stream import to_chw

                if item.sha256 is not None and hashlib.sha256(data).hexdigest() != item.sha256:
                    raise ImageFileError(item.file, f"SHA-256 differs from {MANIFEST_NAME}: the file changed "
                                                    "after writing")
                array, scale, item.orientation = decode_image(item.file, data)
                chw = to_chw(array, scale, item.file)
            else:
                item.array = np.load(io.BytesIO(data), allow_pickle=False)
                chw = decode_item(item)
            return item, conform(chw, self.shape, where, self.first)  # type: ignore[arg-type]
        except ImageFileError as exc:
            return item, exc

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["id"])
        records: list[dict[str, Any]] = []
        good: list[StreamItem] = []
        arrays: list[np.ndarray] = []
        keep: list[int] = []
        for k in range(n):
            item, result = self._decode(batch, k)
            if isinstance(result, ImageFileError):
                records.append({"kind": "skipped", "id": item.id, "source": item.source,
                                "reason": result.reason, "where": str(result.path)})
            else:
                good.append(item)
                arrays.append(result)
                keep.append(k)
        if good:
            hashes = np.asarray(batch["hash"], dtype=np.int64)[keep]
            labels = torch.tensor([it.label for it in good], dtype=torch.long)
            images = torch.from_numpy(np.stack(arrays))
            tags = batch_tags(self.protector, images, [it.id for it in good])
            protected = protect_batch(self.protector, self.mode, self.seed, images.to(self.device),
                                      labels.to(self.device), hashes, good[0].id)
            pixels = quantize(protected)
            entries = [EncodedItem(it, output_rel(it, self.class_dirs, self.fmt), tag)
                       for it, tag in zip(good, tags, strict=True)]
            records.extend(write_chunk(self.out, entries, pixels, self.fmt, self.class_names))
        keys = ("kind", "id", "source", "path", "label", "sha256", "tag", "reason", "where", "max_abs_change", "sse",
                "pixels", "orientation")
        defaults: dict[str, Any] = {"label": -1, "max_abs_change": -1, "sse": 0.0, "pixels": 0, "orientation": 1}
        return {key: np.array([r.get(key, defaults.get(key, "")) for r in records],
                              dtype=object if key not in defaults else None) for key in keys}


def _records(batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Journal records from a result batch (dropping the JPEG columns of PNG runs)."""
    out: list[dict[str, Any]] = []
    for k in range(len(batch["kind"])):
        kind = str(batch["kind"][k])
        if kind == "item":
            r: dict[str, Any] = {"kind": "item", "id": str(batch["id"][k]), "source": str(batch["source"][k]),
                                 "path": str(batch["path"][k]), "label": int(batch["label"][k]),
                                 "sha256": str(batch["sha256"][k])}
            if batch["tag"][k]:
                r["tag"] = str(batch["tag"][k])
            if int(batch["orientation"][k]) != 1:
                r["orientation"] = int(batch["orientation"][k])
            if int(batch["max_abs_change"][k]) >= 0:
                r.update(max_abs_change=int(batch["max_abs_change"][k]), sse=float(batch["sse"][k]),
                         pixels=int(batch["pixels"][k]))
        else:
            r = {"kind": "skipped", "id": str(batch["id"][k]), "source": str(batch["source"][k]),
                 "reason": str(batch["reason"][k]), "where": str(batch["where"][k])}
        out.append(r)
    return out


def run_ray(ctx: RunContext, *, address: str | None = None, num_cpus: int | None = None, workers: int | None = None,
            gpus_per_worker: float | None = None, gpu_batch_size: int | None = None) -> None:
    """Run ``ctx`` through Ray Data (module docstring); starts a local cluster on 127.0.0.1 unless one is
    already initialised or ``address`` names one.

    The actor pool is :func:`actor_options` of the cluster's resources with ``workers`` actors (None: one per
    GPU share on a GPU cluster, else 1), ``ctx.batch_size`` images per CPU actor call, and ``gpus_per_worker``
    / ``gpu_batch_size`` as documented there."""
    t0 = time.perf_counter()
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False)
        started = True
    # the throughput figure is the pipeline's; starting or joining the cluster is reported apart
    ctx.summary.startup_seconds = time.perf_counter() - t0
    ctx.started = time.perf_counter()
    try:
        data_ctx = ray.data.DataContext.get_current()
        data_ctx.enable_progress_bars = progress_enabled()
        data_ctx.print_on_execution_start = False
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", 1))
        plan = actor_options(resources, workers, ctx.batch_size,
                             gpus_per_worker=gpus_per_worker, gpu_batch_size=gpu_batch_size)
        gpu_options = {"num_gpus": plan.num_gpus} if plan.num_gpus > 0 else {}
        num_shards = max(1, min(cpus, 8))
        done = ctx.state.done if ctx.state is not None else np.zeros(0, dtype=np.int64)
        ds = ray.data.from_items([{"shard": k} for k in range(num_shards)], override_num_blocks=num_shards)
        ds = ds.map_batches(_read_shard, batch_size=1,
                            fn_kwargs={"source": ctx.source, "num_shards": num_shards, "done": done})
        ds = ds.map_batches(
            ProtectWorker, batch_size=plan.batch_size,
            compute=ray.data.ActorPoolStrategy(size=plan.size),
            fn_constructor_kwargs={"protector": ctx.protector, "mode": ctx.mode, "seed": ctx.seed,
                                   "out": str(ctx.out.resolve()), "class_names": ctx.class_names,
                                   "class_dirs": ctx.class_dirs, "shape": ctx.shape, "first": ctx.first,
                                   "fmt": ctx.fmt, "device": plan.device},
            **gpu_options,
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            records = _records(batch)
            items = [r for r in records if r["kind"] == "item"]
            bad = [r for r in records if r["kind"] == "skipped"]
            ctx.finish_records(items)
            for r in bad:
                if not ctx.skip_bad:
                    ctx.journal.append([{"kind": "failed", "id": r["id"], "source": r["source"],
                                         "reason": r["reason"]}], start=False)
                    ctx.summary.failed += 1
                    raise ImageFileError(r["where"], r["reason"])
                r.pop("where", None)
                ctx.journal.append([r])
                ctx.summary.skipped += 1
    except ImageFileError:
        raise
    except Exception as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, PrivisError):
            raise cause from exc
        if isinstance(exc, PrivisError):
            raise
        raise InvalidInputError(f"the Ray run failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if started:
            ray.shutdown()
