"""``privis train-codec``: train a latent codec for DP-Image, score it on held-out images, save it.

::

    privis train-codec --data fashion-mnist --out codec.pt --json codec.json
    privis protect dp-image --data fashion-mnist:test --out protected --param codec=codec.pt

The codec file holds the architecture and the weights (:func:`privis.latent.save_codec`); ``--kind
contractive`` trains the codec whose ``f(g(z))`` is certified 1-Lipschitz; ``--kind diffae`` trains a diffusion
autoencoder (:class:`privis.latent.DiffusionAutoencoder`, ``--steps`` DDIM steps, ``--density`` of its semantic
codes) scored by reconstruction from ``(z_bar, x_T)``::

    privis train-codec --kind diffae --data "fashion-mnist:train[:15000]" --epochs 4 --base 16 \
        --test-size 500 --out diffae.pt
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privis.cli.main import JsonOpt, SeedOpt, check_paths, handle_errors, say
from privis.cli.summary import print_result
from privis.errors import InvalidInputError

#: ``--steps`` range: 1 .. the diffusion autoencoder's default 1000 timesteps.
_MAX_STEPS = 1000


def register(app: typer.Typer) -> None:
    @app.command("train-codec")
    @handle_errors
    def train_codec_command(
        data: Annotated[str, typer.Option("--data", help="Training data spec, e.g. fashion-mnist.")],
        out: Annotated[Path, typer.Option("--out", help="Codec file to write (.pt).")],
        kind: Annotated[str, typer.Option("--kind", help="autoencoder, contractive or diffae.")] = "autoencoder",
        epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the training data.")] = 5,
        seed: SeedOpt = 0,
        test_size: Annotated[int, typer.Option("--test-size", min=1,
                                               help="Held-out images from the test split.")] = 2000,
        steps: Annotated[int | None, typer.Option("--steps", help="diffae: DDIM steps (default 20).")] = None,
        density: Annotated[str | None, typer.Option(
            "--density", help="diffae: density of the semantic codes, gaussian (default) or gmm.")] = None,
        base: Annotated[int | None, typer.Option("--base", help="autoencoder/diffae: base channel width.")] = None,
        lr: Annotated[float | None, typer.Option("--lr", help="Adam's initial learning rate (default 2e-3).")] = None,
        json_path: JsonOpt = None,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
    ) -> None:
        """Train a latent codec (for dp-image), report held-out |SSIM| and PSNR, and save it."""
        from privis.latent.training import CODECS, save_codec, train_codec_on

        if kind not in CODECS:
            raise InvalidInputError(f"--kind must be one of {', '.join(sorted(CODECS))}, got {kind!r}")
        options = _options(kind, steps=steps, density=density, base=base, lr=lr)
        if out.exists() and not overwrite:
            raise InvalidInputError(f"{out} exists; pass --overwrite to replace it")
        if out.exists() and not out.is_file():
            raise InvalidInputError(f"{out} is not a file")
        check_paths({"--out": out, "--json": json_path}, data=(data,))
        codec, result = train_codec_on(data, kind, epochs=epochs, seed=seed, test_size=test_size, **options)
        save_codec(codec, out, extra={"data": data, "kind": kind, "epochs": epochs, **options, **result.summary})
        if json_path:
            result.save_json(json_path)
        print_result(result, [str(out)] + ([str(json_path)] if json_path else []), say)


def _options(kind: str, *, steps: int | None, density: str | None, base: int | None,
             lr: float | None) -> dict[str, object]:
    """``train_codec`` options of the flags given, each checked (one-line :class:`InvalidInputError`)."""
    from privis.latent.density import DENSITY_KINDS

    for flag, value in (("--steps", steps), ("--density", density)):
        if value is not None and kind != "diffae":
            raise InvalidInputError(f"{flag} applies to --kind diffae only, not {kind!r}")
    if base is not None and kind == "contractive":
        raise InvalidInputError("--base applies to --kind autoencoder or diffae, not 'contractive'")
    if steps is not None and not 1 <= steps <= _MAX_STEPS:
        raise InvalidInputError(f"--steps must be an integer in [1, {_MAX_STEPS}], got {steps}")
    if density is not None and density not in DENSITY_KINDS:
        raise InvalidInputError(f"--density must be one of {', '.join(DENSITY_KINDS)}, got {density!r}")
    if base is not None and base < 4:
        raise InvalidInputError(f"--base must be an integer >= 4, got {base}")
    if lr is not None and not lr > 0:
        raise InvalidInputError(f"--lr must be > 0, got {lr}")
    given = {"steps": steps, "density": density, "base": base, "lr": lr}
    return {key: value for key, value in given.items() if value is not None}


__all__ = ["register"]
