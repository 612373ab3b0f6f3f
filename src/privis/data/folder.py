"""Image folders: the loader, and the writer whose output loads back the same.

Layout read and written::

    ROOT/<class>/<any/nested/path>/<file>     every file under a class folder is one image
    ROOT/<file>                               files directly in ROOT: the unnamed class ""
    ROOT/manifest.json                        written by :class:`FolderWriter` (optional when reading)

Which files a folder holds, their classes and order, hidden files, links, odd names, and the one size
and channel count of a folder are the walker's rules (:mod:`privis.data.walk`), shared with the
streaming reader of ``privis protect``. A folder holding a privis manifest keeps the class order and
folder mapping the manifest gives (a class name such as ``T-shirt/top`` cannot be a folder name).

Each image is read by :mod:`privis.data.imagefile` (decoded fully, as it displays, in an unambiguous
mode); a bad file raises :class:`~privis.errors.ImageFileError` naming it, or, with ``skip_bad=True``, is
listed in ``Dataset.skipped`` with the reason.

The writer saves lossless 8-bit PNGs (``round(x * 255)``), each file atomically, and a manifest listing
every file with its label and SHA-256; it refuses an output folder that overlaps its inputs.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

import privis
from privis.data.checks import check_images
from privis.data.dataset import Dataset
from privis.data.imagefile import decode_image
from privis.errors import DatasetError, ImageFileError, InvalidInputError
from privis.fsutil import atomic_write_bytes, atomic_write_text, check_outputs, clear_owned, survey_folder
from privis.progress import progress

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "FolderWriter",
    "class_dir_names",
    "load_folder",
    "manifest_outputs",
    "own_manifest",
    "read_manifest",
    "write_folder",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "privis-folder"
MANIFEST_VERSION = 1

# ---------------------------------------------------------------------------------------- manifest


def class_dir_names(class_names: Sequence[str]) -> list[str]:
    """Folder name for each class: the class name itself when it is a safe folder name, else a cleaned one.

    ``/``, ``\\`` and control characters become ``_``; a leading ``.`` becomes ``_`` (hidden folders are
    not read); empty names become ``class_<i>``; names equal up to case get a ``_<k>`` suffix (case-
    insensitive file systems). Deterministic, and the identity on ordinary names, so a folder loaded
    without manifest and written again keeps its folder names.
    """
    dirs: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(class_names):
        d = "".join("_" if (c in "/\\" or ord(c) < 32 or c == "\x7f") else c for c in str(name))
        if d in ("", ".", ".."):
            d = f"class_{i}"
        if d.startswith("."):
            d = "_" + d[1:]
        if d == MANIFEST_NAME:
            d += "_"
        base, k = d, 1
        while d.lower() in seen:
            k += 1
            d = f"{base}_{k}"
        seen.add(d.lower())
        dirs.append(d)
    return dirs


def _safe_relative(text: str) -> PurePosixPath | None:
    """``text`` as a relative POSIX path without ``..``, hidden or empty parts; ``None`` if it is not one."""
    rel = PurePosixPath(text.replace("\\", "/"))
    if rel.is_absolute() or not rel.parts:
        return None
    if any(p in ("", ".", "..") or p.startswith(".") for p in rel.parts):
        return None
    return rel


def read_manifest(root: str | Path) -> dict[str, Any] | None:
    """The privis manifest of folder ``root``, validated; ``None`` when absent or written by another tool.

    Returns:
        The manifest dict with at least ``class_names`` and ``class_dirs`` (lists of equal length) and
        ``items`` (each with ``path``, ``label``, ``sha256``).

    Raises:
        DatasetError: the manifest is ours but unreadable, malformed, or of a newer version.
    """
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None

    def bad(why: str) -> DatasetError:
        return DatasetError(f"{path}: malformed privis manifest: {why}")

    if manifest.get("version") != MANIFEST_VERSION:
        raise bad(
            f"version {manifest.get('version')!r} is not supported (this privis reads {MANIFEST_VERSION})"
        )
    names, dirs, items = manifest.get("class_names"), manifest.get("class_dirs"), manifest.get("items")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise bad("class_names must be a non-empty list of strings")
    if len(set(names)) != len(names):
        raise bad("class_names has duplicates")
    if dirs is None:
        dirs = class_dir_names(names)
        manifest["class_dirs"] = dirs
    if not isinstance(dirs, list) or len(dirs) != len(names) or not all(isinstance(d, str) for d in dirs):
        raise bad("class_dirs must list one folder name per class")
    plain = all(d == "" or (_safe_relative(d) is not None and "/" not in d) for d in dirs)  # "": ROOT
    if len({d.lower() for d in dirs}) != len(dirs) or not plain:
        raise bad("class_dirs must be distinct plain folder names")
    if not isinstance(items, list):
        raise bad("items must be a list")
    for item in items:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("path"), str)
            and _safe_relative(item["path"]) is not None
            and isinstance(item.get("label"), int)
            and 0 <= item["label"] < len(names)
            and isinstance(item.get("sha256"), str)
        ):
            raise bad(f"item {item!r} needs a relative path, a label in 0..{len(names) - 1} and a sha256")
    return manifest


# ------------------------------------------------------------------------------------------ loader


def load_folder(path: str | Path, *, skip_bad: bool = False) -> Dataset:
    """Load a folder of images, walked by the rules of :mod:`privis.data.walk` (the same as ``protect``).

    Args:
        path: the folder ROOT: ``ROOT/<class>/.../<file>``, files directly in ROOT (the unnamed class
            ``""``), or both.
        skip_bad: record bad items (unreadable, unsupported, another size, ...) in ``Dataset.skipped``
            and go on, instead of raising.

    Returns:
        ``Dataset`` with images ``(N, C, H, W)`` float32 in [0, 1], upright (EXIF orientation applied;
        ``oriented`` lists them), of the folder's size and channels (decided from every header: the most
        common size, C = 3 when any image of it is colour, grey ones then repeated over 3 channels);
        labels ``(N,)`` by class order; ``paths`` relative to ROOT (POSIX, :func:`~privis.data.walk.name_text`);
        ``skipped`` and ``ignored`` (hidden entries, link loops) as ``{"path", "reason"}`` records, so
        ``len + len(skipped) + len(ignored)`` is everything found; name ``"folder:<path>"``. Items follow
        the walk order (a privis folder: its manifest's order first).

    Raises:
        DatasetError: ROOT missing, not a folder, or holding no image files (or, with ``skip_bad``, no
            usable one); a subfolder or root file the manifest does not know.
        ImageFileError: (without ``skip_bad``) a bad item, naming it: unreadable, truncated, unsupported
            mode, a size other than the folder's (both sizes named), a SHA-256 that differs from the
            manifest, a broken link or a name that cannot be written.
    """
    from privis.data.walk import FolderTree, name_record

    tree = FolderTree(path)
    plan = tree.plan()
    if plan.items == 0:
        ignored = f" ({len(plan.ignored)} hidden or looping entries ignored)" if plan.ignored else ""
        raise DatasetError(f"folder {tree.shown} holds no image files{ignored} (expected "
                           f"{tree.shown}/<class>/<image files> or image files in it)")
    if plan.size is None and not skip_bad:
        raise tree.no_image()
    decoded: list[tuple[str, int, np.ndarray, float]] = []
    skipped: list[dict] = []
    oriented: dict[str, int] = {}
    entries = (e for e in tree.entries() if not e.ignored)
    for entry in progress(entries, total=plan.items, desc=f"reading {tree.root.name}", unit="img"):
        shown = tree.shown_path(entry.rel)
        try:
            if entry.error is not None:
                raise ImageFileError(shown, entry.error)
            try:
                data = (tree.root / entry.rel).read_bytes()
            except OSError as exc:
                raise ImageFileError(shown, f"cannot read file ({exc.strerror or exc})") from exc
            if entry.sha256 is not None and hashlib.sha256(data).hexdigest() != entry.sha256:
                raise ImageFileError(shown, f"SHA-256 differs from {MANIFEST_NAME}: the file changed after writing")
            array, scale, orientation = decode_image(shown, data)
            why = tree.size_error(array.shape[1], array.shape[0])
            if why is None and array.ndim == 3 and plan.channels == 1:
                why = f"colour image in a grey folder (its headers said grey; first: {plan.first})"
            if why is not None:
                raise ImageFileError(shown, why)
        except ImageFileError as exc:
            if not skip_bad:
                raise
            skipped.append(name_record(entry.rel, exc.reason))
            continue
        if orientation != 1:
            oriented[entry.text] = orientation
        decoded.append((entry.text, entry.label, array, scale))

    if not decoded:
        raise DatasetError(
            f"folder {tree.shown}: none of its {plan.items} files is a usable image "
            f"(first: {skipped[0]['path']}: {skipped[0]['reason']})"
        )
    height, width = decoded[0][2].shape[:2]
    images = torch.empty((len(decoded), plan.channels, height, width), dtype=torch.float32)
    for i, (_, _, array, scale) in enumerate(decoded):
        values = torch.from_numpy(array.astype(np.float32))
        if scale != 1.0:
            values.div_(scale)
        images[i] = values.permute(2, 0, 1) if values.ndim == 3 else values.unsqueeze(0)
    return Dataset(
        images=images,
        labels=torch.tensor([label for _, label, _, _ in decoded], dtype=torch.long),
        class_names=tree.class_names,
        name=f"folder:{path}",
        paths=[rel for rel, _, _, _ in decoded],
        skipped=skipped,
        ignored=plan.ignored,
        oriented=oriented,
    )


# ------------------------------------------------------------------------------------------ writer


def own_manifest(root: str | Path) -> dict[str, Any] | None:
    """The ``manifest.json`` of ``root`` when privis wrote it (format ``privis-folder`` and a
    ``privis_version`` marker), unvalidated; ``None`` when absent, unreadable or another tool's."""
    path = Path(root) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT
            and isinstance(manifest.get("privis_version"), str) and isinstance(manifest.get("items"), list)):
        return manifest
    return None


