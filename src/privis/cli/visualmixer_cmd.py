"""``privis keygen`` and ``privis unprotect visualmixer``: VisualMixer's keyed, invertible mode.

Protect with a key through the generic command::

    privis keygen ~/secrets/vm.key
    privis protect visualmixer --data fashion-mnist:test --out shuffled --param key_file=~/secrets/vm.key
    privis unprotect visualmixer --key ~/secrets/vm.key --data folder:shuffled --out restored

``unprotect`` is :func:`privis.engine.restore.unprotect_folder`: it rebuilds the protector from the public
parameters in ``shuffled/manifest.json``, checks the key against the recorded key check value, and
verifies every restored image against its recorded tag before writing any (a wrong key, a folder
protected without a key, an edited or lossily re-encoded file are refused by name). Restored images
equal the originals at 8 bits, ``round(255 x) / 255``, exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privis.cli.main import check_paths, handle_errors, parse_params
from privis.errors import InvalidInputError


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def keygen(
        path: Annotated[Path, typer.Argument(help="Key file to create (32 random bytes, permissions 0600).")],
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing key file.")] = False,
    ) -> None:
        """Create a secret key for VisualMixer's keyed mode. Keep it away from the protected data."""
        from privis.methods.visualmixer import generate_key

        check_paths({"PATH": path})
        generate_key(path, overwrite=overwrite)
        typer.echo(f"wrote key {path} (permissions 0600); keep it out of every folder you share")

    @app.command()
    @handle_errors
    def unprotect(
        method: Annotated[str, typer.Argument(help="Method whose keyed output to invert (visualmixer).")],
        key: Annotated[Path, typer.Option("--key", help="Key file used to protect the data.")],
        data: Annotated[str, typer.Option("--data", help="Folder written by privis protect with a key: folder:PATH.")],
        out: Annotated[Path, typer.Option("--out", help="Output folder for the restored images.")],
        param: Annotated[
            list[str] | None, typer.Option("--param", help="Override a recorded parameter KEY=VALUE; repeatable.")
        ] = None,
        batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 1024,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier run's outputs.")] = False,
    ) -> None:
        """Restore images protected with a key, bit-exactly, each verified before any is written."""
        from privis.engine.restore import unprotect_folder

        if method != "visualmixer":
            raise InvalidInputError(f"unprotect supports only 'visualmixer', got {method!r}")
        if not data.startswith("folder:"):
            raise InvalidInputError(f"unprotect reads a folder written by privis protect (--data folder:PATH), "
                                    f"got {data!r}")
        raw = parse_params(param)
        check_paths({"--out": out}, data=(data,), files=(key,), params=(raw,), folders=("--out",))
        n = unprotect_folder(data.split(":", 1)[1], out, key, method=method, params=raw,
                             batch_size=batch_size, overwrite=overwrite)
        typer.echo(f"restored {n} images into {out}, each verified against its tag")
