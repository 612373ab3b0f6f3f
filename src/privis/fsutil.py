"""File-system safety: atomic writes with the right permissions, and the checks every output path passes.

- Writes are atomic (brief: a reader never sees a partial file, a crash never leaves one): a temporary
  file beside the target, fsync, rename. Ordinary outputs get the permissions any new file gets
  (``0666 & ~umask``), so the next stage of a pipeline, possibly another user, can read them; private
  files (keys, the owner-side run state) get ``0600`` from their creation on.
- :func:`check_outputs` is called by every command before any work starts: an output path that is an
  input (also through a hard or symbolic link), lies inside an input folder, or is a folder containing an
  input, is refused, and so is one that cannot be written (read-only file or folder, a folder where a
  file is expected).
- :func:`survey_folder` and :func:`clear_owned` are the one implementation of "never delete or overwrite
  what privis did not write": a file counts as privis' own only when a privis record lists it and its
  SHA-256 still matches that record (an edited file is the user's).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from privis.errors import InvalidInputError

__all__ = [
    "FolderSurvey",
    "atomic_stream",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_outputs",
    "clear_owned",
    "file_sha256",
    "private_dir",
    "survey_folder",
]

#: Most paths named in one refusal (the rest are counted).
_LISTED = 5


def private_dir(path: str | Path) -> Path:
    """Create folder ``path`` (and parents) if needed and make it ``0700``; return it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


