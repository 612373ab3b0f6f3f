"""The one folder walker: what a ``folder:`` dataset holds, read the same way by every privis command.

:func:`privis.data.load_folder` (so ``evaluate``, ``train``, ``unprotect`` and the Python loaders) and the
streaming :class:`~privis.data.stream.FolderSource` behind ``privis protect`` both walk folders with
:class:`FolderTree`, so one folder means one dataset everywhere. The rules:

- **Classes.** Each subfolder of ROOT is a class named by its folder name, in sorted order. Files directly
  in ROOT form one more class, the *unnamed* class ``""`` (label 0, before the named ones), whose outputs
  stay in the output's root: a flat folder of images is a dataset of one unnamed class. Beside class
  folders, ROOT's files form that class only when Pillow recognises one of them as an image; else (a
  ``README.txt`` or ``LICENSE`` beside the class folders) they are bad items of no class, so a stray text
  file never adds an empty class nor shifts the labels. A folder written
  by privis (``ROOT/manifest.json`` of format ``privis-folder``) keeps the classes, order and folders its
  manifest gives; a subfolder or a root file outside them is an error.
- **Items.** Every file under a class folder, at any depth, is one item. Order: a folder's files (sorted
  by name), then its subfolders (sorted, recursively), class by class; a privis folder yields its
  manifest's items first, in manifest order, then what its manifest does not list.
- **Records.** ``manifest.json`` and ``manifest.jsonl`` directly in ROOT are privis' records, not data,
  and are not counted.
- **Hidden entries** (a name starting with ``.``: ``.DS_Store``, ``.git``, a half-written ``.x.tmp``) are
  *ignored*: never read (a hidden folder is not entered), each listed with its reason (``hidden file``,
  ``hidden folder``) and counted, never a reason to stop.
- **Symbolic links** are followed, to files and to folders, inside or outside ROOT: a link is how a user
  puts data into a tree. A link to a folder the walk is inside (a loop) or has already read (one folder
  linked twice), and a chain of links that never ends (``ELOOP``), are ignored with their reason; so a
  walk always ends and never reads one folder twice. A link whose target is missing is a bad item.
- **Bad items**, known without reading pixels: a broken link; anything that is not a regular file (a FIFO,
  socket or device is never opened); a folder that cannot be listed; a name holding a backslash (privis
  manifests read ``\\`` as a folder separator); a file whose output name another entry of its folder
  takes first (``a.jpg`` and ``a.png`` both become ``a.png``; ``a.jpg`` next to a folder ``a.png``). With
  ``skip_bad`` a bad item is skipped with its reason; without, it stops the load or run, named.
- **Names.** Files are opened by the OS's own bytes (:func:`os.fsdecode` strings, whose undecodable bytes
  are lone surrogates). What privis records or writes uses :func:`name_text`: the name itself when it is
  valid UTF-8, else the name with each undecodable byte written ``%XX`` (``caf\\xe9.png`` in Latin-1 ->
  ``caf%E9.png``), so outputs, journals and manifests stay valid UTF-8 JSON. Records of such names also
  carry the raw bytes (:func:`name_record`), and their item ids stay distinct (:func:`item_id`); a
  written name equal to another entry's is a collision (a bad item, above).
- **Size and channels** are decided over the whole folder from image headers
  (:func:`privis.data.imagefile.probe_image` reads no pixels; EXIF orientation applied): the most common
  displayed size wins, ties going to the size met first in walk order; 3 channels when any image of that
  size is colour (grey images are then repeated over 3 channels), else 1. Images of another size are bad
  items. A file whose header is bad does not vote; one whose header is good but whose pixels are bad
  (truncated) votes, then fails when decoded.
"""

from __future__ import annotations

import base64
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from privis.data.folder import MANIFEST_NAME, read_manifest
from privis.data.imagefile import probe_image
from privis.errors import DatasetError, ImageFileError

__all__ = [
    "RECORD_FILES",
    "UNNAMED_CLASS",
    "Entry",
    "FolderPlan",
    "FolderTree",
    "item_id",
    "name_record",
    "name_text",
    "printable_name",
]

#: Files directly in ROOT that are privis' records (folder manifest, run journal), never data.
RECORD_FILES = frozenset({MANIFEST_NAME, "manifest.jsonl"})
#: Name of the class of files lying directly in ROOT; its output folder is the output's root.
UNNAMED_CLASS = ""
#: Suffixes outputs are written with (``privis.engine.output.FORMATS``, the folder writer's ``.png``).
_OUTPUT_SUFFIXES = (".png", ".jpg")


