"""``unprotect``: restore a folder protected in a keyed mode, exactly, and refuse anything unverifiable.

A folder that ``privis protect`` wrote with a keyed protector (VisualMixer with ``key_file``) records, in
``OUT/manifest.json`` and nowhere else this module reads (never the run journal):

- ``extra.method`` and ``extra.params``: the method and its public parameters (never the key or its path);
- ``extra.public.key_check``: the key check value, a MAC of a fixed constant under the key
  (:meth:`~privis.methods.base.Protector.public_record`);
- each item's ``id`` (the id the engine derived the item's permutation from) and ``tag``, a MAC of the
  stored original bound to that id (:meth:`~privis.methods.base.Protector.item_tags`).

:func:`unprotect_folder` then works in three steps:

1. Refusals before any work: a folder without a privis manifest, protected with another method or one
   without an inverse, without a key check value (never protected with a key), a key whose check value
   differs, an item without id or tag, an output folder that overlaps the input or holds the key file.
   The folder is read by the one folder walker (:class:`~privis.data.walk.FolderTree`): an item whose
   label is not its folder's class, a listed file that is missing, and a file the manifest does not list
   (it has no tag) are refused by name.
2. A verifying pass: every item is decoded, inverted, and its tag recomputed from the restored pixels;
   the first item whose tag differs (a file edited, re-encoded lossily or swapped after protection)
   stops the run, named, before anything is written.
3. A writing pass: the same again, each item re-checked just before it is written (a file changed between
   the passes stops the run with a message saying that the output folder is incomplete).

So ``unprotect`` writes restored images only when every one of them is verified; it never leaves a mix
of restored and wrong images. Both passes stream in batches (memory bounded by ``batch_size``); the
price is decoding and inverting every item twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from privis.data.folder import MANIFEST_NAME, FolderWriter, read_manifest
from privis.data.imagefile import read_image
from privis.data.stream import to_chw
from privis.data.walk import FolderTree
from privis.engine.core import conform, public_params
from privis.engine.journal import item_hashes
from privis.errors import DatasetError, ImageFileError, InvalidInputError
from privis.fsutil import check_outputs
from privis.methods.base import Protector
from privis.results import package_versions

__all__ = ["unprotect_folder"]


def _dict_at(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    """``mapping[key]`` when it is a dict, else an empty dict (a manifest may lack or garble any part)."""
    value = mapping.get(key)
    return value if isinstance(value, dict) else {}


def _keyed_protector(folder: Path, manifest: dict[str, Any], method: str | None, key_file: Path,
                     overrides: dict[str, Any]) -> tuple[Protector, str]:
    """The protector rebuilt from the manifest's public parameters and ``key_file``; its key check value."""
    from privis import methods

    where = folder / MANIFEST_NAME
    extra = _dict_at(manifest, "extra")
    recorded = extra.get("method")
    if not isinstance(recorded, str):
        raise DatasetError(f"{where} names no protection method: {folder} was not written by privis protect")
    if method is not None and method != recorded:
        raise InvalidInputError(f"{folder} was protected with {recorded!r}, not {method!r}")
    cls = methods.available().get(recorded)
    if cls is None or not hasattr(cls, "inverse_transform") or "key_file" not in cls._param_names():
        raise InvalidInputError(f"{folder} was protected with {recorded!r}, which has no keyed inverse")
    public = _dict_at(extra, "public")
    check = public.get("key_check")
    if not isinstance(check, str):
        raise DatasetError(f"{folder} was not protected with a key ({where} records no key check value), so it "
                           "cannot be restored")
    recorded_params = _dict_at(extra, "params")
    valid = set(cls._param_names())
    params = {k: v for k, v in recorded_params.items() if k in valid and k != "n_jobs"}
    resolved = public.get("restore_params")
    if isinstance(resolved, dict):
        params.update({k: v for k, v in resolved.items() if k in valid})
    else:
        params.update(cls.legacy_restore_params(params))
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise InvalidInputError(f"{recorded} has no parameter {unknown[0]!r}; valid: {sorted(valid)}")
    params.update(overrides)
    params["key_file"] = str(key_file)
    return cls(**params), check


def _check_tree(folder: Path) -> None:
    """Refuse a folder whose files and manifest disagree, as the folder walker reads them: a label that is
    not its folder's class (the tag covers pixels, not labels), a listed file missing or bad, a file the
    manifest does not list (it has no tag: it cannot be verified). Hidden files are ignored."""
    tree = FolderTree(folder)
    for entry in tree.entries():
        if entry.ignored:
            continue
        if entry.error is not None:
            raise ImageFileError(tree.shown_path(entry.rel), f"{entry.error} (nothing was written)")
        if entry.sha256 is None:
            raise ImageFileError(tree.shown_path(entry.rel), f"not listed in {MANIFEST_NAME}, so it has no "
                                 "verification tag and cannot be restored (added after protection, or its record "
                                 "was removed); move it away (nothing was written)")


