"""``privis keygen`` and ``privis unprotect visualmixer``: VisualMixer's keyed, invertible mode.

Protect with a key through the generic command::

    privis keygen ~/secrets/vm.key
    privis protect visualmixer --data fashion-mnist:test --out shuffled --param key_file=~/secrets/vm.key
    privis unprotect visualmixer --key ~/secrets/vm.key --data folder:shuffled --out restored

``unprotect`` rebuilds the protector from the parameters recorded in ``shuffled/manifest.json`` (the key
itself is never recorded), and the item ids the engine gave ``transform`` from the same manifest
(without them, the protector's shuffle-invariant content ids), so the
partition and permutations are the ones used to protect. Bit-exact when the folder stores the protected
values losslessly (8-bit data such as Fashion-MNIST; the PNG writer rounds other values to 8 bits).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from privis.cli.main import check_paths, handle_errors, parse_params
from privis.errors import InvalidInputError


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.expanduser().resolve(), folder.expanduser().resolve()
    return path == folder or folder in path.parents


def _manifest_params(data: str) -> dict[str, Any]:
    """VisualMixer parameters recorded by ``privis protect`` in a ``folder:`` dataset's manifest."""
    if not data.startswith("folder:"):
        return {}
    path = Path(data.split(":", 1)[1]).expanduser() / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: unreadable manifest ({exc})") from exc
    extra = manifest.get("extra") or {}
    if extra.get("method") not in (None, "visualmixer"):
        raise InvalidInputError(f"{path}: the data was protected with {extra.get('method')!r}, not visualmixer")
    return dict(extra.get("params") or {})


def _journal_ids(data: str, paths: list[str] | None) -> list[int] | None:
    """The item ids ``privis protect`` passed to ``transform`` (``item_hash`` of each manifest item's ``id``).

    The engine derives each item's randomness from its id; ``OUT/manifest.json`` records ``id`` and
    ``path`` per item. None when the data is not such a folder (the protector then falls back to its
    shuffle-invariant content ids).
    """
    if not data.startswith("folder:") or not paths:
        return None
    from privis.data.folder import own_manifest
    from privis.engine.journal import item_hash

    manifest = own_manifest(Path(data.split(":", 1)[1]).expanduser())
    if manifest is None:
        return None
    by_path = {str(it["path"]): str(it["id"]) for it in manifest["items"]
               if isinstance(it, dict) and "path" in it and "id" in it}
    if not all(p in by_path for p in paths):
        return None
    return [item_hash(by_path[p]) for p in paths]


def _source_folders(data: str) -> list[Path]:
    """The input folder of a ``folder:`` spec, so the writer refuses to write into it."""
    return [Path(data.split(":", 1)[1]).expanduser()] if data.startswith("folder:") else []


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
        data: Annotated[str, typer.Option("--data", help="Protected dataset, e.g. folder:PATH.")],
        out: Annotated[Path, typer.Option("--out", help="Output folder for the restored images.")],
        param: Annotated[
            list[str] | None, typer.Option("--param", help="Override a recorded parameter KEY=VALUE; repeatable.")
        ] = None,
        batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 1024,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier run's outputs.")] = False,
    ) -> None:
        """Restore images protected with a key, bit-exactly (VisualMixer's keyed mode)."""
        from privis import data as pdata
        from privis.methods.visualmixer import VisualMixer
        from privis.results import package_versions

        if method != "visualmixer":
            raise InvalidInputError(f"unprotect supports only 'visualmixer', got {method!r}")
        if _inside(key, out):
            raise InvalidInputError(f"the key file {key} must not live inside the output folder {out}")
        raw = parse_params(param)
        check_paths({"--out": out}, data=(data,), files=(key,), params=(raw,), folders=("--out",))
        recorded = _manifest_params(data)
        valid = set(VisualMixer._param_names())
        params = {k: v for k, v in recorded.items() if k in valid}
        params.update(raw)
        params["key_file"] = str(key)
        params.pop("n_jobs", None)
        dataset = pdata.load(data)
        mixer = VisualMixer(**params).fit(dataset.images[:1])
        writer = pdata.FolderWriter(
            out, dataset.class_names, inputs=_source_folders(data), overwrite=overwrite, source=dataset.name,
            extra={"method": "visualmixer-inverse",
                   "params": {k: v for k, v in params.items() if k != "key_file"},
                   "versions": package_versions()})
        n = len(dataset)
        ids = _journal_ids(data, dataset.paths)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            restored = mixer.inverse_transform(dataset.images[start:stop],
                                               ids=None if ids is None else ids[start:stop])
            writer.write(restored, dataset.labels[start:stop], dataset.paths[start:stop] if dataset.paths else None)
        writer.close()
        typer.echo(f"restored {n} images into {out}")
