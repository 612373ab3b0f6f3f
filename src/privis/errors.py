"""Exception types shared by every layer of privis.

Each error names its cause in one line, so the CLI can print it as is (docs/architecture.md: errors go to
stderr as one line that names the cause, and the file for a bad file).
"""

from __future__ import annotations

from pathlib import Path


class PrivisError(Exception):
    """Base class of every error privis raises on purpose."""


class InvalidInputError(PrivisError, ValueError):
    """An argument or tensor is unusable: wrong shape, dtype, range, NaN, absurd parameter."""


class ImageFileError(PrivisError):
    """An image file cannot be used: unreadable, truncated, or of an unsupported mode.

    Attributes:
        path: the offending file.
        reason: a short human-readable cause.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotApplicableError(PrivisError):
    """An attack or analysis has nothing to work on for this method (e.g. reassembling shuffles of a blur,
    the keyspace of continuous noise).

    Reports (the leaderboard) record the reason instead of a figure.
    """


class DatasetError(PrivisError):
    """A dataset spec or source is unusable: unknown name, missing files, empty folder."""
