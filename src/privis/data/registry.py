"""One entry point from a spec string to a :class:`Dataset`, and the list ``privis datasets`` prints."""

from __future__ import annotations

from collections.abc import Callable

from privis.data.builtin import astronaut, digits, lfw_subset
from privis.data.dataset import Dataset
from privis.data.folder import load_folder
from privis.data.idx import fashion_mnist, fashion_mnist_cache_dir, find_fashion_mnist
from privis.data.npz import load_npz
from privis.data.spec import BUILTIN_DATASETS, parse_spec
from privis.errors import DatasetError

__all__ = ["available", "load"]

#: Built-in name -> loader(split, index=slice) -> Dataset.
_BUILTIN_LOADERS: dict[str, Callable[..., Dataset]] = {
    "fashion-mnist": fashion_mnist,
    "digits": digits,
    "lfw-subset": lfw_subset,
    "astronaut": astronaut,
}
assert set(_BUILTIN_LOADERS) == set(BUILTIN_DATASETS)


def load(spec: str, *, skip_bad: bool = False) -> Dataset:
    """Load the dataset a spec names (grammar in :mod:`privis.data.spec`).

    Args:
        spec: e.g. ``"fashion-mnist:train[:2000]"``, ``"digits:test"``, ``"folder:data/faces"``,
            ``"npz:x.npz"``.
        skip_bad: for ``folder:`` specs, list bad image files in ``Dataset.skipped`` instead of raising.

    Returns:
        ``Dataset`` with images ``(N, C, H, W)`` float32 in [0, 1] and labels ``(N,)``; its ``name``
        is ``spec`` (stripped). A built-in spec without a split uses the dataset's default split
        (``train`` for fashion-mnist and digits, ``all`` for lfw-subset and astronaut).

    Raises:
        DatasetError: bad spec, missing data, or a range that selects no items or runs past the split.
        ImageFileError: a bad file (see the individual loaders).
    """
    parsed = parse_spec(spec)
    if parsed.kind == "folder":
        dataset = load_folder(parsed.path or "", skip_bad=skip_bad)
    elif parsed.kind == "npz":
        dataset = load_npz(parsed.path or "")
    else:
        dataset = _BUILTIN_LOADERS[parsed.name](parsed.default_split, index=parsed.index)
        if len(dataset) != parsed.size:  # the files on disk hold another number of items than the split should
            raise DatasetError(f"dataset spec {spec!r} should select {parsed.size} items, the data on disk gave "
                               f"{len(dataset)}")
    if len(dataset) == 0:
        raise DatasetError(f"dataset spec {spec!r} selects no items")
    dataset.name = spec.strip()
    return dataset


def available() -> dict[str, str]:
    """Name (or spec form) -> one-line description of every dataset source, for ``privis datasets``.

    Says whether Fashion-MNIST is present locally (and where) without downloading anything.
    """
    train, test = find_fashion_mnist("train"), find_fashion_mnist("test")
    if train is not None and test is not None:
        where = f"found in {train[0].parent}" if train[0].parent == test[0].parent else (
            f"found in {train[0].parent} and {test[0].parent}"
        )
    elif train is not None or test is not None:
        found = train or test
        assert found is not None
        where = f"only the {'train' if train else 'test'} split found, in {found[0].parent}"
    else:
        where = (
            f"not found locally; downloaded into {fashion_mnist_cache_dir()} on first use, "
            "or apt-get install dataset-fashion-mnist"
        )
    return {
        "fashion-mnist": "Zalando Fashion-MNIST, 28x28 grey, 10 classes, splits train (60000) / "
        f"test (10000); {where}",
        "digits": "scikit-learn handwritten digits, 8x8 grey, 10 classes, splits train (1347) / "
        "test (450) / all (1797); always available",
        "lfw-subset": "scikit-image LFW subset, 25x25 grey, face / non-face, splits all (200) / "
        "train (150) / test (50); always available",
        "astronaut": "scikit-image astronaut photograph, one 512x512 RGB image; always available",
        "folder:PATH": "class-per-subfolder images PATH/<class>/.../<file> (PNG, JPEG, ... any Pillow "
        "format); privis output folders read back this way",
        "npz:PATH": "NumPy archive with 'images' (N,H,W[,C]) or (N,C,H,W), optional 'labels', 'class_names'",
    }
