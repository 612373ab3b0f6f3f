"""The owner-side state of a ``protect`` run: everything ``--resume`` needs, kept outside the output folder.

An output folder is handed to others; nothing in it may help undo the protection. So the run journal, the
run's identity (with a salted check value of the seed, never the seed) and the fitted protector live in a
private state folder on the owner's side::

    STATE_ROOT/                         $PRIVIS_STATE_DIR, else $XDG_CACHE_HOME/privis/runs, else
                                        ~/.cache/privis/runs (0700)
        <key>.lock                      flock'ed by the run that owns OUT (0600; holds "pid PID since TIME")
        <key>/                          one folder per output folder (0700)
            journal.jsonl               the run journal (privis.engine.journal; 0600)
            fitted.pt                   the fitted protector, torch.save'd (0600), for protectors that fit

``<key>`` is the first 32 hex digits of SHA-256 of OUT's resolved absolute path, so a run finds the state
of the folder it writes to; the journal's ``run_id`` (random, not secret) is also written into
``OUT/manifest.json`` so a finished folder names the run that wrote it.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import pickle
import secrets
import time
from pathlib import Path
from typing import IO, Any

import torch

from privis.engine.journal import JOURNAL_NAME
from privis.errors import InvalidInputError
from privis.fsutil import atomic_stream, private_dir

__all__ = ["STATE_ENV", "RunState", "journal_path", "new_run_id", "new_salt", "seed_check", "state_root"]

#: Environment variable naming the state root (tests point it at a temporary folder).
STATE_ENV = "PRIVIS_STATE_DIR"
FITTED_FILE = "fitted.pt"


def state_root() -> Path:
    """The folder holding every run's state: ``$PRIVIS_STATE_DIR``, else the user's cache folder."""
    given = os.environ.get(STATE_ENV)
    if given:
        return Path(given).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "privis" / "runs"


def _key(out: Path) -> str:
    return hashlib.sha256(os.fsencode(str(Path(out).expanduser().resolve()))).hexdigest()[:32]


def journal_path(out: str | Path, root: str | Path | None = None) -> Path:
    """The journal of the run writing to ``out`` (which need not exist yet)."""
    return RunState(Path(out), root).journal


def seed_check(seed: int | None, salt: str) -> str | None:
    """HMAC-SHA256 of the seed under a random per-run ``salt`` (hex): lets a resume tell that it got the
    same seed. Kept in the private state only; ``None`` for no seed."""
    if seed is None:
        return None
    return hmac.new(bytes.fromhex(salt), str(int(seed)).encode(), hashlib.sha256).hexdigest()


class RunState:
    """The state folder of output folder ``out`` (module docstring) and the lock on ``out``.

    Args:
        out: the output folder.
        root: the state root (default :func:`state_root`).
    """

    def __init__(self, out: Path, root: str | Path | None = None) -> None:
        self.out = out
        self.root = Path(root).expanduser() if root is not None else state_root()
        key = _key(out)
        self.folder = self.root / key
        self.journal = self.folder / JOURNAL_NAME
        self.fitted = self.folder / FITTED_FILE
        self.lock_path = self.root / f"{key}.lock"
        self._lock: IO[bytes] | None = None

    def acquire(self) -> None:
        """Lock ``out`` for this run (released by :meth:`release`, or when the process ends).

        Raises:
            InvalidInputError: another process holds the lock (named by its pid and start time), or the
                state root cannot be created.
        """
        try:
            private_dir(self.root)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise InvalidInputError(f"cannot use the run state folder {self.root} ({exc}); set {STATE_ENV} "
                                    "to a writable folder") from exc
        fh = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = fh.read(200).decode("utf-8", "replace").strip() or "another process"
            fh.close()
            raise InvalidInputError(f"output folder {self.out} is being written by another privis run "
                                    f"({holder}); wait for it to finish") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
        fh.flush()
        self._lock = fh

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def create(self) -> None:
        """Create the (private) state folder."""
        private_dir(self.folder)

    def discard(self) -> None:
        """Remove this output folder's journal and fitted state (a run replaced, or one whose outputs are gone)."""
        for path in (self.journal, self.fitted):
            path.unlink(missing_ok=True)

    def save_fitted(self, protector: Any) -> bool:
        """``torch.save`` the fitted protector into the state folder (0600, atomic); False when it cannot
        be pickled (a class defined inside a function, ...): a resume then fits again and must find the
        same fitted fingerprint."""
        self.create()
        try:
            with atomic_stream(self.fitted, "wb", private=True) as fh:
                torch.save(protector, fh)
        except (pickle.PicklingError, AttributeError, TypeError):
            return False
        return True

    def load_fitted(self) -> Any:
        """The protector :meth:`save_fitted` stored (a file this owner wrote into a private folder).

        Raises:
            InvalidInputError: the file cannot be read back.
        """
        try:
            where = None if torch.cuda.is_available() else "cpu"
            return torch.load(self.fitted, map_location=where, weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is one clear line
            raise InvalidInputError(f"cannot resume: the fitted state {self.fitted} is unreadable "
                                    f"({type(exc).__name__}: {exc}); pass --force to start over") from exc


def new_run_id() -> str:
    """A random run id (128 bits, hex): not secret, it only links an output folder to its state."""
    return secrets.token_hex(16)


def new_salt() -> str:
    return secrets.token_hex(16)
