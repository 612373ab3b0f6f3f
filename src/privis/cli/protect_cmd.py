"""``privis protect``: protect a dataset of any size and write it as a folder (streaming, resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privis.cli.main import (
    PARAM_HELP,
    SEED_MAX,
    check_paths,
    handle_errors,
    load_model_params,
    method_class,
    parse_params,
    say,
)


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def protect(
        method: Annotated[str, typer.Argument(help="Protection method (see `privis methods`).")],
        data: Annotated[str, typer.Option("--data", help="Dataset spec, e.g. digits, folder:PATH, npz:PATH.")],
        out: Annotated[Path, typer.Option("--out", help="Output folder (images + manifest.json).")],
        param: Annotated[list[str] | None, typer.Option("--param", help=PARAM_HELP)] = None,
        seed: Annotated[int | None, typer.Option(
            "--seed", min=0, max=SEED_MAX, help="Seed in [0, 2**63 - 1]; default draws from OS entropy. A seed "
            "below 2**48 can be found from the outputs (warned): draw one with secrets.randbits(63).")] = None,
        fit_data: Annotated[
            str | None,
            typer.Option("--fit-data", help="Data the protector is fitted on, with the data's image size and "
                         "channels (default: the data being protected, at most --fit-size items sampled from it)."),
        ] = None,
        fit_size: Annotated[
            int, typer.Option("--fit-size", min=1, help="Most items sampled from a folder/npz stream to fit on.")
        ] = 10_000,
        batch_size: Annotated[
            int, typer.Option("--batch-size", min=1, help="Images protected and saved per batch.")
        ] = 256,
        workers: Annotated[
            int | None, typer.Option("--workers", min=1, help="Reader/writer threads (local; default 1) or Ray "
                                     "actors (ray; default one per GPU share on a cluster with GPUs, else 1).")
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue the interrupted run writing to OUT.")
        ] = False,
        force: Annotated[
            bool, typer.Option("--force", help="Replace another run's outputs found in OUT (only files privis "
                               "wrote and nobody changed; other files in the way are refused).")
        ] = False,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", hidden=True, help="Same as --force (kept for old scripts).")
        ] = False,
        skip_bad: Annotated[
            bool, typer.Option("--skip-bad", help="Record unreadable images with their reason and go on.")
        ] = False,
        output_format: Annotated[
            str, typer.Option("--format", help="Output format: png (lossless) or jpeg (lossy; needs --allow-lossy).")
        ] = "png",
        allow_lossy: Annotated[
            bool, typer.Option("--allow-lossy", help="Accept JPEG's change to the protected pixels (it is reported).")
        ] = False,
        engine: Annotated[str, typer.Option("--engine", help="local (threads) or ray (Ray Data).")] = "local",
        address: Annotated[
            str | None, typer.Option("--address", help="Ray cluster address (default: start a local cluster).")
        ] = None,
        gpus_per_worker: Annotated[
            float | None, typer.Option("--gpus-per-worker", min=0.0, max=1.0,
                                       help="ray on a cluster with GPUs: GPUs each actor holds (default 1, one "
                                       "model copy per GPU; 0.5 puts two on each; 0 runs CPU actors).")
        ] = None,
        gpu_batch_size: Annotated[
            int | None, typer.Option("--gpu-batch-size", min=1,
                                     help="ray on a cluster with GPUs: images per whole GPU per call (each actor "
                                     "gets its share; default sized for the device).")
        ] = None,
        state_dir: Annotated[
            Path | None,
            typer.Option("--state-dir", help="Private folder for the run state --resume needs (journal, fitted "
                         "protector); default $PRIVIS_STATE_DIR, else ~/.cache/privis/runs. Never inside OUT."),
        ] = None,
    ) -> None:
        """Protect a dataset and write it as a folder readable back as folder:OUT.

        Streams in batches (memory bounded by the batch size), saves each output atomically as soon as it is
        made, keeps the input's relative path and stem, and journals every finished item in a private run
        state outside OUT (see --state-dir) so that --resume continues after any crash with the same fitted
        protector. OUT gets only the images and manifest.json: secrets (masks, permutations, the seed, keys)
        and the owner's absolute paths are never written there. A seed below 2**48 is warned about.
        Every parameter is checked before any work: `privis methods METHOD` lists them.
        """
        from privis import methods
        from privis.data.stream import open_source
        from privis.engine import protect as run_protect
        from privis.engine.state import STATE_ENV, RunState

        cls = method_class(method)
        raw = parse_params(param, cls)
        # the folder and lock file this run keeps in the state root (--state-dir or $PRIVIS_STATE_DIR),
        # checked as outputs: a state root set to an input folder must not grow a folder inside it
        run_state = RunState(out, state_dir)
        where = "--state-dir" if state_dir is not None else f"the run state folder (${STATE_ENV} or the cache)"
        check_paths({"--out": out, where: run_state.folder, f"{where} lock": run_state.lock_path},
                    data=(data, fit_data), params=(raw,), folders=("--out", where))
        params = load_model_params(raw)
        protector = methods.create(method, **{"random_state": seed, **params})  # a --param random_state wins
        source = open_source(data)  # privis.engine.protect keeps a link inside it to OUT from being read
        summary = run_protect(
            protector, source, out, fit_data=fit_data, fit_size=fit_size, batch_size=batch_size, workers=workers,
            resume=resume, force=force or overwrite, skip_bad=skip_bad, output_format=output_format.lower(),
            allow_lossy=allow_lossy, engine=engine, address=address, gpus_per_worker=gpus_per_worker,
            gpu_batch_size=gpu_batch_size, report=say,
            warn=lambda line: typer.echo(f"privis: {line}", err=True), state_dir=state_dir,
        )
        _echo_left_out(out, run_state.journal, source.ignored)
        typer.echo(f"protected {summary.done} images with {method}; wrote {out}")


#: Names listed on screen per kind; the rest are counted (skipped ones are all in OUT/manifest.json).
SHOWN_NAMES = 50


def _echo_left_out(out: Path, journal: Path, ignored: list[dict[str, str]]) -> None:
    """Print the name and reason of every input the run left out: skipped bad inputs (from the run's
    journal, this run's and a resumed run's) and entries ignored by rule (hidden files, link loops)."""
    from privis.data.walk import printable_name
    from privis.engine.journal import JournalState

    skipped = [(str(r.get("source", r.get("id"))), str(r.get("reason", "")))
               for r in JournalState(journal).skipped.values()]
    for kind, entries, where in (("skipped", skipped, f" (all listed in {out / 'manifest.json'})"),
                                 ("ignored", [(e["path"], e["reason"]) for e in ignored], "")):
        if not entries:
            continue
        typer.echo(f"{kind} {len(entries)}:")
        for path, reason in entries[:SHOWN_NAMES]:
            typer.echo(f"  {printable_name(path)}: {reason}")
        if len(entries) > SHOWN_NAMES:
            typer.echo(f"  ... and {len(entries) - SHOWN_NAMES} more{where}")