def manifest_outputs(manifest: dict[str, Any] | None) -> list[tuple[object, object]]:
    """``(path, sha256)`` of every file privis' own ``manifest`` (:func:`own_manifest`) lists, plus the
    manifest itself (``sha256`` ``None``: privis may replace it); empty for None (no privis manifest)."""
    if manifest is None:
        return []
    listed: list[tuple[object, object]] = [(MANIFEST_NAME, None)]
    listed += [(it.get("path"), it.get("sha256")) for it in manifest["items"] if isinstance(it, dict)]
    return listed


class FolderWriter:
    """Write images batch by batch into a class-per-subfolder folder that :func:`load_folder` reads back.

    Each image is saved as soon as :meth:`write` gets it, as an 8-bit lossless PNG (``round(x * 255)``;
    one channel -> mode L, three -> RGB), atomically. :meth:`close` writes ``manifest.json`` (atomically)
    listing each file's ``path``, ``label``, ``class_name``, ``sha256`` and ``source`` (the input path,
    when known), plus ``class_names``, ``class_dirs``, ``skipped`` and ``extra``.

    Output names: with ``paths``, the input's relative path and stem with a ``.png`` suffix
    (``cat/x/img01.jpg`` -> ``cat/x/img01.png``), put under the label's class folder when the path does
    not already start with it; without, ``<class folder>/<running index:06d>.png``.

    Args:
        out_dir: the output folder (created when needed).
        class_names: the class of each label.
        extra: JSON-serialisable facts to record (method parameters, package versions, ...).
        inputs: files or folders the output must not overlap; an ``out_dir`` equal to or inside one, or
            containing one, is refused so outputs never overwrite inputs.
        overwrite: allow an ``out_dir`` that already holds a privis manifest: the files it lists whose
            SHA-256 still matches are removed before the first new file is written. A file privis did
            not write (another tool's ``manifest.json``, a user's image, a listed file edited since) is
            never removed, and one a batch would replace is listed and refused.
        skipped: input files left out upstream, each ``{"path", "reason"}``, recorded in the manifest.
        source: the spec of the data being written, recorded in the manifest.
        class_dirs: the folder of each class (``""``: the output's root), e.g. those of a privis folder
            being restored, so that its layout is kept; default :func:`class_dir_names` of ``class_names``.

    Raises:
        InvalidInputError: overlapping input and output, an output that cannot be written, an existing
            manifest without ``overwrite`` (or another tool's with it), unusable class names or ``extra``.
    """

    def __init__(
        self,
        out_dir: str | Path,
        class_names: Sequence[str],
        *,
        extra: dict | None = None,
        inputs: Sequence[str | Path] | None = None,
        overwrite: bool = False,
        skipped: Sequence[dict] | None = None,
        source: str | None = None,
        class_dirs: Sequence[str] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir).expanduser()
        self.class_names = [str(c) for c in class_names]
        if not self.class_names or len(set(self.class_names)) != len(self.class_names):
            raise InvalidInputError(f"class_names must be non-empty and distinct, got {self.class_names}")
        self.class_dirs = class_dir_names(self.class_names) if class_dirs is None else [str(d) for d in class_dirs]
        plain = all(d == "" or (_safe_relative(d) is not None and "/" not in d) for d in self.class_dirs)
        if (len(self.class_dirs) != len(self.class_names) or not plain
                or len({d.lower() for d in self.class_dirs}) != len(self.class_dirs)):
            raise InvalidInputError(f"class_dirs must be one distinct plain folder name per class ('' for the "
                                    f"output's root), got {self.class_dirs}")
        self.extra = dict(extra or {})
        try:
            json.dumps(self.extra)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"extra must be JSON-serialisable ({exc})") from exc
        self.inputs = [Path(p) for p in (inputs or [])]
        self.overwrite = overwrite
        self.skipped = [{"path": str(s["path"]), "reason": str(s["reason"])} for s in (skipped or [])]
        self.source = source
        self.items: list[dict[str, Any]] = []
        self._taken: set[str] = set()
        self._prepared = False
        self._closed = False

        check_outputs({"output folder": self.out_dir}, self.inputs, folders=("output folder",))
        if (self.out_dir / MANIFEST_NAME).exists() and not overwrite:
            raise InvalidInputError(
                f"output folder {self.out_dir} already holds a {MANIFEST_NAME}; "
                "choose a new folder or pass overwrite=True (--overwrite on the command line)"
            )
        # what an earlier privis run wrote here (and nobody changed since) may be replaced; nothing else
        self._survey = survey_folder(self.out_dir, manifest_outputs(own_manifest(self.out_dir)) if overwrite else ())
        if overwrite:
            self._survey.refuse(self._survey.foreign & {MANIFEST_NAME}, "this writer replaces manifest.json")

    # -- helpers

    def _prepare(self) -> None:
        """On first use with ``overwrite``: remove the files an earlier privis manifest lists (unchanged
        since), then that manifest."""
        if self._prepared:
            return
        self._prepared = True
        if self.overwrite:
            clear_owned(self.out_dir, self._survey.owned)

    def _target(self, label: int, path: str | None, index: int) -> str:
        class_dir = self.class_dirs[label]
        if path is None:
            return f"{class_dir}/{index:06d}.png" if class_dir else f"{index:06d}.png"
        rel = _safe_relative(str(path))
        if rel is None:
            raise InvalidInputError(
                f"path {path!r} must be relative, without '..' or hidden parts, "
                f"to be kept under {self.out_dir}"
            )
        if class_dir and (len(rel.parts) < 2 or rel.parts[0] != class_dir):
            rel = PurePosixPath(class_dir, *rel.parts)
        return rel.with_name(rel.stem + ".png").as_posix()

    # -- public

    def write(
        self, images: Tensor, labels: Tensor | Sequence[int], paths: Sequence[str] | None = None
    ) -> list[str]:
        """Save a batch now.

        Args:
            images: ``(B, C, H, W)`` float tensor in [0, 1] with C = 1 or 3 (any device).
            labels: ``(B,)`` integer labels, indices into ``class_names``.
            paths: ``B`` input paths relative to the input root (POSIX), or ``None``.

        Returns:
            The ``B`` output paths, relative to ``out_dir``.

        Raises:
            InvalidInputError: bad shapes, values outside [0, 1] or NaN, labels out of range, unsafe
                paths, two images mapping to one file, or an existing file without ``overwrite``.
                Checked for the whole batch before any file is written.
        """
        if self._closed:
            raise InvalidInputError("FolderWriter is closed")
        values = check_images(images, allow_empty=True).detach().to("cpu")
        label_list = [int(v) for v in (labels.tolist() if isinstance(labels, Tensor) else labels)]
        if len(label_list) != values.shape[0]:
            raise InvalidInputError(f"{values.shape[0]} images but {len(label_list)} labels")
        if any(not 0 <= v < len(self.class_names) for v in label_list):
            raise InvalidInputError(f"labels must lie in 0..{len(self.class_names) - 1}")
        if paths is not None and len(paths) != values.shape[0]:
            raise InvalidInputError(f"{values.shape[0]} images but {len(paths)} paths")

        targets = [
            self._target(label, None if paths is None else paths[i], len(self.items) + i)
            for i, label in enumerate(label_list)
        ]
        batch_seen: set[str] = set()
        for target in targets:
            key = target
            if key in self._taken or key in batch_seen:
                raise InvalidInputError(f"two images map to the same output file {self.out_dir / target}")
            batch_seen.add(key)
            if not self.overwrite and (self.out_dir / target).exists():
                raise InvalidInputError(
                    f"{self.out_dir / target} already exists; pass overwrite=True (--overwrite on the command line) "
                    "to replace it"
                )
        self._survey.refuse(self._survey.foreign.intersection(targets), f"in {self.out_dir}")
        self._prepare()

        pixels = values.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
        for i in progress(range(len(targets)), total=len(targets), desc="writing", unit="img"):
            if pixels.shape[1] == 1:
                frame = pixels[i, 0]
            else:
                frame = np.ascontiguousarray(pixels[i].transpose(1, 2, 0))
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="PNG")
            data = buffer.getvalue()
            atomic_write_bytes(self.out_dir / targets[i], data)
            item: dict[str, Any] = {
                "path": targets[i],
                "label": label_list[i],
                "class_name": self.class_names[label_list[i]],
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            if paths is not None:
                item["source"] = str(paths[i])
            self.items.append(item)
            self._taken.add(targets[i])
        return targets

    def add_skipped(self, path: str, reason: str) -> None:
        """Record an input left out (e.g. unreadable), so the manifest says what is missing and why."""
        self.skipped.append({"path": str(path), "reason": str(reason)})

    def close(self) -> Path:
        """Write ``manifest.json`` atomically and return its path; the writer takes no more images."""
        if self._closed:
            raise InvalidInputError("FolderWriter is already closed")
        self._prepare()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "privis_version": privis.__version__,
            "source": self.source,
            "count": len(self.items),
            "class_names": self.class_names,
            "class_dirs": self.class_dirs,
            "items": self.items,
            "skipped": self.skipped,
            "extra": self.extra,
        }
        text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        path = atomic_write_text(self.out_dir / MANIFEST_NAME, text)
        self._closed = True
        return path

    def __enter__(self) -> FolderWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Close (write the manifest) only when the block succeeded: a failed run gets no manifest."""
        if exc_type is None and not self._closed:
            self.close()


def write_folder(
    dataset: Dataset,
    out_dir: str | Path,
    *,
    extra: dict | None = None,
    overwrite: bool = False,
    inputs: Sequence[str | Path] | None = None,
    batch_size: int = 1024,
) -> Path:
    """Write a whole dataset with :class:`FolderWriter`; returns the manifest path.

    The dataset's own source folder or file (from a ``folder:``/``npz:`` name) is added to ``inputs``,
    so a dataset cannot be written over the folder it was read from. ``paths`` and ``skipped`` of the
    dataset are kept. Written 8-bit data loads back exactly with ``load("folder:OUT_DIR")``.
    """
    from privis.data.spec import parse_spec

    guarded = [Path(p) for p in (inputs or [])]
    try:
        spec = parse_spec(dataset.name)
        if spec.path is not None:
            guarded.append(Path(spec.path))
    except DatasetError:
        pass
    writer = FolderWriter(
        out_dir, dataset.class_names, extra=extra, inputs=guarded, overwrite=overwrite,
        skipped=dataset.skipped, source=dataset.name,
    )
    for start in range(0, len(dataset), max(1, batch_size)):
        stop = start + batch_size
        writer.write(
            dataset.images[start:stop],
            dataset.labels[start:stop],
            None if dataset.paths is None else dataset.paths[start:stop],
        )
    return writer.close()
