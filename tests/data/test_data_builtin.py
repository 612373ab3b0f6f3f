"""Built-in offline datasets (digits, lfw-subset, astronaut), the spec loader and the dataset listing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from privis.data import astronaut, available, digits, lfw_subset, load
from privis.data.builtin import split_indices
from privis.errors import DatasetError


def test_digits_splits_shapes_and_values() -> None:
    sizes = {}
    for split in ("train", "test", "all"):
        ds = digits(split)
        sizes[split] = len(ds)
        assert ds.shape == (1, 8, 8) and ds.images.dtype == torch.float32
        assert ds.class_names == [str(d) for d in range(10)]
        assert float(ds.images.min()) == 0.0 and float(ds.images.max()) == 1.0
        levels = ds.images * 16
        assert torch.equal(levels, levels.round())  # grey levels 0..16 divided by 16
        assert ds.name == f"digits:{split}"
    assert sizes == {"train": 1347, "test": 450, "all": 1797}


def test_digits_split_is_deterministic_disjoint_and_stratified() -> None:
    assert torch.equal(digits("train").images, digits("train").images)
    assert torch.equal(digits("test").labels, digits("test").labels)
    labels = digits("all").labels.numpy()
    train, test = split_indices(labels, "train", source="t"), split_indices(labels, "test", source="t")
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    share = np.bincount(labels[test], minlength=10) / np.bincount(labels, minlength=10)
    assert np.all(np.abs(share - 0.25) < 0.02)
    everything = digits("all")
    assert torch.equal(everything.images[torch.from_numpy(test)], digits("test").images)


def test_lfw_subset() -> None:
    ds = lfw_subset()
    assert len(ds) == 200 and ds.shape == (1, 25, 25)
    assert ds.class_names == ["face", "non-face"]
    assert ds.labels[:100].eq(0).all() and ds.labels[100:].eq(1).all()
    assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) <= 1.0
    train, test = lfw_subset("train"), lfw_subset("test")
    assert (len(train), len(test)) == (150, 50)
    assert torch.bincount(test.labels).tolist() == [25, 25]


def test_astronaut() -> None:
    ds = astronaut()
    assert len(ds) == 1 and ds.shape == (3, 512, 512)
    assert ds.labels.tolist() == [0] and ds.class_names == ["astronaut"]
    from skimage import data as skdata

    expected = torch.from_numpy(skdata.astronaut()).permute(2, 0, 1).float() / 255
    assert torch.equal(ds.images[0], expected)


def test_load_dispatch_and_slices() -> None:
    ds = load("digits")
    assert len(ds) == 1347 and ds.name == "digits"
    head = load(" digits:train[:10] ")
    assert head.name == "digits:train[:10]" and len(head) == 10
    assert torch.equal(head.images, ds.images[:10])
    assert len(load("digits:test[440:]")) == 10
    with pytest.raises(DatasetError, match=r"'digits:test\[:451\]'.*runs past the end.*holds 450 items"):
        load("digits:test[:451]")  # never truncated silently to the split's 450 items
    assert len(load("lfw-subset:test")) == 50
    assert load("astronaut").shape == (3, 512, 512)


def test_load_errors() -> None:
    with pytest.raises(DatasetError, match="runs past the end"):
        load("digits:test[5000:6000]")
    with pytest.raises(DatasetError, match="unknown dataset"):
        load("cifar10")
    with pytest.raises(DatasetError, match="does not exist"):
        load("folder:/nonexistent/privis/folder")
    with pytest.raises(DatasetError, match="no such"):
        load("npz:/nonexistent/privis.npz")
    with pytest.raises(DatasetError, match="no split"):
        digits("validation")


def test_available_lists_every_source() -> None:
    listing = available()
    assert {"fashion-mnist", "digits", "lfw-subset", "astronaut", "folder:PATH", "npz:PATH"} <= set(listing)
    assert all(isinstance(v, str) and v and "\n" not in v for v in listing.values())
    assert "found" in listing["fashion-mnist"]  # says whether it is present locally
