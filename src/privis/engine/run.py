"""``protect``: one run of a protector over a dataset of any size, crash-safe and resumable.

Steps:

1. The run's image shape, decided over the whole source (:meth:`~privis.data.stream.StreamSource.run_shape`;
   for folders, from every header: the most common size, 3 channels if any image of it is colour); an
   input without one usable image stops here, naming its first bad file.
2. Refusals, before any protecting: an output path equal to, inside or containing an input, or not
   writable (:func:`privis.fsutil.check_outputs`; outputs never overwrite inputs). The output folder is
   then locked for this run (a second run into it is refused, naming the holder). An output folder
   holding another run's outputs (its owner-side run state, :mod:`privis.engine.state`, or a privis
   ``manifest.json``) is refused unless ``resume`` (continue that run) or ``force`` (replace it); any
   other non-empty folder unless ``force``; ``resume`` into an empty or missing folder starts a new run.
   ``force`` removes only files privis recorded as its own whose SHA-256 still matches; a file privis did
   not write (another tool's ``manifest.json``, a user's image, a privis output edited since) that this
   run would replace is listed and refused. A randomised method run with a guessable seed gets a warning
   (:func:`seed_warning`).
3. Fitting, for protectors that override ``fit``: on ``fit_data`` when given (loaded in memory), on an
   in-memory dataset as a whole, else on a reproducible reservoir sample of at most ``fit_size`` items of
   the stream (so a folder of millions is never loaded to fit). A resumed run reloads the fitted
   protector the interrupted run saved in its state (refitting, e.g. on a GPU, is not bit-identical).
4. A resumed run must match the interrupted one: method, parameters, seed (a salted check value), source,
   classes, shape, format, seeding mode and the fingerprint of the fitted state.
5. JPEG (lossy) output is refused unless ``allow_lossy``; the refusal reports the change JPEG would make to
   the protected pixels of the first batch. A protector whose outputs its owner inverts (keyed mode,
   ``needs_exact_output``) gets no lossy output at all, refused before any work.
6. The engine (``local`` or ``ray``) protects what is not done yet; items are journalled as they land.
   Nothing is written (no output, no journal, nothing of a replaced run removed) before the first batch
   is protected, so a run that fails on a bad parameter or input leaves the folder and the state as they
   were.
7. A complete run writes ``manifest.json`` (``folder:OUT`` reads the outputs back; it holds public
   parameters, relative paths, checksums and item ids: no seed or seed hash, no fitted secret, no
   absolute path of the owner's) and a summary.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch

from privis.data.checks import check_same_layout
from privis.data.dataset import Dataset
from privis.data.folder import MANIFEST_NAME, manifest_outputs, own_manifest
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
)
from privis.engine.journal import (
    Journal,
    JournalState,
    item_hash,
    journal_outputs,
    remove_temp_files,
    write_folder_manifest,
)
from privis.engine.output import FORMATS, encode_frame, jpeg_change, output_rel, quantize
from privis.engine.state import RunState, new_run_id, new_salt, seed_check
from privis.errors import DatasetError, ImageFileError, InvalidInputError
from privis.fsutil import FolderSurvey, check_outputs, clear_owned, survey_folder
from privis.methods.base import Protector
from privis.results import package_versions

__all__ = ["ENGINES", "GUESSABLE_SEED", "protect", "seed_warning"]

ENGINES = ("local", "ray")
#: Parameters a resumed run must share with the interrupted one.
_IDENTITY = ("method", "params", "seed_check", "source_id", "class_names", "class_dirs", "shape", "output_format",
             "ids_mode", "fitted")
#: Seeds below this can be found by trying every candidate against the outputs (2**48 regenerations of a
#: method's noise take days on one machine, hours on a cluster); a seed drawn with secrets.randbits(63)
#: falls below it with probability 2**-15.
GUESSABLE_SEED = 2**48


def seed_warning(protector: Protector) -> str | None:
    """The warning for a randomised protector run with a guessable seed (below :data:`GUESSABLE_SEED`)."""
    if not protector.stochastic:
        return None
    seed = protector.get_params().get("random_state")
    if seed is None or abs(int(seed)) >= GUESSABLE_SEED:
        return None
    return (f"warning: seed {seed} of {protector.name} is guessable (below 2**48): anyone holding the outputs can "
            "find it by trying seeds and then regenerate the masks or noise; omit the seed (OS entropy) or use "
            "one of 63 random bits, e.g. python -c 'import secrets; print(secrets.randbits(63))'")


def _public_text(roots: list[str]) -> Callable[[str], str]:
    """A function replacing each of the owner's absolute input paths in a text by its last component (the
    home folder by ``~``)."""
    home = str(Path.home())
    pairs = sorted({(r.rstrip("/"), "~" if r == home else Path(r).name) for r in roots if r and Path(r).is_absolute()},
                   key=lambda t: -len(t[0]))
    # a root counts only as the start of an absolute path: not inside a relative one such as c0/root/x.png
    patterns = [(re.compile(rf"(?<![\w./-]){re.escape(root)}(?![\w.-])"), name) for root, name in pairs if root]

    def public(text: str) -> str:
        for pattern, name in patterns:
            text = pattern.sub(name.replace("\\", r"\\"), text)  # a literal replacement: backslashes doubled
        return text

    return public


def _input_roots(inputs: list[Path]) -> list[str]:
    roots: list[str] = []
    for p in inputs:
        for form in (p.expanduser(), p.expanduser().resolve()):
            roots.append(str(form if form.is_absolute() else form.resolve()))
    home = str(Path.home())
    return roots + [home]


def _targets(source: StreamSource, class_dirs: list[str], fmt: str, state: JournalState | None) -> Iterator[str]:
    """Output paths (relative to OUT) of the items not done yet."""
    for item in source.items():
        if state is not None and state.is_done(np.array([item_hash(item.id)], dtype=np.int64))[0]:
            continue
        try:
            yield output_rel(item, class_dirs, fmt)
        except InvalidInputError:
            continue  # the run meets it in order and reports it


def _prepare_out(out: Path, run_state: RunState, *, resume: bool,
                 force: bool) -> tuple[JournalState | None, FolderSurvey]:
    """Apply the output-folder rules (module docstring, step 2) to what is in ``out`` now.

    Returns:
        The journal to resume (``None`` for a new run) and the survey of ``out``'s files (privis' own,
        which a new run removes at its first write, and the rest, which it never touches).
    """
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"output {out} exists and is not a folder")
    prior = JournalState(run_state.journal) if run_state.journal.is_file() else None
    manifest = own_manifest(out)
    if prior is not None and manifest is not None and \
            (manifest.get("extra") or {}).get("run_id") != prior.header.get("run_id"):
        prior = None  # the folder now holds another run's finished outputs: the state is stale
    records = chain(journal_outputs(run_state.journal) if prior is not None else (), manifest_outputs(manifest))
    survey = survey_folder(out, records, verify=force)  # only --force removes recorded files: check them then
    present = survey.owned | survey.foreign
    if not present:
        prior = None  # nothing of that run is left in the folder: its state is stale
    if resume:
        if prior is None and not present:
            return None, survey  # nothing to continue and nothing in the way: a resumable run starts afresh
        if prior is None:
            what = " (it holds a finished privis folder)" if manifest is not None else ""
            raise InvalidInputError(f"output folder {out} holds no run to resume{what}: no run state for it in "
                                    f"{run_state.root}; pass --force to replace it, or choose a new folder")
        return prior, survey
    if present and not force:
        if prior is not None:
            raise InvalidInputError(
                f"output folder {out} holds another run's outputs ({prior.header.get('method')} on "
                f"{prior.header.get('source')}, {prior.done.size} items finished); pass --resume to continue "
                "that run or --force to replace it"
            )
        if manifest is not None:
            raise InvalidInputError(f"output folder {out} holds another run's outputs ({MANIFEST_NAME}); pass "
                                    "--force to replace them")
        raise InvalidInputError(f"output folder {out} is not empty; choose a new folder or pass --force (which "
                                "replaces only files privis wrote)")
    return None, survey


def _fit(protector: Protector, source: StreamSource, fit_data: str | Dataset | None, *, shape: tuple[int, int, int],
         first: str, skip_bad: bool, fit_size: int, seed: int | None) -> None:
    """Fit on ``fit_data``, the in-memory dataset, or a reservoir sample of the stream (step 3)."""
    if fit_data is not None:
        from privis.data.registry import load

        ds = fit_data if isinstance(fit_data, Dataset) else load(fit_data, skip_bad=skip_bad)
        check_same_layout(ds.images.shape, shape, fit_name=fit_data if isinstance(fit_data, str) else ds.name,
                          data_name=source.name)
        protector.fit(ds.images, ds.labels)
        return
    if hasattr(source, "dataset"):
        ds = source.dataset
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


def _first_batch(ctx: RunContext) -> np.ndarray | None:
    """The first batch not done yet, protected in memory: ``(B, C, H, W)`` uint8 stored pixels, or ``None``
    when nothing is left (a bad parameter or protector fails here, before anything is written)."""
    group = next(iter_groups(ctx.source.items(), ctx.batch_size, ctx.state), None)
    if group is None:
        return None
    arrays, labels, keep = [], [], []
    for k, item in enumerate(group.items):
        try:
            arrays.append(conform(decode_item(item), ctx.shape, item.file or item.source, ctx.first))
            labels.append(item.label)
            keep.append(k)
        except ImageFileError:
            continue
    if not arrays:
        return None
    protected = protect_batch(ctx.protector, ctx.mode, ctx.seed, torch.from_numpy(np.stack(arrays)),
                              torch.tensor(labels), group.hashes[keep], group.first_id)
    return quantize(protected)


def _refuse_jpeg(ctx: RunContext) -> None:
    """Measure what JPEG does to the first batch's protected pixels and refuse with the figures (step 5)."""
    pixels = _first_batch(ctx)
    if pixels is None:
        return
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
            workers: int | None = None, resume: bool = False, force: bool = False, skip_bad: bool = False,
            output_format: str = "png", allow_lossy: bool = False, engine: str = "local",
            address: str | None = None, num_cpus: int | None = None, gpus_per_worker: float | None = None,
            gpu_batch_size: int | None = None, report: Callable[[str], None] | None = None,
            warn: Callable[[str], None] | None = None, state_dir: str | Path | None = None) -> RunSummary:
    """Protect ``data`` with ``protector`` into the folder ``out``, streaming, crash-safe and resumable.

    Args:
        protector: any :class:`~privis.methods.Protector` (fitted here when it overrides ``fit``; on
            ``resume`` its state is replaced by the fitted state the interrupted run saved).
        data: a dataset spec (``folder:PATH``, ``npz:PATH``, ``digits:train`` ...), a ``Dataset`` or a
            :class:`~privis.data.stream.StreamSource`.
        out: output folder; outputs keep the input's relative path and stem (``.png`` or ``.jpg``).
        fit_data: data to fit on (spec or ``Dataset``); default: see the module docstring, step 3.
        fit_size: the most items sampled from a stream to fit on.
        batch_size: images protected per batch; memory is bounded by a few batches.
        workers: threads in each of the reader and writer pools (local; None: 1), or Ray actors (ray; None:
            one per GPU share on a cluster with GPUs, else 1; an int is exactly that many actors, at most one
            per GPU share).
        resume: continue the run whose state belongs to ``out``.
        force: replace another run's outputs found in ``out`` (only files privis wrote and nobody changed).
        skip_bad: journal a bad input with its reason and go on; otherwise stop with its name.
        output_format: ``"png"`` (lossless) or ``"jpeg"`` (needs ``allow_lossy``; refused for a protector that
            ``needs_exact_output``, i.e. keyed mode).
        engine: ``"local"`` (threads in this process) or ``"ray"`` (Ray Data, see ``ray_engine``).
        address: Ray cluster address (``ray``); default starts a local cluster.
        num_cpus: CPUs of a local Ray cluster (default: all).
        gpus_per_worker: ``ray`` on a cluster with GPUs: GPUs each actor holds, in ``[0, 1]`` (None: 1, one
            model copy per GPU; 0: CPU actors); see :func:`privis.engine.ray_engine.actor_options`.
        gpu_batch_size: ``ray`` on a cluster with GPUs: images per whole GPU per call (None: the default
            there); an actor gets its share.
        report: called with the one-line summary at the end (also when the run stops on an error).
        warn: called with a warning line (a guessable seed); default :func:`warnings.warn`.
        state_dir: the owner-side state root (default :func:`privis.engine.state.state_root`).

    Returns:
        :class:`~privis.engine.core.RunSummary`.

    Raises:
        InvalidInputError: a refusal (steps 2, 4 and 5) or a bad argument.
        ImageFileError: a bad input file, without ``skip_bad`` (after journalling what was finished).

    Examples:
        Protect 20 digits into a folder and read them back; the run's state goes to a folder of its own, never
        into the output (here both in a temporary folder):

        >>> import tempfile
        >>> from privis import data
        >>> from privis.engine import protect
        >>> from privis.methods.baselines import Pixelate
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     summary = protect(Pixelate(block=2), "digits:test[:20]", f"{tmp}/out", state_dir=f"{tmp}/state")
        ...     back = data.load(f"folder:{tmp}/out")
        >>> summary.found, summary.done, summary.complete
        (20, 20, True)
        >>> len(back), back.shape
        (20, (1, 8, 8))
    """
    if batch_size < 1 or (workers is not None and workers < 1) or fit_size < 1:
        raise InvalidInputError(f"batch_size, workers and fit_size must be >= 1 (got {batch_size}, {workers}, "
                                f"{fit_size})")
    protector.validate_params()  # every declared parameter, before anything is read or written
    if output_format not in FORMATS:
        raise InvalidInputError(f"unknown output format {output_format!r} (use one of {', '.join(FORMATS)})")
    if output_format != "png" and protector.needs_exact_output():
        raise InvalidInputError(f"{protector.name} in keyed mode needs lossless output to be restored exactly; "
                                f"{output_format} changes pixels (use png)")
    if engine not in ENGINES:
        raise InvalidInputError(f"unknown engine {engine!r} (use one of {', '.join(ENGINES)})")
    if resume and force:
        raise InvalidInputError("--resume and --force exclude each other: continue the run, or replace it")
    out = Path(out).expanduser()
    source = open_source(data)
    tree = getattr(source, "tree", None)
    if tree is not None:  # a link inside the input folder may lead to OUT: its outputs are no inputs
        tree.exclude(out)
    inputs = list(source.inputs)
    if isinstance(fit_data, str):
        from privis.data.spec import parse_spec

        spec = parse_spec(fit_data)
        if spec.path is not None:
            inputs.append(Path(spec.path))
    key_file = protector.get_params().get("key_file")
    if isinstance(key_file, str | Path):
        inputs.append(Path(key_file))
    check_outputs({"output folder": out}, inputs, folders=("output folder",))
    shape, first = source.run_shape()  # decided over the whole source; an unusable one stops here
    message = seed_warning(protector)
    if message is not None:
        (warn or (lambda text: warnings.warn(text, UserWarning, stacklevel=3)))(message)
    run_state = RunState(out, state_dir)
    if run_state.root.expanduser().resolve().is_relative_to(out.resolve()):
        raise InvalidInputError(f"the run state folder {run_state.root} lies inside the output folder {out}: "
                                "the state must stay on the owner's side (choose another state folder)")
    run_state.acquire()
    try:
        return _protect_locked(protector, source, out, run_state, inputs, shape=shape, first=first,
                               fit_data=fit_data, fit_size=fit_size, batch_size=batch_size, workers=workers,
                               resume=resume, force=force, skip_bad=skip_bad, output_format=output_format,
                               allow_lossy=allow_lossy, engine=engine, address=address, num_cpus=num_cpus,
                               ray_options={"workers": workers, "gpus_per_worker": gpus_per_worker,
                                            "gpu_batch_size": gpu_batch_size},
                               report=report)
    finally:
        run_state.release()


