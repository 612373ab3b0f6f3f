"""``protect``: one run of a protector over a dataset of any size, crash-safe and resumable.

Steps (issue 6):

1. The run's image shape, decided over the whole source (:meth:`~privis.data.stream.StreamSource.run_shape`;
   for folders, from every header: the most common size, 3 channels if any image of it is colour); an
   input without one usable image stops here, naming its first bad file.
2. Refusals, before any protecting: an output folder equal to, inside or containing an input (outputs
   never overwrite inputs); an output folder holding another run's outputs (its journal or a privis
   ``manifest.json``) unless ``resume`` (continue that run) or ``force`` (delete its listed outputs and
   start over); a non-empty folder that is not a privis run unless ``force``.
3. Fitting, for protectors that override ``fit``: on ``fit_data`` when given (loaded in memory), on an
   in-memory dataset as a whole, else on a reproducible reservoir sample of at most ``fit_size`` items of
   the stream (so a folder of millions is never loaded to fit).
4. A resumed run must match the interrupted one: method, public parameters, seed fingerprint, source,
   classes, shape, format, seeding mode and the fingerprint of the fitted state.
5. JPEG (lossy) output is refused unless ``allow_lossy``; the refusal reports the change JPEG would make to
   the protected pixels of the first batch. A protector whose outputs its owner inverts (keyed mode,
   ``needs_exact_output``) gets no lossy output at all, refused before any work.
6. The engine (``local`` or ``ray``) protects what is not done yet; items are journalled as they land.
7. A complete run writes ``manifest.json`` (``folder:OUT`` reads the outputs back) and a summary.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from privis.data.dataset import Dataset
from privis.data.folder import MANIFEST_NAME, overlap_error
from privis.data.stream import StreamSource, decode_item, open_source
from privis.engine.core import (
    RunContext,
    RunSummary,
    conform,
    fitted_fingerprint,
    ids_mode,
    iter_groups,
    protect_batch,
    public_params,
    seed_fingerprint,
)
from privis.engine.journal import (
    JOURNAL_NAME,
    Journal,
    JournalState,
    read_journal,
    remove_temp_files,
    write_folder_manifest,
)
from privis.engine.output import FORMATS, encode_frame, jpeg_change, quantize
from privis.errors import DatasetError, ImageFileError, InvalidInputError
from privis.methods.base import Protector
from privis.results import package_versions

__all__ = ["ENGINES", "protect"]

ENGINES = ("local", "ray")
#: Parameters a resumed run must share with the interrupted one.
_IDENTITY = ("method", "params", "seed_fingerprint", "source_id", "class_names", "class_dirs", "shape", "output_format",
             "ids_mode", "fitted")


def _remove_listed(out: Path) -> None:
    """Delete the outputs an earlier run lists (journal and/or manifest.json), then its records."""
    journal, manifest = out / JOURNAL_NAME, out / MANIFEST_NAME
    root = out.resolve()

    def unlink(rel: object) -> None:
        if isinstance(rel, str) and rel and not rel.startswith(("/", "\\")):
            target = (out / rel).resolve()
            if target.is_relative_to(root) and target != root:
                target.unlink(missing_ok=True)

    if journal.exists():
        for record in read_journal(journal):
            if record.get("kind") == "item":
                unlink(record.get("path"))
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{manifest}: unreadable manifest, not replacing it ({exc})") from exc
        for item in old.get("items", []) if isinstance(old, dict) else []:
            if isinstance(item, dict):
                unlink(item.get("path"))
        manifest.unlink()
    journal.unlink(missing_ok=True)
    remove_temp_files(out)
    for dirpath, _dirs, _files in sorted(os.walk(out), key=lambda t: -len(t[0])):
        if Path(dirpath) != out and not os.listdir(dirpath):
            os.rmdir(dirpath)


def _prepare_out(out: Path, inputs: list[Path], *, resume: bool, force: bool) -> JournalState | None:
    """Apply the output-folder rules (module docstring, step 2); return the journal to resume, if any."""
    if resume and force:
        raise InvalidInputError("--resume and --force exclude each other: continue the run, or replace it")
    why = overlap_error(out, inputs)
    if why is not None:
        raise InvalidInputError(f"refusing to write: {why} (outputs must never overwrite inputs)")
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"output {out} exists and is not a folder")
    journal, manifest = out / JOURNAL_NAME, out / MANIFEST_NAME
    if journal.exists():
        if resume:
            remove_temp_files(out)  # a killed atomic write leaves its temporary file behind
            return JournalState(journal)
        if force:
            _remove_listed(out)
            return None
        state = JournalState(journal)
        raise InvalidInputError(
            f"output folder {out} holds another run's outputs ({state.header.get('method')} on "
            f"{state.header.get('source')}, {state.done.size} items finished); pass --resume to continue "
            "that run or --force to replace it"
        )
    if manifest.exists():
        if force:
            _remove_listed(out)
            return None
        hint = "it has no manifest.jsonl to resume from; " if resume else ""
        raise InvalidInputError(f"output folder {out} holds another run's outputs ({MANIFEST_NAME}); {hint}"
                                "pass --force to replace them")
    if not force and out.exists() and any(not e.name.startswith(".") for e in out.iterdir()):
        hint = " (and holds no run to resume)" if resume else ""
        raise InvalidInputError(f"output folder {out} is not empty{hint}; choose a new folder or pass --force")
    if (resume or force) and out.exists():
        remove_temp_files(out)
    return None


def _needs_fit(protector: Protector) -> bool:
    return type(protector).fit is not Protector.fit


def _fit(protector: Protector, source: StreamSource, fit_data: str | Dataset | None, *, shape: tuple[int, int, int],
         first: str, skip_bad: bool, fit_size: int, seed: int | None) -> None:
    """Fit on ``fit_data``, the in-memory dataset, or a reservoir sample of the stream (step 3)."""
    if fit_data is not None:
        from privis.data.registry import load

        ds = fit_data if isinstance(fit_data, Dataset) else load(fit_data, skip_bad=skip_bad)
        protector.fit(ds.images, ds.labels)
        return
    if hasattr(source, "dataset"):
        ds = source.dataset  # type: ignore[attr-defined]
        protector.fit(ds.images, ds.labels)
        return
    rng = np.random.default_rng(0 if seed is None else seed)
    sample: list[Any] = []
    for seen, item in enumerate(source.items()):  # reservoir sampling (Vitter's algorithm R)
        if len(sample) < fit_size:
            sample.append(item)
        else:
            j = int(rng.integers(0, seen + 1))
            if j < fit_size:
                sample[j] = item
    sample.sort(key=lambda it: it.position)
    arrays, labels = [], []
    for item in sample:
        try:
            arrays.append(conform(decode_item(item), shape, item.file or item.source, first))
            labels.append(item.label)
        except ImageFileError:
            continue  # the run meets it in order, then skips it or stops on it with a summary
    if not arrays:
        raise DatasetError(f"{source.name}: no usable image to fit {protector.name} on")
    protector.fit(torch.from_numpy(np.stack(arrays)), torch.tensor(labels, dtype=torch.long))


def _refuse_jpeg(ctx: RunContext) -> None:
    """Measure what JPEG does to the first batch's protected pixels and refuse with the figures (step 5)."""
    group = next(iter_groups(ctx.source.items(), ctx.batch_size, ctx.state), None)
    if group is None:
        return
    arrays, labels, keep = [], [], []
    for k, item in enumerate(group.items):
        try:
            arrays.append(conform(decode_item(item), ctx.shape, item.file or item.source, ctx.first))
            labels.append(item.label)
            keep.append(k)
        except ImageFileError:
            continue
    if not arrays:
        return
    protected = protect_batch(ctx.protector, ctx.mode, ctx.seed, torch.from_numpy(np.stack(arrays)),
                              torch.tensor(labels), group.hashes[keep], group.first_id)
    pixels = quantize(protected)
    worst, sse = 0, 0.0
    for frame in pixels:
        m, s = jpeg_change(frame, encode_frame(frame, "jpeg"))
        worst, sse = max(worst, m), sse + s
    mse = sse / pixels.size
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    raise InvalidInputError(
        f"refusing lossy JPEG output: it would change the protected pixels (first {len(pixels)} images: up to "
        f"{worst}/255, RMS {np.sqrt(mse):.2f}/255, PSNR {psnr:.2f} dB); PNG keeps them exactly. Pass "
        "--allow-lossy (allow_lossy=True) to write JPEG anyway"
    )