@contextmanager
def atomic_stream(path: str | Path, mode: str = "w", *, private: bool = False) -> Iterator[IO]:
    """Open ``path`` for an atomic, streamed write (``mode`` ``"w"`` text or ``"wb"`` bytes): the caller writes
    to a temporary file beside ``path``; on success it is fsynced and renamed over ``path``, on error removed.
    For files too large to build in memory, and the one place the temp-fsync-rename pattern lives.

    The file is created with ``0600`` when ``private``, else ``0666`` less the umask (the kernel applies
    the umask at creation, as for any new file), before any byte is written. Missing parent folders are
    created with the umask's permissions."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_stream mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"  # the name journal.remove_temp_files knows
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
    try:
        if private:
            os.fchmod(fd, 0o600)  # a umask never widens, but make the intent explicit
        with os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes, *, private: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically: temp file beside it, fsync, rename (see :func:`atomic_stream`)."""
    with atomic_stream(path, "wb", private=private) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, private: bool = False) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), private=private)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------ output path checks


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name one file or folder (resolved paths, or one inode: hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _writable(path: Path) -> bool:
    """Whether ``path`` may be written: the OS allows it and its mode has a write bit (so a file or folder
    marked read-only is respected even by a superuser)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _existing_ancestor(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path(path.anchor or ".")


def check_outputs(outputs: Mapping[str, str | Path | None], inputs: Iterable[str | Path | None], *,
                  folders: Iterable[str] = ()) -> None:
    """Refuse, before any work, output paths that would touch an input or cannot be written.

    Args:
        outputs: what each output is called on screen (an option such as ``"--json"``) -> its path;
            ``None`` paths are ignored.
        inputs: files and folders read by the command (``None`` ignored; missing paths are fine).
        folders: the names in ``outputs`` that are folders (the rest are files).

    Raises:
        InvalidInputError: one line naming the option, the path and the reason: it is an input (also via a
            link), lies inside an input folder, contains an input, is a folder where a file is expected (or
            a file where a folder is), is read-only, lies in a folder that cannot be written, or two
            outputs are one path.
    """
    folder_names = set(folders)
    given = [(name, Path(p).expanduser()) for name, p in outputs.items() if p is not None]
    sources = [Path(p).expanduser() for p in inputs if p is not None and str(p) != ""]
    for k, (name, out) in enumerate(given):
        is_folder = name in folder_names
        for inp in sources:
            if not inp.exists() and not inp.is_symlink():
                continue
            if _same(out, inp) if out.exists() else out.resolve() == inp.resolve():
                raise InvalidInputError(f"refusing to write {name} {out}: it is the input {inp} (outputs must "
                                        "never overwrite inputs)")
            real_out, real_in = out.resolve(), inp.resolve()
            if real_in.is_dir() and real_out.is_relative_to(real_in):
                raise InvalidInputError(f"refusing to write {name} {out}: it lies inside the input folder {inp} "
                                        "(outputs must never overwrite inputs)")
            if is_folder and real_in.is_relative_to(real_out):
                raise InvalidInputError(f"refusing to write {name} {out}: the input {inp} lies inside the "
                                        "output folder (outputs must never overwrite inputs)")
        for other_name, other in given[:k]:
            if out.resolve() == other.resolve():
                raise InvalidInputError(f"{other_name} and {name} are the same path {out}")
        if out.exists() or out.is_symlink():
            if not out.exists():
                raise InvalidInputError(f"{name} {out} is a broken symbolic link")
            if is_folder and not out.is_dir():
                raise InvalidInputError(f"{name} {out} exists and is not a folder")
            if not is_folder and out.is_dir():
                raise InvalidInputError(f"{name} {out} is a folder; give a file path")
            if not _writable(out):
                raise InvalidInputError(f"{name} {out} is read-only")
        if not (is_folder and out.exists()):
            parent = _existing_ancestor(out.parent)
            if not parent.is_dir():
                raise InvalidInputError(f"{name} {out}: {parent} is not a folder")
            if not _writable(parent) or not os.access(parent, os.X_OK):
                raise InvalidInputError(f"{name} {out}: cannot write in the folder {parent} (not writable)")


# ------------------------------------------------------------------------- what privis wrote itself


@dataclass
class FolderSurvey:
    """The files of an output folder, by who wrote them.

    Attributes:
        owned: relative POSIX paths a privis record lists whose bytes still match it (privis may remove or
            replace them).
        foreign: every other non-hidden file (the user's, another tool's, or privis' but edited since):
            never removed, never overwritten.
    """

    root: Path
    owned: set[str] = field(default_factory=set)
    foreign: set[str] = field(default_factory=set)

    def refuse(self, clashes: Iterable[str], why: str) -> None:
        """Raise naming (up to five of) ``clashes``, files privis did not write that a run would replace.

        Raises:
            InvalidInputError: when ``clashes`` is not empty.
        """
        listed = sorted(set(clashes))
        if not listed:
            return
        shown = ", ".join(str(self.root / p) for p in listed[:_LISTED])
        more = f" and {len(listed) - _LISTED} more" if len(listed) > _LISTED else ""
        raise InvalidInputError(f"refusing to overwrite {len(listed)} file(s) privis did not write ({why}): "
                                f"{shown}{more}; move them away or choose another output folder")


def _safe_rel(rel: object) -> str | None:
    if not isinstance(rel, str) or not rel:
        return None
    p = PurePosixPath(rel)
    if p.is_absolute() or any(part in ("", ".", "..") for part in p.parts) or "\\" in rel:
        return None
    return p.as_posix()


def survey_folder(root: Path, records: Iterable[tuple[object, object]], *, verify: bool = True) -> FolderSurvey:
    """Sort the non-hidden files under ``root`` into privis' own and everyone else's.

    Args:
        root: the output folder (may be missing: an empty survey).
        records: ``(relative path, sha256 or None)`` pairs privis recorded as written; ``None`` means "being
            written when the run stopped" (a file there with no finished record is privis', whatever its
            bytes: atomic writes leave either nothing or the whole file); a path with a finished record is
            privis' only while its bytes match one. Streamed; memory grows with the folder's files only.
        verify: check recorded files' SHA-256 (reads them). ``False`` counts every recorded file as
            privis' own, for callers that will neither remove nor replace a recorded file (a resume
            only writes items its journal does not list as finished).
    """
    survey = FolderSurvey(root)
    if not root.is_dir():
        return survey
    present: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath).relative_to(root)
        for fname in filenames:
            if not fname.startswith("."):
                present.add((base / fname).as_posix())
    if not present:
        return survey
    expected: dict[str, set[str | None]] = {}
    for rel, sha in records:
        key = _safe_rel(rel)
        if key is not None and key in present:
            expected.setdefault(key, set()).add(sha if isinstance(sha, str) else None)
    for rel in present:
        hashes = expected.get(rel)
        target = root / rel
        recorded = hashes - {None} if hashes is not None else set()  # a finished record outranks "being written"
        if hashes is not None and not target.is_symlink() and target.is_file() and (
                not verify or (file_sha256(target) in recorded if recorded else None in hashes)):
            survey.owned.add(rel)
        else:
            survey.foreign.add(rel)
    return survey


def clear_owned(root: Path, owned: Iterable[str]) -> int:
    """Delete the files of ``owned`` (relative to ``root``), then the folders left empty; return how many files.

    Only for paths a :func:`survey_folder` found to be privis' own; a path that resolves outside ``root``
    is left alone.
    """
    real = root.resolve()
    removed = 0
    emptied: set[Path] = set()
    for rel in owned:
        target = root / rel
        if target.resolve().is_relative_to(real) and target.resolve() != real and target.is_file():
            target.unlink()
            removed += 1
            emptied.update(p for p in target.parents if p != root and p.is_relative_to(root))
    for folder in sorted(emptied, key=lambda p: -len(p.parts)):  # deepest first; only folders privis emptied
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return removed
