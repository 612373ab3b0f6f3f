"""Dataset specs: the one-string names every command line and experiment uses to pick data.

Grammar (``docs/architecture.md``, "The command line")::

    NAME[:SPLIT][[START:STOP]]     built-in datasets, e.g. fashion-mnist:train[:2000], digits, digits:test
    folder:PATH                    class-per-subfolder images (PATH is everything after the first colon)
    npz:PATH                       a NumPy .npz archive

A spec is parsed once, here, into a :class:`DatasetSpec`; loaders never see raw strings. The table of
built-in names and their splits also lives here so that parsing can reject an unknown name or split
before any file is touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from privis.errors import DatasetError

__all__ = ["BUILTIN_DATASETS", "GRAMMAR", "SPLIT_SIZES", "DatasetSpec", "parse_spec"]

GRAMMAR = "NAME[:SPLIT][[START:STOP]] (e.g. fashion-mnist:train[:2000], digits:test), folder:PATH or npz:PATH"

#: Built-in dataset name -> (accepted splits, split used when the spec names none).
BUILTIN_DATASETS: dict[str, tuple[tuple[str, ...], str]] = {
    "fashion-mnist": (("train", "test"), "train"),
    "digits": (("train", "test", "all"), "train"),
    "lfw-subset": (("all", "train", "test"), "all"),
    "astronaut": (("all",), "all"),
}

#: Items in each built-in split, so that a range is checked against it before any file is read.
SPLIT_SIZES: dict[str, dict[str, int]] = {
    "fashion-mnist": {"train": 60000, "test": 10000},
    "digits": {"train": 1347, "test": 450, "all": 1797},
    "lfw-subset": {"all": 200, "train": 150, "test": 50},
    "astronaut": {"all": 1},
}
assert set(SPLIT_SIZES) == set(BUILTIN_DATASETS)

_PATH_KINDS = ("folder", "npz")

_BUILTIN_RE = re.compile(
    r"""^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)
        (?::(?P<split>[A-Za-z0-9_-]+))?
        (?:\[(?P<start>\d*):(?P<stop>\d*)\])?$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset spec.

    Attributes:
        kind: ``"builtin"``, ``"folder"`` or ``"npz"``.
        name: the built-in dataset name (canonical, lower case), or ``"folder"`` / ``"npz"``.
        path: the file or folder for ``folder``/``npz`` specs, else ``None``.
        split: the split the spec names, or ``None`` when it names none (the loader then uses the
            dataset's default split; callers that need both train and test can tell the difference).
        start, stop: the item range ``[start:stop]`` (Python slice semantics, non-negative), each
            ``None`` when omitted.
    """

    kind: str
    name: str
    path: str | None = None
    split: str | None = None
    start: int | None = None
    stop: int | None = None

    @property
    def default_split(self) -> str | None:
        """The split a loader uses: the named one, else the dataset's default (``None`` for paths)."""
        if self.kind != "builtin":
            return None
        return self.split or BUILTIN_DATASETS[self.name][1]

    @property
    def split_size(self) -> int | None:
        """Items in the split a loader reads (before the range); ``None`` for ``folder``/``npz``."""
        split = self.default_split
        return None if split is None else SPLIT_SIZES[self.name][split]

    @property
    def size(self) -> int | None:
        """Items the spec selects (its range within the split); ``None`` for ``folder``/``npz``."""
        total = self.split_size
        if total is None:
            return None
        return (total if self.stop is None else self.stop) - (self.start or 0)

    @property
    def index(self) -> slice:
        """The item range as a ``slice`` (``slice(None, None)`` when the spec has none)."""
        return slice(self.start, self.stop)

    def __str__(self) -> str:
        """The canonical spec text, which :func:`parse_spec` reads back to an equal spec."""
        if self.kind != "builtin":
            return f"{self.kind}:{self.path}"
        text = self.name
        if self.split is not None:
            text += f":{self.split}"
        if self.start is not None or self.stop is not None:
            start = "" if self.start is None else str(self.start)
            stop = "" if self.stop is None else str(self.stop)
            text += f"[{start}:{stop}]"
        return text


def _bad(spec: str, why: str) -> DatasetError:
    return DatasetError(f"bad dataset spec {spec!r}: {why}; expected {GRAMMAR}")


def parse_spec(spec: str) -> DatasetSpec:
    """Parse a dataset spec string into a :class:`DatasetSpec`.

    ``folder:`` and ``npz:`` take everything after the first colon as the path, so a path may itself
    contain colons. Built-in names are case-insensitive and ``_`` may stand for ``-``.

    Raises:
        DatasetError: the spec is empty, malformed, names an unknown dataset or split, or has a range
            that selects nothing (START at or after STOP) or runs past the end of the split. The message
            names the spec and the grammar.

    Examples:
        >>> from privis.data import parse_spec
        >>> parse_spec("fashion-mnist:train[:2000]")
        DatasetSpec(kind='builtin', name='fashion-mnist', path=None, split='train', start=None, stop=2000)
        >>> parse_spec("folder:/data/photos").path
        '/data/photos'
    """
    if not isinstance(spec, str):
        raise DatasetError(f"bad dataset spec {spec!r}: not a string; expected {GRAMMAR}")
    text = spec.strip()
    if not text:
        raise _bad(spec, "empty")

    head, sep, rest = text.partition(":")
    if sep and head.lower() in _PATH_KINDS:
        if not rest.strip():
            raise _bad(spec, f"{head.lower()}: needs a path")
        return DatasetSpec(kind=head.lower(), name=head.lower(), path=rest.strip())

    match = _BUILTIN_RE.match(text)
    if match is None:
        hint = ""
        if "/" in text or "\\" in text:
            hint = f" (for a folder of images write folder:{text}, for an archive npz:{text})"
        raise _bad(spec, "not of the form NAME[:SPLIT][[START:STOP]]" + hint)

    name = match["name"].lower().replace("_", "-")
    if name not in BUILTIN_DATASETS:
        known = ", ".join(sorted(BUILTIN_DATASETS))
        hint = f" (for a folder of images write folder:{text})" if "." in name else ""
        raise _bad(spec, f"unknown dataset {name!r} (built-in: {known}){hint}")

    splits, _default = BUILTIN_DATASETS[name]
    split = match["split"].lower() if match["split"] is not None else None
    if split is not None and split not in splits:
        raise _bad(spec, f"dataset {name!r} has no split {split!r} (splits: {', '.join(splits)})")

    start = int(match["start"]) if match["start"] else None
    stop = int(match["stop"]) if match["stop"] else None
    if start is not None and stop is not None and start >= stop:
        raise _bad(spec, f"empty range [{start}:{stop}] (START must be below STOP)")
    parsed = DatasetSpec(kind="builtin", name=name, split=split, start=start, stop=stop)
    total = parsed.split_size
    assert total is not None
    if (stop is not None and stop > total) or (start is not None and start >= total):
        raise _bad(spec, f"range [{'' if start is None else start}:{'' if stop is None else stop}] runs past the "
                   f"end of {name}:{parsed.default_split}, which holds {total} items (0 to {total - 1})")
    return parsed
