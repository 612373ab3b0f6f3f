"""Small built-in datasets that ship with scikit-learn and scikit-image, so privis always has data offline.

- ``digits``: scikit-learn's 1797 8x8 handwritten digits (the always-present fallback when
  Fashion-MNIST is missing).
- ``lfw-subset``: scikit-image's 200 grey 25x25 crops, the first 100 faces and the last 100 non-faces.
- ``astronaut``: scikit-image's one 512x512 RGB photograph (Eileen Collins), for single-image demos.

Train/test splits are stratified and fixed (``random_state=0``, a quarter held out) so every run and
every machine sees the same split; indices within a split keep the source order.
"""

from __future__ import annotations

import numpy as np
import torch

from privis.data.dataset import Dataset, images_from_numpy
from privis.errors import DatasetError

__all__ = ["astronaut", "digits", "lfw_subset", "split_indices"]

TEST_SIZE = 0.25
SPLIT_SEED = 0


def split_indices(labels: np.ndarray, split: str, *, source: str) -> np.ndarray:
    """Indices of ``split`` in a fixed stratified train/test split of ``labels``.

    Args:
        labels: ``(N,)`` integer labels.
        split: ``"train"``, ``"test"`` or ``"all"``.
        source: the dataset name, for error messages.

    Returns:
        Sorted ``(M,)`` int64 indices; a quarter of each class (rounded as scikit-learn does) goes to
        ``test``, the rest to ``train``, ``all`` is every index.
    """
    n = labels.shape[0]
    if split == "all":
        return np.arange(n, dtype=np.int64)
    if split not in ("train", "test"):
        raise DatasetError(f"{source} has no split {split!r} (splits: train, test, all)")
    from sklearn.model_selection import train_test_split  # imported here: scikit-learn takes seconds to load
    train, test = train_test_split(
        np.arange(n, dtype=np.int64), test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=labels
    )
    return np.sort(train if split == "train" else test)


def digits(split: str = "train", *, index: slice = slice(None)) -> Dataset:
    """scikit-learn's handwritten digits.

    Args:
        split: ``"train"`` (1347 images), ``"test"`` (450) or ``"all"`` (1797).
        index: items to keep within the split.

    Returns:
        ``Dataset`` with images ``(N, 1, 8, 8)`` float32 (the 0..16 grey levels divided by 16), labels
        ``(N,)`` 0..9, class names ``"0"``..``"9"``, name ``"digits:<split>"``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    labels = np.asarray(bunch.target, dtype=np.int64)
    chosen = split_indices(labels, split, source="digits")[index]
    images = np.asarray(bunch.images, dtype=np.float64)[chosen] / 16.0
    return Dataset(
        images=images_from_numpy(images, source="digits"),
        labels=torch.from_numpy(labels[chosen]),
        class_names=[str(d) for d in range(10)],
        name=f"digits:{split}",
    )


def lfw_subset(split: str = "all", *, index: slice = slice(None)) -> Dataset:
    """scikit-image's LFW subset: 100 face and 100 non-face grey crops.

    Args:
        split: ``"all"`` (200), ``"train"`` (150) or ``"test"`` (50), stratified by class.
        index: items to keep within the split.

    Returns:
        ``Dataset`` with images ``(N, 1, 25, 25)`` float32 in [0, 1], labels 0 = ``"face"``,
        1 = ``"non-face"``, name ``"lfw-subset:<split>"``.
    """
    from skimage import data as skdata

    try:
        images = np.asarray(skdata.lfw_subset())
    except Exception as exc:  # the sample file ships with scikit-image; a broken install lands here
        raise DatasetError(f"scikit-image's lfw_subset sample is unavailable ({exc})") from exc
    if images.shape != (200, 25, 25):
        raise DatasetError(f"scikit-image's lfw_subset has shape {images.shape}, expected (200, 25, 25)")
    labels = np.repeat(np.array([0, 1], dtype=np.int64), 100)
    chosen = split_indices(labels, split, source="lfw-subset")[index]
    return Dataset(
        images=images_from_numpy(np.clip(images[chosen], 0.0, 1.0), source="lfw-subset"),
        labels=torch.from_numpy(labels[chosen]),
        class_names=["face", "non-face"],
        name=f"lfw-subset:{split}",
    )


def astronaut(split: str = "all", *, index: slice = slice(None)) -> Dataset:
    """scikit-image's astronaut photograph as a one-image dataset.

    Returns:
        ``Dataset`` with images ``(1, 3, 512, 512)`` float32 (pixel / 255), label 0, class
        ``"astronaut"``, name ``"astronaut"``.
    """
    from skimage import data as skdata

    if split != "all":
        raise DatasetError(f"astronaut has no split {split!r} (splits: all)")
    try:
        image = np.asarray(skdata.astronaut())
    except Exception as exc:
        raise DatasetError(f"scikit-image's astronaut sample is unavailable ({exc})") from exc
    images = image[None][index]
    return Dataset(
        images=images_from_numpy(images, layout="NHWC", source="astronaut"),
        labels=torch.zeros(images.shape[0], dtype=torch.long),
        class_names=["astronaut"],
        name="astronaut",
    )