def protect(protector: Protector, data: str | Dataset | StreamSource, out: str | Path, *,
            fit_data: str | Dataset | None = None, fit_size: int = 10_000, batch_size: int = 256,
            workers: int = 1, resume: bool = False, force: bool = False, skip_bad: bool = False,
            output_format: str = "png", allow_lossy: bool = False, engine: str = "local",
            address: str | None = None, num_cpus: int | None = None,
            report: Callable[[str], None] | None = None) -> RunSummary:
    """Protect ``data`` with ``protector`` into the folder ``out``, streaming, crash-safe and resumable.

    Args:
        protector: any :class:`~privis.methods.Protector` (fitted here when it overrides ``fit``).
        data: a dataset spec (``folder:PATH``, ``npz:PATH``, ``digits:train`` ...), a ``Dataset`` or a
            :class:`~privis.data.stream.StreamSource`.
        out: output folder; outputs keep the input's relative path and stem (``.png`` or ``.jpg``).
        fit_data: data to fit on (spec or ``Dataset``); default: see the module docstring, step 3.
        fit_size: the most items sampled from a stream to fit on.
        batch_size: images protected per batch; memory is bounded by a few batches.
        workers: threads in each of the reader and writer pools (local), or Ray actors (ray).
        resume: continue the run whose journal is in ``out``.
        force: delete the outputs of another run found in ``out`` and start over.
        skip_bad: journal a bad input with its reason and go on; otherwise stop with its name.
        output_format: ``"png"`` (lossless) or ``"jpeg"`` (needs ``allow_lossy``; refused for a protector that
            ``needs_exact_output``, i.e. keyed mode).
        engine: ``"local"`` (threads in this process) or ``"ray"`` (Ray Data, see ``ray_engine``).
        address: Ray cluster address (``ray``); default starts a local cluster.
        num_cpus: CPUs of a local Ray cluster (default: all).
        report: called with the one-line summary at the end (also when the run stops on an error).

    Returns:
        :class:`~privis.engine.core.RunSummary`.

    Raises:
        InvalidInputError: a refusal (step 2, 4 or 5) or a bad argument.
        ImageFileError: a bad input file, without ``skip_bad`` (after journalling what was finished).
    """
    if batch_size < 1 or workers < 1 or fit_size < 1:
        raise InvalidInputError(f"batch_size, workers and fit_size must be >= 1 (got {batch_size}, {workers}, "
                                f"{fit_size})")
    if output_format not in FORMATS:
        raise InvalidInputError(f"unknown output format {output_format!r} (use one of {', '.join(FORMATS)})")
    if output_format != "png" and protector.needs_exact_output():
        raise InvalidInputError(f"{protector.name} in keyed mode needs lossless output to be restored exactly; "
                                f"{output_format} changes pixels (use png)")
    if engine not in ENGINES:
        raise InvalidInputError(f"unknown engine {engine!r} (use one of {', '.join(ENGINES)})")
    out = Path(out).expanduser()
    source = open_source(data)
    inputs = list(source.inputs)
    if isinstance(fit_data, str):
        from privis.data.spec import parse_spec

        spec = parse_spec(fit_data)
        if spec.path is not None:
            inputs.append(Path(spec.path))
    shape, first = source.run_shape()  # decided over the whole source; an unusable one stops here
    state = _prepare_out(out, inputs, resume=resume, force=force)
    seed = protector.get_params().get("random_state") if "random_state" in protector._param_names() else None
    class_dirs = source.class_dirs
    if class_dirs is None:
        from privis.data.folder import class_dir_names

        class_dirs = class_dir_names(source.class_names)
    mode = ids_mode(protector)
    source_id = source.name
    for kind in ("folder:", "npz:"):
        if source.name.startswith(kind):
            source_id = kind + str(Path(source.name[len(kind):]).expanduser().resolve())
    header: dict[str, Any] = {
        "method": protector.name, "params": public_params(protector), "seed_fingerprint": seed_fingerprint(seed),
        "source": source.name,
        "source_id": source_id, "class_names": list(source.class_names), "class_dirs": list(class_dirs),
        "shape": list(shape), "output_format": output_format, "batch_size": batch_size, "ids_mode": mode,
    }

    def check_identity(keys: tuple[str, ...]) -> None:
        assert state is not None
        for key in keys:
            if state.header.get(key) != header[key]:
                raise InvalidInputError(
                    f"cannot resume the run in {out}: its {key} was {state.header.get(key)!r}, this run's is "
                    f"{header[key]!r}; the outputs would not match. Pass --force to start over"
                )

    if state is not None:  # what is known before fitting is checked before fitting
        check_identity(tuple(k for k in _IDENTITY if k != "fitted") + (("batch_size",) if mode == "batch-seed"
                                                                         else ()))
    if _needs_fit(protector):
        _fit(protector, source, fit_data, shape=shape, first=first, skip_bad=skip_bad, fit_size=fit_size, seed=seed)
    header.update(fitted=fitted_fingerprint(protector), versions=package_versions(),
                  created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if state is not None:
        check_identity(("fitted",))

    summary = RunSummary(out=str(out), engine=engine, already_done=0 if state is None else int(state.done.size),
                         found=source.count() + len(source.ignored), ignored=len(source.ignored))
    ctx = RunContext(protector=protector, mode=mode, seed=seed, source=source, out=out,
                     class_names=list(source.class_names), class_dirs=list(class_dirs), shape=shape, first=first,
                     batch_size=batch_size, workers=workers, skip_bad=skip_bad, fmt=output_format, state=state,
                     journal=None, summary=summary, report=report)  # type: ignore[arg-type]
    if output_format == "jpeg" and not allow_lossy:
        _refuse_jpeg(ctx)
    ctx.journal = Journal(out, header if state is None else None)
    ctx.started = time.perf_counter()
    try:
        if engine == "ray":
            from privis.engine.ray_engine import run_ray

            run_ray(ctx, address=address, num_cpus=num_cpus)
        else:
            from privis.engine.local import run_local

            run_local(ctx)
        ctx.close_summary()
        ctx.journal.append([{"kind": "end", "done": summary.done, "skipped": summary.skipped,
                             "seconds": round(summary.seconds, 3)}])
        extra = {"method": protector.name, "params": header["params"], "seed_fingerprint": header["seed_fingerprint"],
                 "versions": header["versions"],
                 "output_format": output_format, "ids_mode": mode, "journal": JOURNAL_NAME}
        public = protector.public_record()
        if public:
            extra["public"] = public
        write_folder_manifest(out, header if state is None else state.header, extra)
        summary.complete = True
    finally:
        ctx.journal.close()
        ctx.close_summary()
        if report is not None:
            report(summary.line())
    return summary
