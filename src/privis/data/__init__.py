"""privis.data: every way images enter and leave privis, converted at this edge to the canonical form.

Canonical form (``docs/architecture.md``): images ``torch.Tensor`` ``(N, C, H, W)`` float32 in [0, 1], labels
``torch.long`` ``(N,)``, carried with their class names in a :class:`Dataset`.

- :func:`load` turns a spec (``fashion-mnist:train[:2000]``, ``digits``, ``folder:PATH``, ``npz:PATH``)
  into a :class:`Dataset`; :func:`available` lists the sources.
- Loaders: :func:`fashion_mnist` (IDX, :func:`read_idx`), :func:`digits`, :func:`lfw_subset`,
  :func:`astronaut`, :func:`load_folder`, :func:`load_npz`.
- Writers: :class:`FolderWriter` / :func:`write_folder` (PNG + ``manifest.json``), :func:`write_npz`.

Examples:
    >>> from privis import data
    >>> digits = data.load("digits:test[:10]")
    >>> digits.images.shape, digits.images.dtype, digits.labels.dtype
    (torch.Size([10, 1, 8, 8]), torch.float32, torch.int64)
    >>> float(digits.images.min()) >= 0.0 and float(digits.images.max()) <= 1.0
    True
    >>> "digits" in data.available()
    True
"""

from privis.data.builtin import astronaut, digits, lfw_subset
from privis.data.dataset import Dataset, images_from_numpy
from privis.data.folder import (
    MANIFEST_NAME,
    FolderWriter,
    class_dir_names,
    load_folder,
    read_manifest,
    write_folder,
)
from privis.data.idx import (
    FASHION_MNIST_CLASSES,
    download_fashion_mnist,
    fashion_mnist,
    fashion_mnist_available,
    fashion_mnist_cache_dir,
    fashion_mnist_search_dirs,
    find_fashion_mnist,
    read_idx,
)
from privis.data.imagefile import read_image
from privis.data.npz import load_npz, write_npz
from privis.data.registry import available, load
from privis.data.spec import GRAMMAR, DatasetSpec, parse_spec

__all__ = [
    "FASHION_MNIST_CLASSES",
    "GRAMMAR",
    "MANIFEST_NAME",
    "Dataset",
    "DatasetSpec",
    "FolderWriter",
    "astronaut",
    "available",
    "class_dir_names",
    "digits",
    "download_fashion_mnist",
    "fashion_mnist",
    "fashion_mnist_available",
    "fashion_mnist_cache_dir",
    "fashion_mnist_search_dirs",
    "find_fashion_mnist",
    "images_from_numpy",
    "lfw_subset",
    "load",
    "load_folder",
    "load_npz",
    "parse_spec",
    "read_idx",
    "read_image",
    "read_manifest",
    "write_folder",
    "write_npz",
]
