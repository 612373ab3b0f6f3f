"""``privis bench``: images/s and peak memory of every method at three sizes (see :mod:`privis.experiments.bench`)."""

from __future__ import annotations

from typing import Annotated

import typer

from privis.cli.main import JsonOpt, check_paths, handle_errors

_SIZES = "28x28-grey, 32x32-rgb, 224x224-rgb"


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def bench(
        method: Annotated[list[str] | None, typer.Argument(help="Methods to measure (default: all).")] = None,
        size: Annotated[list[str] | None, typer.Option("--size", help=f"Sizes ({_SIZES}); repeatable; "
                                                       "default all.")] = None,
        n: Annotated[int | None, typer.Option("--n", min=1, help="Images per measurement (default per size).")] = None,
        threads: Annotated[int, typer.Option("--threads", min=1, help="torch threads per measurement.")] = 2,
        json_path: JsonOpt = None,
    ) -> None:
        """Images/s and peak memory of every method at 28x28 grey, 32x32 RGB and 224x224 RGB."""
        from privis.experiments.bench import run_bench

        check_paths({"--json": json_path})
        result = run_bench(method or None, sizes=size or None, n=n, threads=threads)
        if json_path:
            result.save_json(json_path)
        typer.echo(f"{'method':<13} {'size':<12} {'n':>6} {'images/s':>10} {'peak MiB':>9} {'fit s':>7}  load")
        for row in result.tables["throughput"]:
            if "error" in row:
                typer.echo(f"{row['method']:<13} {row['size']:<12} {row['n']:>6}  error: {row['error']}")
            else:
                typer.echo(f"{row['method']:<13} {row['size']:<12} {row['n']:>6} {row['images_per_second']:>10.1f} "
                           f"{row['peak_rss_mb']:>9.1f} {row['fit_seconds']:>7.1f}  {row['load_average']}")
        typer.echo(f"wrote {json_path}" if json_path else "each row's load average and settings: add --json FILE")


__all__ = ["register"]
