"""``privis bench``: images/s, peak memory and the ratio to a roofline bound of every method at three sizes,
on the CPU or a CUDA device (see :mod:`privis.experiments.bench`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from privis.cli.main import JsonOpt, check_paths, handle_errors
from privis.errors import InvalidInputError

_SIZES = "28x28-grey, 32x32-rgb, 224x224-rgb"


def _figure(value: Any, width: int, decimals: int = 1) -> str:
    """``value`` right-aligned in ``width`` with ``decimals``, or ``-`` when it is missing."""
    return f"{'-' if value is None else format(value, f'.{decimals}f'):>{width}}"


def parse_method_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["veil.precision=bf16", "veil.steps=10"]`` -> ``{"veil": {"precision": "bf16", "steps": 10}}``; each
    VALUE is read as JSON, else kept as a string.

    Raises:
        InvalidInputError: an item not of the form METHOD.NAME=VALUE.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        method, dot, name = key.partition(".")
        if not (sep and dot and method and name):
            raise InvalidInputError(f"--param {item!r}: expected METHOD.NAME=VALUE, e.g. perturbation.precision=fp16")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(method, {})[name] = value
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def bench(
        method: Annotated[list[str] | None, typer.Argument(help="Methods to measure (default: all).")] = None,
        size: Annotated[list[str] | None, typer.Option("--size", help=f"Sizes ({_SIZES}); repeatable; "
                                                       "default all.")] = None,
        n: Annotated[int | None, typer.Option("--n", min=1, help="Least images per measurement (default per "
                                              "size and device).")] = None,
        device: Annotated[str, typer.Option("--device", help="cpu, cuda, or auto (CUDA when present); batch sizes "
                                            "and image counts follow the device.")] = "auto",
        threads: Annotated[int, typer.Option("--threads", min=1, help="torch threads per measurement.")] = 2,
        timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds one measurement may take.")] = 1800,
        budget: Annotated[float | None, typer.Option("--budget", min=1, help="Seconds the whole run may take; "
                                                     "measurements past it are reported as skipped.")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be measured (images, batch, "
                                              "least seconds per row) and measure nothing.")] = False,
        param: Annotated[list[str] | None, typer.Option("--param", help="METHOD.NAME=VALUE: measure METHOD with "
                                                        "this parameter instead of its default (VALUE as JSON, "
                                                        "else a string), e.g. perturbation.precision=fp16; "
                                                        "repeatable.")] = None,
        json_path: JsonOpt = None,
    ) -> None:
        """Images/s, peak host and device memory and the ratio to a roofline bound of every method at 28x28 grey,
        32x32 RGB and 224x224 RGB."""
        from privis.experiments.bench import run_bench

        check_paths({"--json": json_path})
        result = run_bench(method or None, sizes=size or None, n=n, threads=threads, device=device,
                           timeout=timeout, budget=budget, dry_run=dry_run, params=parse_method_params(param or []))
        if json_path:
            result.save_json(json_path)
        if dry_run:
            typer.echo(f"{'method':<13} {'size':<12} {'device':<6} {'n':>7} {'batch':>6} {'min s':>6}")
            for row in result.tables["plan"]:
                typer.echo(f"{row['method']:<13} {row['size']:<12} {row['device']:<6} {row['n']:>7} "
                           f"{row['batch']:>6} {row['min_seconds']:>6.1f}")
            return
        rates = result.config["rates"]
        if "error" in rates:
            typer.echo(f"device rates: error: {rates['error']} (no bounds)")
        else:
            giga = {key: rates[key] / 1e9 for key in ("flops_per_second", "matmul_flops_per_second",
                                                      "conv_flops_per_second", "copy_bytes_per_second")}
            typer.echo(f"{rates['device']}: F = {giga['flops_per_second']:.1f} GFLOP/s (matmul "
                       f"{giga['matmul_flops_per_second']:.1f}, conv {giga['conv_flops_per_second']:.1f}), "
                       f"B = {giga['copy_bytes_per_second']:.1f} GB/s (copy)")
        typer.echo(f"{'method':<13} {'size':<12} {'n':>6} {'images/s':>11} {'bound/s':>11} {'ratio':>6} {'by':<7} "
                   f"{'RSS MiB':>8} {'dev MiB':>8} {'fit s':>6}  load")
        for row in result.tables["throughput"]:
            if "error" in row:
                typer.echo(f"{row['method']:<13} {row['size']:<12} {row['n']:>6}  error: {row['error']}")
            else:
                typer.echo(f"{row['method']:<13} {row['size']:<12} {row['n']:>6} {row['images_per_second']:>11.1f} "
                           f"{_figure(row.get('bound_images_per_second'), 11)} "
                           f"{_figure(row.get('bound_ratio'), 6, 3)} {row.get('bound_by', '-'):<7} "
                           f"{row['peak_rss_mb']:>8.1f} {_figure(row['peak_device_mb'], 8)} "
                           f"{row['fit_seconds']:>6.1f}  {row['load_average']}")
        typer.echo(f"wrote {json_path}" if json_path else "each row's FLOPs, bytes and settings: add --json FILE")


__all__ = ["register"]
