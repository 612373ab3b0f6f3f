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
from privis.registry import Registry

__all__ = ["REGISTRY", "available", "load"]


def _fashion_mnist_description() -> str:
    """Fashion-MNIST's line, saying whether it is present locally (and where) without downloading anything."""
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
    return f"Zalando Fashion-MNIST, 28x28 grey, 10 classes, splits train (60000) / test (10000); {where}"


#: The registry of dataset loaders (:class:`privis.registry.Registry`). Built-in datasets are loaded with
#: ``loader(split, index=slice)``; the path kinds (``spec="folder:PATH"``, ``"npz:PATH"``) with ``loader(path)``.
REGISTRY: Registry[Callable[..., Dataset]] = Registry("dataset")
REGISTRY.register("fashion-mnist", description=_fashion_mnist_description)(fashion_mnist)
REGISTRY.register("digits", description="scikit-learn handwritten digits, 8x8 grey, 10 classes, splits train "
                  "(1347) / test (450) / all (1797); always available")(digits)
REGISTRY.register("lfw-subset", description="scikit-image LFW subset, 25x25 grey, face / non-face, splits all "
                  "(200) / train (150) / test (50); always available")(lfw_subset)
REGISTRY.register("astronaut", description="scikit-image astronaut photograph, one 512x512 RGB image; always "
                  "available")(astronaut)
REGISTRY.register("folder", spec="folder:PATH", description="class-per-subfolder images PATH/<class>/.../<file> "
                  "(PNG, JPEG, ... any Pillow format); privis output folders read back this way")(load_folder)
REGISTRY.register("npz", spec="npz:PATH", description="NumPy archive with 'images' (N,H,W[,C]) or (N,C,H,W), "
                  "optional 'labels', 'class_names'")(load_npz)
assert set(REGISTRY.list(spec=None)) == set(BUILTIN_DATASETS)


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
        dataset = REGISTRY.get("folder")(parsed.path or "", skip_bad=skip_bad)
    elif parsed.kind == "npz":
        dataset = REGISTRY.get("npz")(parsed.path or "")
    else:
        dataset = REGISTRY.get(parsed.name)(parsed.default_split, index=parsed.index)
        if len(dataset) != parsed.size:  # the files on disk hold another number of items than the split should
            raise DatasetError(f"dataset spec {spec!r} should select {parsed.size} items, the data on disk gave "
                               f"{len(dataset)}")
    if len(dataset) == 0:
        raise DatasetError(f"dataset spec {spec!r} selects no items")
    dataset.name = spec.strip()
    return dataset


def available() -> dict[str, str]:
    """Name (or spec form, ``folder:PATH``) -> one-line description of every dataset source, for
    ``privis datasets``; says whether Fashion-MNIST is present locally (and where) without downloading."""
    entries = [REGISTRY.entry(name) for name in REGISTRY.list()]
    return {e.meta.get("spec", e.name): e.description for e in sorted(entries, key=lambda e: "spec" in e.meta)}
