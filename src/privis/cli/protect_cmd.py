"""``privis protect``: protect a dataset of any size and write it as a folder (streaming, resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privis.cli.main import PARAM_HELP, handle_errors, load_model_params, method_class, parse_params


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def protect(
        method: Annotated[str, typer.Argument(help="Protection method (see `privis methods`).")],
        data: Annotated[str, typer.Option("--data", help="Dataset spec, e.g. digits, folder:PATH, npz:PATH.")],
        out: Annotated[Path, typer.Option("--out", help="Output folder (images + manifest.jsonl + manifest.json).")],
        param: Annotated[list[str] | None, typer.Option("--param", help=PARAM_HELP)] = None,
        seed: Annotated[int | None, typer.Option("--seed", help="Seed; default draws from OS entropy.")] = None,
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
            int, typer.Option("--workers", min=1, help="Reader/writer workers (local) or Ray actors (ray).")
        ] = 1,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue the interrupted run whose manifest.jsonl is in OUT.")
        ] = False,
        force: Annotated[
            bool, typer.Option("--force", help="Delete another run's outputs found in OUT and start over.")
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
    ) -> None:
        """Protect a dataset and write it as a folder readable back as folder:OUT.

        Streams in batches (memory bounded by the batch size), saves each output atomically as soon as it is
        made, keeps the input's relative path and stem, and journals every finished item in OUT/manifest.jsonl
        so that --resume continues after any crash. Secrets (masks, permutations, the seed) are never written.
        Every parameter is checked before any work: `privis methods METHOD` lists them.
        """
        from privis import methods
        from privis.engine import protect as run_protect

        cls = method_class(method)
        params = load_model_params(parse_params(param, cls))
        if "random_state" in cls._param_names() and seed is not None:
            params.setdefault("random_state", seed)
        protector = methods.create(method, **params)
        summary = run_protect(
            protector, data, out, fit_data=fit_data, fit_size=fit_size, batch_size=batch_size, workers=workers,
            resume=resume, force=force or overwrite, skip_bad=skip_bad, output_format=output_format.lower(),
            allow_lossy=allow_lossy, engine=engine, address=address, report=lambda line: typer.echo(line),
        )
        typer.echo(f"protected {summary.done} images with {method}; wrote {out}")