def _decode(folder: Path, items: list[dict[str, Any]], shape: tuple[int, int, int] | None,
            first: str) -> np.ndarray:
    """Stored images of ``items`` as ``(B, C, H, W)`` float32 (the run's shape, fixed by the first item)."""
    arrays = []
    for item in items:
        path = folder / item["path"]
        chw = to_chw(*read_image(path), path)
        arrays.append(chw if shape is None else conform(chw, shape, path, first))
    return np.stack(arrays)


def _batches(items: list[dict[str, Any]], batch_size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), batch_size):
        yield items[start:start + batch_size]


def unprotect_folder(folder: str | Path, out: str | Path, key_file: str | Path, *, method: str | None = None,
                     params: dict[str, Any] | None = None, batch_size: int = 256,
                     overwrite: bool = False) -> int:
    """Restore the keyed outputs in ``folder`` into ``out``, verified item by item (module docstring).

    Args:
        folder: a folder written by ``privis protect`` with a key (``OUT/manifest.json`` is read).
        out: output folder for the restored images (8-bit PNGs, the protected files' relative paths, a
            ``manifest.json`` that ``folder:OUT`` reads back).
        key_file: the key file used to protect (must not lie inside ``out``).
        method: the method the caller expects (e.g. ``"visualmixer"``); None accepts the recorded one.
        params: parameters overriding the recorded ones (a wrong value fails verification, not silently).
        batch_size: images decoded and inverted at once.
        overwrite: replace an earlier restore in ``out``.

    Returns:
        The number of images restored: each equals ``round(255 x) / 255`` of its original ``x``, exactly.

    Raises:
        DatasetError: ``folder`` has no privis manifest, or was not protected with a key.
        InvalidInputError: another method, a key that does not match (key check value), an item without
            id or tag, a bad argument, or an output folder the writer refuses.
        ImageFileError: an item unreadable, of another shape, or whose restored pixels do not match its
            tag (edited, re-encoded lossily or swapped); nothing is written in that case.
    """
    folder, out, key_file = Path(folder).expanduser(), Path(out).expanduser(), Path(key_file).expanduser()
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder")
    check_outputs({"output folder": out}, [folder, key_file], folders=("output folder",))
    manifest = read_manifest(folder)
    if manifest is None:
        raise DatasetError(f"{folder} is not a folder written by privis protect (no privis {MANIFEST_NAME}); "
                           "nothing to restore")
    protector, check = _keyed_protector(folder, manifest, method, key_file, dict(params or {}))
    items = list(manifest["items"])
    if not items:
        raise DatasetError(f"{folder / MANIFEST_NAME} lists no items")
    for item in items:
        if not isinstance(item.get("id"), str) or not isinstance(item.get("tag"), str):
            raise DatasetError(f"{folder / MANIFEST_NAME}: item {item['path']} has no id or verification tag, "
                               "so its restore could not be checked")
    _check_tree(folder)
    class_names = list(manifest["class_names"])
    writer = FolderWriter(out, class_names, inputs=[folder, key_file], overwrite=overwrite,
                          source=f"folder:{folder}", class_dirs=manifest["class_dirs"],
                          extra={"method": f"{protector.name}-inverse", "params": public_params(protector),
                                 "versions": package_versions()})
    first_path = str(folder / items[0]["path"])
    first = _decode(folder, items[:1], None, first_path)
    shape = tuple(first.shape[1:])
    protector.fit(torch.from_numpy(first))
    if protector.public_record().get("key_check") != check:
        raise InvalidInputError(f"key file {key_file} does not match the key this folder was protected with "
                                f"({folder})")
    by_ids = (manifest.get("extra") or {}).get("ids_mode", "ids") == "ids"

    def restored(batch: list[dict[str, Any]], writing: bool) -> torch.Tensor:
        ids = [str(item["id"]) for item in batch]
        images = torch.from_numpy(_decode(folder, batch, shape, first_path))
        hashes = torch.from_numpy(item_hashes(ids)) if by_ids else None
        result = protector.inverse_transform(images, ids=hashes)  # type: ignore[attr-defined]
        tags = protector.item_tags(result, ids)
        if tags is None or len(tags) != len(batch):
            raise InvalidInputError(f"{protector.name} gives no verification tag per item in this mode")
        for item, tag in zip(batch, tags, strict=True):
            if tag != item["tag"]:
                reason = ("changed while it was being restored; stopped, and the output folder is incomplete"
                          if writing else "restored pixels do not match the item's verification tag: the file "
                          "was edited, re-encoded lossily or swapped after protection, or the parameters in "
                          f"{MANIFEST_NAME} were changed (nothing was written)")
                raise ImageFileError(folder / item["path"], reason)
        return result

    for batch in _batches(items, batch_size):  # pass 1: verify everything, write nothing
        restored(batch, writing=False)
    for batch in _batches(items, batch_size):  # pass 2: write what was verified
        writer.write(restored(batch, writing=True), [int(item["label"]) for item in batch],
                     [str(item["path"]) for item in batch])
    writer.close()
    return len(items)
