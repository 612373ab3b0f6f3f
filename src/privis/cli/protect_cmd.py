"""``privis protect``: protect a dataset and write it as a folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from privis.cli.main import handle_errors, load_model_params, parse_params


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def protect(
        method: Annotated[str, typer.Argument(help="Protection method (see `privis methods`).")],
        data: Annotated[str, typer.Option("--data", help="Dataset spec, e.g. digits, folder:PATH, npz:PATH.")],
        out: Annotated[Path, typer.Option("--out", help="Output folder (PNG files + manifest.json).")],
        param: Annotated[
            list[str] | None, typer.Option("--param", help="Method parameter KEY=VALUE; repeatable.")
        ] = None,
        seed: Annotated[int | None, typer.Option("--seed", help="Seed; default draws from OS entropy.")] = None,
        fit_data: Annotated[
            str | None,
            typer.Option("--fit-data", help="Data the protector is fitted on (default: the data being protected)."),
        ] = None,
        batch_size: Annotated[
            int, typer.Option("--batch-size", min=1, help="Images protected and saved per batch.")
        ] = 256,
        skip_bad: Annotated[
            bool, typer.Option("--skip-bad", help="Skip unreadable images, listing them in the manifest.")
        ] = False,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace an earlier run's outputs in OUT.")
        ] = False,
    ) -> None:
        """Protect a dataset and write it as a folder readable back as folder:OUT.

        Each batch is written as soon as it is protected, so a crash loses at most the batch in flight.
        Secrets (masks, permutations) are never written.
        """
        from privis import data as pdata
        from privis import methods
        from privis.engine import protect_dataset

        params = load_model_params(parse_params(param))
        cls = methods.available().get(method)
        if cls is not None and "random_state" in cls._param_names() and seed is not None:
            params.setdefault("random_state", seed)
        protector = methods.create(method, **params)
        dataset = pdata.load(data, skip_bad=skip_bad)
        fit_set = pdata.load(fit_data, skip_bad=skip_bad) if fit_data else dataset
        t0 = time.perf_counter()
        summary = protect_dataset(protector, dataset, out, fit_on=fit_set, batch_size=batch_size, overwrite=overwrite)
        typer.echo(
            f"protected {summary['written']} images with {method} in {time.perf_counter() - t0:.1f} s "
            f"({summary['images_per_second']:.1f} images/s), skipped {summary['skipped']}; wrote {out}"
        )
