"""The Dataset container: canonical-form checks, subsets, properties, array conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from privis.data import Dataset, images_from_numpy
from privis.errors import InvalidInputError


def make(n: int = 6, c: int = 1, paths: bool = True) -> Dataset:
    return Dataset(
        images=torch.rand(n, c, 4, 5),
        labels=torch.arange(n) % 3,
        class_names=["a", "b", "c"],
        name="test",
        paths=[f"a/{i}.png" for i in range(n)] if paths else None,
    )


def test_properties() -> None:
    ds = make(c=3)
    assert len(ds) == 6 and ds.num_classes == 3 and ds.shape == (3, 4, 5)
    assert ds.skipped == []


@pytest.mark.parametrize(
    "index",
    [slice(1, 4), [1, 2, 3], torch.tensor([1, 2, 3]), np.array([1, 2, 3]),
     torch.tensor([False, True, True, True, False, False])],
)
def test_subset_forms(index: object) -> None:
    ds = make()
    sub = ds.subset(index)  # type: ignore[arg-type]
    assert len(sub) == 3
    assert torch.equal(sub.images, ds.images[1:4]) and torch.equal(sub.labels, ds.labels[1:4])
    assert sub.paths == ["a/1.png", "a/2.png", "a/3.png"]
    assert sub.class_names == ds.class_names and sub.name == ds.name


def test_subset_int_empty_and_errors() -> None:
    ds = make(paths=False)
    one = ds.subset(2)
    assert len(one) == 1 and one.labels.tolist() == [2] and one.paths is None
    assert len(ds.subset([])) == 0
    with pytest.raises(InvalidInputError):
        ds.subset([99])
    with pytest.raises(InvalidInputError):
        ds.subset(torch.tensor([True, False]))
    with pytest.raises(InvalidInputError):
        ds.subset(torch.tensor([0.5]))


@pytest.mark.parametrize(
    ("images", "labels", "fragment"),
    [
        (torch.rand(2, 4, 4), torch.zeros(2, dtype=torch.long), "(N, C, H, W)"),
        (torch.rand(2, 1, 4, 4).double(), torch.zeros(2, dtype=torch.long), "float32"),
        (torch.rand(2, 1, 4, 4), torch.zeros(2, dtype=torch.int32), "torch.long"),
        (torch.rand(2, 1, 4, 4), torch.zeros(3, dtype=torch.long), "2 images but 3 labels"),
        (torch.rand(2, 1, 4, 4), torch.tensor([0, 5]), "labels span"),
        (torch.full((2, 1, 4, 4), 1.5), torch.zeros(2, dtype=torch.long), "not within [0, 1]"),
        (torch.full((2, 1, 4, 4), float("nan")), torch.zeros(2, dtype=torch.long), "NaN"),
        (torch.full((2, 1, 4, 4), float("-inf")), torch.zeros(2, dtype=torch.long), "not within"),
    ],
)
def test_construction_is_checked(images: torch.Tensor, labels: torch.Tensor, fragment: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Dataset(images=images, labels=labels, class_names=["x", "y"], name="bad")
    assert fragment in str(info.value)


def test_paths_length_and_class_names_checked() -> None:
    with pytest.raises(InvalidInputError, match="paths"):
        Dataset(torch.rand(2, 1, 2, 2), torch.zeros(2, dtype=torch.long), ["x"], "d", paths=["a"])
    with pytest.raises(InvalidInputError, match="duplicate"):
        Dataset(torch.rand(2, 1, 2, 2), torch.zeros(2, dtype=torch.long), ["x", "x"], "d")


def test_images_from_numpy() -> None:
    u8 = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = images_from_numpy(u8)
    assert out.shape == (1, 1, 2, 2) and out.dtype == torch.float32
    assert out.flatten().tolist() == pytest.approx([0, 1, 0.2, 0.4])
    nhwc = np.zeros((2, 3, 4, 3), dtype=np.uint16)
    nhwc[..., 1] = 65535
    out = images_from_numpy(nhwc, layout="NHWC")
    assert out.shape == (2, 3, 3, 4) and out[:, 1].eq(1).all() and out[:, 0].eq(0).all()
    floats = np.full((1, 1, 2, 2), 0.5)
    converted = images_from_numpy(floats, layout="NCHW")
    floats[...] = 0.9
    assert converted.eq(0.5).all()  # a copy, never a view of the caller's array
    with pytest.raises(InvalidInputError, match="NaN"):
        images_from_numpy(np.full((1, 2, 2), np.nan))
    with pytest.raises(InvalidInputError, match="span"):
        images_from_numpy(np.full((1, 2, 2), -0.1))
    with pytest.raises(InvalidInputError, match="dtype"):
        images_from_numpy(np.zeros((1, 2, 2), dtype=np.int64))