def _protect_locked(protector: Protector, source: StreamSource, out: Path, run_state: RunState, inputs: list[Path],
                    *, shape: tuple[int, int, int], first: str, fit_data: str | Dataset | None, fit_size: int,
                    batch_size: int, workers: int | None, resume: bool, force: bool, skip_bad: bool,
                    output_format: str, allow_lossy: bool, engine: str, address: str | None, num_cpus: int | None,
                    ray_options: dict[str, Any], report: Callable[[str], None] | None) -> RunSummary:
    """:func:`protect` once ``out`` is locked for this run."""
    class_dirs = source.class_dirs
    if class_dirs is None:
        from privis.data.folder import class_dir_names

        class_dirs = class_dir_names(source.class_names)
    class_dirs = list(class_dirs)
    state, survey = _prepare_out(out, run_state, resume=resume, force=force)
    if survey.foreign:  # files privis did not write: refuse if this run would replace any of them
        clashes = survey.foreign & ({MANIFEST_NAME} | set(_targets(source, class_dirs, output_format, state)))
        survey.refuse(clashes, f"they are in {out}, where this run writes")
    seed = protector.get_params().get("random_state") if protector.stochastic else None
    mode = ids_mode(protector)
    source_id = source.name
    for kind in ("folder:", "npz:"):
        if source.name.startswith(kind):
            source_id = kind + str(Path(source.name[len(kind):]).expanduser().resolve())
    salt = str(state.header.get("seed_salt")) if state is not None else new_salt()
    header: dict[str, Any] = {
        "method": protector.name, "params": public_params(protector, secret=True), "seed_salt": salt,
        "seed_check": seed_check(seed, salt), "source": source.name, "source_id": source_id,
        "out": str(out.resolve()), "run_id": state.header.get("run_id") if state is not None else new_run_id(),
        "class_names": list(source.class_names), "class_dirs": class_dirs, "shape": list(shape),
        "output_format": output_format, "batch_size": batch_size, "ids_mode": mode,
    }

    def check_identity(keys: tuple[str, ...]) -> None:
        assert state is not None
        for key in keys:
            if state.header.get(key) != header[key]:
                shown = "(a different seed)" if key == "seed_check" else f"{state.header.get(key)!r}"
                mine = "" if key == "seed_check" else f", this run's is {header[key]!r}"
                raise InvalidInputError(
                    f"cannot resume the run in {out}: its {key.replace('_check', '')} was {shown}{mine}; the "
                    "outputs would not match. Pass --force to start over"
                )

    if state is not None:  # what is known before fitting is checked before fitting
        check_identity(tuple(k for k in _IDENTITY if k != "fitted") + (("batch_size",) if mode == "batch-seed"
                                                                         else ()))
    needs_fit = protector.requires_fit
    if needs_fit and state is not None and run_state.fitted.is_file():
        _restore_fitted(protector, run_state.load_fitted(), out)
    elif needs_fit:
        _fit(protector, source, fit_data, shape=shape, first=first, skip_bad=skip_bad, fit_size=fit_size, seed=seed)
    header.update(fitted=fitted_fingerprint(protector), versions=package_versions(),
                  created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if state is not None:
        check_identity(("fitted",))

    summary = RunSummary(out=str(out), engine=engine, already_done=0 if state is None else int(state.done.size),
                         found=source.count() + len(source.ignored), ignored=len(source.ignored))
    ctx = RunContext(protector=protector, mode=mode, seed=seed, source=source, out=out,
                     class_names=list(source.class_names), class_dirs=class_dirs, shape=shape, first=first,
                     batch_size=batch_size, workers=workers or 1, skip_bad=skip_bad, fmt=output_format, state=state,
                     journal=None, summary=summary, report=report)  # type: ignore[arg-type]
    if output_format == "jpeg" and not allow_lossy:
        _refuse_jpeg(ctx)

    def begin() -> None:
        """First write of this run: only now is anything of an earlier run removed, and the state made."""
        if state is None:
            clear_owned(out, survey.owned)
            run_state.discard()
            run_state.create()
            if needs_fit:
                _save_fitted(run_state, protector)
        remove_temp_files(out, (*FORMATS.values(), MANIFEST_NAME))

    ctx.journal = Journal(run_state.journal, header if state is None else None, on_start=begin)
    ctx.started = time.perf_counter()
    try:
        if engine == "ray":
            from privis.engine.ray_engine import run_ray

            # Ray's actors write where the journal cannot see them first: a protector that fails on the
            # first batch does so here, before the journal starts; then every output path is announced
            _first_batch(ctx)
            for chunk in _chunked(_targets(source, class_dirs, output_format, state), 4096):
                ctx.journal.append([{"kind": "writing", "paths": chunk}])
            run_ray(ctx, address=address, num_cpus=num_cpus, **ray_options)
        else:
            from privis.engine.local import run_local

            run_local(ctx)
        ctx.close_summary()
        ctx.journal.append([{"kind": "end", "done": summary.done, "skipped": summary.skipped,
                             "seconds": round(summary.seconds, 3)}])
        extra = {"method": protector.name, "params": public_params(protector), "versions": header["versions"],
                 "output_format": output_format, "ids_mode": mode, "run_id": header["run_id"]}
        public = protector.public_record()
        if public:
            extra["public"] = public
        write_folder_manifest(out, run_state.journal, header if state is None else state.header, extra,
                              _public_text(_input_roots(inputs)))
        summary.complete = True
    finally:
        ctx.journal.close()
        ctx.close_summary()
        if report is not None:
            report(summary.line())
    return summary


def _chunked(items: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _save_fitted(run_state: RunState, protector: Protector) -> None:
    """Save the fitted protector without its seed (the state keeps only the seed's salted check value)."""
    has_seed = protector.stochastic
    seed = protector.get_params().get("random_state") if has_seed else None
    if has_seed:
        protector.set_params(random_state=None)
    try:
        run_state.save_fitted(protector)
    finally:
        if has_seed:
            protector.set_params(random_state=seed)


def _restore_fitted(protector: Protector, saved: Any, out: Path) -> None:
    """Give ``protector`` the fitted state the interrupted run saved, after checking it is that protector."""
    if type(saved) is not type(protector):
        raise InvalidInputError(f"cannot resume the run in {out}: its saved fitted state is a "
                                f"{type(saved).__name__}, this run's protector a {type(protector).__name__}")
    if public_params(saved, secret=True) != public_params(protector, secret=True):
        raise InvalidInputError(f"cannot resume the run in {out}: its saved fitted state has other parameters "
                                f"({public_params(saved)}) than this run's ({public_params(protector)})")
    vars(protector).update({k: v for k, v in vars(saved).items() if k != "random_state"})