# ------------------------------------------------------------------------------------------- names


def _is_text(name: str) -> bool:
    """Whether ``name`` holds no lone surrogate (its bytes were valid UTF-8)."""
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in name)


def name_text(name: str) -> str:
    """``name`` as privis records and writes it: itself when valid UTF-8, else each undecodable byte ``%XX``.

    Args:
        name: a file name or relative path as :func:`os.fsdecode` gives it (undecodable bytes as the lone
            surrogates U+DC80..U+DCFF).

    Returns:
        A string that encodes to UTF-8 (``"caf\\udce9.png"`` -> ``"caf%E9.png"``).
    """
    if _is_text(name):
        return name
    out = []
    for c in name:
        code = ord(c)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"%{code - 0xDC00:02X}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"%u{code:04X}")
        else:
            out.append(c)
    return "".join(out)


def printable_name(name: str) -> str:
    """:func:`name_text` with control and other unprintable characters escaped (``\\n``, ``\\x1b``), so a
    name fits one line of a message."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name_text(name))


def name_record(rel: str, reason: str) -> dict[str, str]:
    """A JSON-safe record of a file left out: ``{"path": name_text(rel), "reason": reason}``, plus
    ``"path_b64"`` (base64 of the raw bytes, lossless) when ``rel`` is not valid UTF-8."""
    record = {"path": name_text(rel), "reason": reason}
    if not _is_text(rel):
        record["path_b64"] = base64.b64encode(os.fsencode(rel)).decode("ascii")
    return record


def item_id(rel: str) -> str:
    """The stable id of a file item: its relative path when valid UTF-8, else :func:`name_text` plus NUL
    plus the base64 of its raw bytes (no path holds NUL, so ids of distinct files never coincide)."""
    if _is_text(rel):
        return rel
    return f"{name_text(rel)}\x00{base64.b64encode(os.fsencode(rel)).decode('ascii')}"


def _join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name


# ------------------------------------------------------------------------------------------- walk


@dataclass(frozen=True)
class Entry:
    """One thing the walk met.

    Attributes:
        rel: its path relative to ROOT, POSIX separators, as :func:`os.fsdecode` gives it.
        label: class index (-1 for ignored entries of ROOT itself).
        error: why it is a bad item (known without reading pixels), or why it is ignored; else ``None``.
        ignored: an entry never read by rule (hidden, a link loop): listed and counted, never an item.
        sha256: the SHA-256 a privis manifest gives the file, or ``None``.
    """

    rel: str
    label: int
    error: str | None = None
    ignored: bool = False
    sha256: str | None = None

    @property
    def text(self) -> str:
        """:func:`name_text` of ``rel``: the relative path privis records and writes."""
        return name_text(self.rel)


def _classify(path: Path, name: str) -> tuple[str, Any]:
    """``(kind, detail)`` of one directory entry: ``("dir", (dev, ino))``, ``("file", None)``,
    ``("ignored", reason)`` or ``("bad", reason)``; links are followed."""
    if name.startswith("."):
        return "ignored", "hidden folder" if os.path.isdir(path) else "hidden file"
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "ignored", "symbolic link loop (the chain of links never reaches a file or folder)"
        if os.path.islink(path):
            return "bad", "broken symbolic link (its target does not exist)"
        return "bad", f"cannot read it ({exc.strerror or exc})"
    if stat.S_ISDIR(st.st_mode):
        return "dir", (st.st_dev, st.st_ino)
    if stat.S_ISREG(st.st_mode):
        return "file", None
    what = ("FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode)
            else "device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "special file")
    return "bad", f"not a regular file ({what}); never opened"


#: Why a file in ROOT that no image reader recognises is a bad item when ROOT has class folders.
_NO_CLASS = ("not an image file Pillow can read; it lies in ROOT beside the class folders (no image there, so "
             "no unnamed class)")


def _is_image(path: Path) -> bool:
    """Whether Pillow recognises ``path`` as an image from its first bytes (a decompression bomb counts: it is
    an image, refused later with its reason)."""
    try:
        with Image.open(path):
            return True
    except Image.DecompressionBombError:
        return True
    except (OSError, ValueError, SyntaxError):
        return False


def _listing(directory: Path) -> list[tuple[str, str, Any]]:
    """Sorted ``(name, kind, detail)`` of one folder (raises ``OSError`` when it cannot be listed)."""
    return [(name, *_classify(directory / name, name)) for name in sorted(os.listdir(directory))]


@dataclass
class FolderPlan:
    """What one header pass over the whole folder decided (module docstring, "Size and channels").

    Attributes:
        items: entries that are items (everything met but ignored entries).
        ignored: the ignored entries, each :func:`name_record` with its reason.
        size: the folder's ``(width, height)`` as displayed, or ``None`` when no header was good.
        channels: 1 or 3.
        first: relative path (:func:`name_text`) of the first image of ``size`` (named in size errors).
        first_bad: the first bad item (shown path, reason), raised by :meth:`FolderTree.no_image` when no
            header was good (kept as plain values: a plan travels to Ray workers, pickled).
    """

    items: int = 0
    ignored: list[dict[str, str]] = field(default_factory=list)
    size: tuple[int, int] | None = None
    channels: int = 1
    first: str = ""
    first_bad: tuple[Path, str] | None = None


class FolderTree:
    """A folder of images as privis reads it (the rules of the module docstring).

    Args:
        path: the folder ROOT.

    Attributes:
        root: ROOT.
        class_names: the name of each class (:func:`name_text` of its folder; ``""`` for ROOT's files).
        class_dirs: each class's folder relative to ROOT as written (``""`` = ROOT itself).
        manifest: the privis manifest of ROOT, or ``None``.

    Raises:
        DatasetError: ROOT missing, not a folder or unreadable; a manifest that is malformed or does not
            know a subfolder or root file; two class folders equal once written, or one holding ``\\``.
    """

    def __init__(self, path: str | Path) -> None:
        root = Path(path).expanduser()
        shown = printable_name(str(root))
        if not root.exists():
            raise DatasetError(f"folder {shown} does not exist")
        if not root.is_dir():
            raise DatasetError(f"{shown} is not a folder (folder: specs need a folder of images)")
        self.root = root
        self.shown = shown
        self.manifest = read_manifest(root)
        try:
            listing = _listing(root)
        except OSError as exc:
            raise DatasetError(f"folder {shown} cannot be listed ({exc.strerror or exc})") from exc
        self._root_id = (os.stat(root).st_dev, os.stat(root).st_ino)
        root_files: list[tuple[str, str, Any]] = []
        self._root_ignored: list[Entry] = []
        dirs: list[tuple[str, tuple[int, int]]] = []
        seen: dict[tuple[int, int], str] = {self._root_id: ""}
        for name, kind, detail in listing:
            if name in RECORD_FILES and kind != "dir":
                continue
            if kind == "ignored":
                self._root_ignored.append(Entry(name, -1, detail, ignored=True))
            elif kind == "dir" and detail in seen:
                self._root_ignored.append(Entry(name, -1, self._seen_reason(seen[detail], ancestor=detail
                                                                               == self._root_id), ignored=True))
            elif kind == "dir":
                seen[detail] = name
                dirs.append((name, detail))
            else:
                root_files.append((name, kind, detail))
        self._root_files = root_files
        self._dir_ids = {name: ident for name, ident in dirs}
        texts: dict[str, str] = {}
        for name, _ in dirs:
            if "\\" in name:
                raise DatasetError(f"folder {shown}: class folder {printable_name(name)!r} holds a backslash, "
                                   "which privis manifests read as a folder separator; rename it")
            if name_text(name) in texts:
                raise DatasetError(f"folder {shown}: class folders {printable_name(texts[name_text(name)])!r} "
                                   f"and {printable_name(name)!r} are written under one name; rename one")
            texts[name_text(name)] = name
        if self.manifest is not None:
            self.class_names = list(self.manifest["class_names"])
            self.class_dirs = list(self.manifest["class_dirs"])
            unknown = sorted(t for t in texts if t not in self.class_dirs)
            if unknown:
                raise DatasetError(
                    f"folder {shown}: subfolder {printable_name(unknown[0])!r} is not a class in its "
                    f"{MANIFEST_NAME} (classes: {', '.join(self.class_dirs)})"
                )
            if root_files and UNNAMED_CLASS not in self.class_dirs:
                raise DatasetError(f"folder {shown}: file {printable_name(root_files[0][0])!r} in its root is in "
                                   f"no class of its {MANIFEST_NAME} (classes: {', '.join(self.class_dirs)})")
            self._raw_dirs = {d: texts.get(d, d) for d in self.class_dirs}
        else:
            named = [name_text(name) for name, _ in dirs]
            unnamed = bool(root_files) and (not dirs or any(kind == "file" and _is_image(root / name)
                                                            for name, kind, _ in root_files))
            self.class_names = ([UNNAMED_CLASS] if unnamed else []) + named
            self.class_dirs = list(self.class_names)
            self._raw_dirs = {name_text(name): name for name, _ in dirs}
        self._plan: FolderPlan | None = None
        self._excluded: list[Path] = []

    def exclude(self, folder: str | Path) -> None:
        """Never enter ``folder`` (a run's output folder) nor anything in it, even through a link inside
        ROOT: a folder leading there is ignored with its reason. Call before the first walk.
        """
        self._excluded.append(Path(folder).expanduser().resolve())

    @staticmethod
    def _seen_reason(where: str, *, ancestor: bool) -> str:
        target = where or "ROOT"
        if ancestor:
            return f"symbolic link loop: leads back to {printable_name(target)}, a folder it lies in"
        return f"same folder as {printable_name(target)}, already read (one folder linked twice)"

    # -- walking

    def _walk(self, rel_dir: str, label: int, seen: dict[tuple[int, int], str],
              inside: set[tuple[int, int]]) -> Iterator[Entry]:
        """Entries under ``ROOT/rel_dir`` (a class folder or below), files first, then subfolders."""
        if self._excluded:
            real = (self.root / rel_dir).resolve()
            if any(real.is_relative_to(folder) for folder in self._excluded):
                yield Entry(rel_dir, label, "leads into the output folder (a link inside the input); never read",
                            ignored=True)
                return
        try:
            listing = _listing(self.root / rel_dir)
        except OSError as exc:
            yield Entry(rel_dir, label, f"folder cannot be listed ({exc.strerror or exc}); its files are unread")
            return
        files = [t for t in listing if t[1] != "dir"]
        subdirs = [(name, ident) for name, kind, ident in listing if kind == "dir"]
        dir_texts: dict[str, str] = {}  # written name -> the first folder (sorted) written so
        for name, _ in subdirs:
            dir_texts.setdefault(name_text(name), name)
        taken: dict[str, str] = {}
        for name, kind, detail in files:
            rel = _join(rel_dir, name)
            if kind == "ignored":
                yield Entry(rel, label, detail, ignored=True)
                continue
            if kind == "bad":
                yield Entry(rel, label, detail)
                continue
            yield Entry(rel, label, self._name_error(rel, name, taken, dir_texts))
        for name, ident in subdirs:
            rel = _join(rel_dir, name)
            if "\\" in name:
                yield Entry(rel, label, "folder name holds a backslash, which privis manifests read as a "
                                        "folder separator; its files are unread")
            elif dir_texts[name_text(name)] != name:
                yield Entry(rel, label, f"folder name is written as {printable_name(name_text(name))}, like "
                                        f"{printable_name(_join(rel_dir, dir_texts[name_text(name)]))}; its "
                                        "files are unread")
            elif ident in seen:
                yield Entry(rel, label, self._seen_reason(seen[ident], ancestor=ident in inside), ignored=True)
            else:
                seen[ident] = name_text(rel)
                inside.add(ident)
                yield from self._walk(rel, label, seen, inside)
                inside.discard(ident)

    @staticmethod
    def _name_error(rel: str, name: str, taken: dict[str, str], dir_texts: dict[str, str]) -> str | None:
        """Why a file's name cannot be written (backslash, an output name taken first), or ``None``."""
        if "\\" in name:
            return "name holds a backslash, which privis manifests read as a folder separator"
        stem = PurePosixPath(name_text(name)).stem
        if stem in taken:
            return f"its output name {stem}.* collides with {printable_name(taken[stem])} (same folder and stem)"
        clash = next((stem + s for s in _OUTPUT_SUFFIXES if stem + s in dir_texts), None)
        taken[stem] = name_text(rel)
        if clash is not None:
            return f"its output name {printable_name(clash)} is the name of a folder beside it"
        return None

    def _entries_on_disk(self) -> Iterator[Entry]:
        seen: dict[tuple[int, int], str] = {self._root_id: ""}
        for d in self.class_dirs:
            if d != UNNAMED_CLASS and d in self._raw_dirs and self._raw_dirs[d] in self._dir_ids:
                seen[self._dir_ids[self._raw_dirs[d]]] = d
        yield from self._root_ignored
        if self.manifest is None and UNNAMED_CLASS not in self.class_dirs:
            for name, kind, detail in self._root_files:  # beside class folders, none of them an image
                yield Entry(name, -1, detail if kind == "bad" else _NO_CLASS)
        for label, d in enumerate(self.class_dirs):
            if d == UNNAMED_CLASS:
                taken: dict[str, str] = {}
                dir_texts = {name_text(n): n for n in self._dir_ids}
                for name, kind, detail in self._root_files:
                    if kind == "bad":
                        yield Entry(name, label, detail)
                    else:
                        yield Entry(name, label, self._name_error(name, name, taken, dir_texts))
                continue
            raw = self._raw_dirs.get(d, d)
            if raw not in self._dir_ids:
                continue  # a manifest's class without a folder: its items are reported missing
            ident = self._dir_ids[raw]
            yield from self._walk(raw, label, seen, {self._root_id, ident})

    def entries(self) -> Iterator[Entry]:
        """Every entry in order (module docstring): items (good or bad) and ignored entries.

        A plain folder is walked lazily (one listing per folder level held); a privis folder is walked
        whole first, to follow its manifest's order and report the files it lists that are missing.

        Raises:
            DatasetError: a manifest gives an item a label other than its folder's class.
        """
        if self.manifest is None:
            yield from self._entries_on_disk()
            return
        on_disk: dict[str, Entry] = {}
        for walked in self._entries_on_disk():
            on_disk.setdefault(walked.text, walked)
        label_of_dir = {d: i for i, d in enumerate(self.class_dirs)}
        for item in self.manifest["items"]:
            rel = str(PurePosixPath(item["path"].replace("\\", "/")))
            top = rel.split("/", 1)[0] if "/" in rel else UNNAMED_CLASS
            if label_of_dir.get(top) != item["label"]:
                raise DatasetError(
                    f"folder {self.shown}: {MANIFEST_NAME} gives {rel} label {item['label']}, "
                    f"but its folder is class {top!r}"
                )
            entry = on_disk.pop(rel, None)
            if entry is None or entry.ignored:
                yield Entry(rel, item["label"], f"listed in {MANIFEST_NAME} but missing")
            else:
                yield Entry(entry.rel, entry.label, entry.error, sha256=str(item["sha256"]))
        yield from on_disk.values()

    # -- the whole-folder decision

    def plan(self) -> FolderPlan:
        """Count the entries and decide size and channels from every header (cached; one pass)."""
        if self._plan is not None:
            return self._plan
        plan = FolderPlan()
        counts: dict[tuple[int, int], int] = {}
        first: dict[tuple[int, int], str] = {}
        colour: set[tuple[int, int]] = set()
        for entry in self.entries():
            if entry.ignored:
                plan.ignored.append(name_record(entry.rel, entry.error or "ignored"))
                continue
            plan.items += 1
            try:
                if entry.error is not None:
                    raise ImageFileError(self.shown_path(entry.rel), entry.error)
                size, channels, _ = probe_image(self.root / entry.rel)
            except ImageFileError as exc:
                if plan.first_bad is None:
                    plan.first_bad = (self.shown_path(entry.rel), exc.reason)
                continue
            counts[size] = counts.get(size, 0) + 1
            first.setdefault(size, entry.text)
            if channels == 3:
                colour.add(size)
        if counts:
            best = max(counts.values())
            plan.size = next(s for s in counts if counts[s] == best)
            plan.channels = 3 if plan.size in colour else 1
            plan.first = first[plan.size]
        self._plan = plan
        return plan

    def no_image(self) -> ImageFileError | DatasetError:
        """The error for a folder without one good header: its first bad item, or "no image files"."""
        bad = self.plan().first_bad
        if bad is not None:
            return ImageFileError(*bad)
        return DatasetError(f"folder {self.shown} holds no image files (expected {self.shown}/<class>/<image "
                            "files> or image files in it)")

    def size_error(self, width: int, height: int) -> str | None:
        """Why an image of ``width`` x ``height`` does not fit the folder's size, or ``None`` if it does."""
        plan = self.plan()
        if plan.size is None or plan.size == (width, height):
            return None
        return (f"size {width}x{height} (WxH) differs from the folder's {plan.size[0]}x{plan.size[1]}, the most "
                f"common size (first: {printable_name(plan.first)})")

    def shown_path(self, rel: str) -> Path:
        """``ROOT/rel`` as messages name it (:func:`printable_name`)."""
        return Path(self.shown) / printable_name(rel)
