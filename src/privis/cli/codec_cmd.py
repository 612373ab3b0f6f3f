"""``privis train-codec``: train a latent codec for DP-Image, score it on held-out images, save it.

::

    privis train-codec --data fashion-mnist --out codec.pt --json codec.json
    privis protect dp-image --data fashion-mnist:test --out protected --param codec=codec.pt

The codec file holds the architecture and the weights (:func:`privis.latent.save_codec`); ``--kind
contractive`` trains the codec whose ``f(g(z))`` is certified 1-Lipschitz.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privis.cli.main import JsonOpt, SeedOpt, check_paths, handle_errors, say
from privis.cli.summary import print_result
from privis.errors import InvalidInputError


def register(app: typer.Typer) -> None:
    @app.command("train-codec")
    @handle_errors
    def train_codec_command(
        data: Annotated[str, typer.Option("--data", help="Training data spec, e.g. fashion-mnist.")],
        out: Annotated[Path, typer.Option("--out", help="Codec file to write (.pt).")],
        kind: Annotated[str, typer.Option("--kind", help="autoencoder or contractive.")] = "autoencoder",
        epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the training data.")] = 5,
        seed: SeedOpt = 0,
        test_size: Annotated[int, typer.Option("--test-size", min=1,
                                               help="Held-out images from the test split.")] = 2000,
        json_path: JsonOpt = None,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
    ) -> None:
        """Train a latent codec (for dp-image), report held-out |SSIM| and PSNR, and save it."""
        from privis.latent.training import CODECS, save_codec, train_codec_on

        if kind not in CODECS:
            raise InvalidInputError(f"--kind must be one of {', '.join(sorted(CODECS))}, got {kind!r}")
        if out.exists() and not overwrite:
            raise InvalidInputError(f"{out} exists; pass --overwrite to replace it")
        if out.exists() and not out.is_file():
            raise InvalidInputError(f"{out} is not a file")
        check_paths({"--out": out, "--json": json_path}, data=(data,))
        codec, result = train_codec_on(data, kind, epochs=epochs, seed=seed, test_size=test_size)
        save_codec(codec, out, extra={"data": data, "kind": kind, "epochs": epochs, **result.summary})
        if json_path:
            result.save_json(json_path)
        print_result(result, [str(out)] + ([str(json_path)] if json_path else []), say)


__all__ = ["register"]
