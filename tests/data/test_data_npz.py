"""NPZ archives: lossless round trip, accepted layouts and dtypes, and clear errors on bad content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from privis.data import Dataset, load, load_npz, write_npz
from privis.errors import DatasetError


def test_round_trip_is_exact(tmp_path: Path) -> None:
    ds = Dataset(
        images=torch.rand(5, 3, 4, 6),
        labels=torch.tensor([0, 2, 1, 2, 0]),
        class_names=["T-shirt/top", "b", "c"],
        name="x",
        paths=["a/1.jpg", "b/2.jpg", "c/3.jpg", "b/4.jpg", "a/5.jpg"],
    )
    path = write_npz(ds, tmp_path / "d.npz")
    assert path == tmp_path / "d.npz"
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]  # no temp file left behind
    back = load_npz(path)
    assert torch.equal(back.images, ds.images) and back.images.dtype == torch.float32
    assert torch.equal(back.labels, ds.labels) and back.labels.dtype == torch.long
    assert back.class_names == ds.class_names and back.paths == ds.paths
    assert back.name == f"npz:{path}"
    assert load(f"npz:{path}").name == f"npz:{path}"


@pytest.mark.parametrize(
    ("images", "shape"),
    [
        (np.zeros((4, 5, 6), dtype=np.uint8), (1, 5, 6)),
        (np.zeros((4, 5, 6, 3), dtype=np.uint8), (3, 5, 6)),
        (np.zeros((4, 3, 5, 6), dtype=np.float32), (3, 5, 6)),
        (np.zeros((4, 1, 5, 6), dtype=np.float64), (1, 5, 6)),
        (np.zeros((4, 5, 6, 1), dtype=np.uint16), (1, 5, 6)),
    ],
)
def test_layouts_and_defaults(tmp_path: Path, images: np.ndarray, shape: tuple[int, int, int]) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, images=images)
    ds = load_npz(path)
    assert len(ds) == 4 and ds.shape == shape
    assert ds.labels.tolist() == [0, 0, 0, 0] and ds.class_names == ["0"] and ds.paths is None


def test_uint8_scaling_nhwc_and_labels(tmp_path: Path) -> None:
    images = np.zeros((2, 2, 3, 3), dtype=np.uint8)
    images[0, 0, 0] = [255, 51, 0]
    path = tmp_path / "x.npz"
    np.savez(path, images=images, labels=np.array([3, 1], dtype=np.int32))
    ds = load_npz(path)
    assert ds.images[0, :, 0, 0].tolist() == pytest.approx([1.0, 0.2, 0.0])
    assert ds.labels.tolist() == [3, 1] and ds.class_names == ["0", "1", "2", "3"]


def test_ambiguous_layout_needs_key(tmp_path: Path) -> None:
    images = np.zeros((2, 3, 5, 3), dtype=np.uint8)
    images[:, 1] = 255  # NCHW: channel 1 is white
    np.savez(tmp_path / "a.npz", images=images)
    with pytest.raises(DatasetError, match="layout"):
        load_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", images=images, layout=np.array("NCHW"))
    ds = load_npz(tmp_path / "b.npz")
    assert ds.shape == (3, 5, 3) and ds.images[:, 1].eq(1).all()


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"images": np.full((2, 4, 4), np.nan, dtype=np.float32)}, "NaN"),
        ({"images": np.full((2, 4, 4), 1.5)}, "[0, 1]"),
        ({"images": np.full((2, 4, 4), -0.25)}, "[0, 1]"),
        ({"images": np.zeros((2, 4, 4)), "labels": np.zeros(3, dtype=np.int64)}, "do not match 2 images"),
        ({"images": np.zeros((2, 4, 4)), "labels": np.zeros((2, 1), dtype=np.int64)}, "do not match"),
        ({"images": np.zeros((2, 4, 4)), "labels": np.array([0.0, 1.0])}, "integers"),
        ({"images": np.zeros((2, 4, 4)), "labels": np.array([0, -1])}, "negative"),
        ({"images": np.zeros((2, 4, 4)), "labels": np.array([0, 2]), "class_names": np.array(["a", "b"])},
         "only 2 class names"),
        ({"images": np.zeros((2, 4, 4, 2))}, "no channel axis"),
        ({"images": np.zeros((2, 4))}, "shape"),
        ({"images": np.zeros((0, 4, 4))}, "empty"),
        ({"images": np.zeros((2, 4, 4), dtype=np.int64)}, "dtype"),
        ({"pixels": np.zeros((2, 4, 4))}, "no 'images'"),
    ],
)
def test_bad_archives(tmp_path: Path, arrays: dict[str, np.ndarray], fragment: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError) as info:
        load_npz(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "t.npz").write_text("plain text")
    with pytest.raises(DatasetError, match="not a readable"):
        load_npz(tmp_path / "t.npz")
    np.save(tmp_path / "a.npy", np.zeros((2, 4, 4)))
    with pytest.raises(DatasetError, match="single .npy"):
        load_npz(tmp_path / "a.npy")
    with pytest.raises(DatasetError, match="no such"):
        load_npz(tmp_path / "absent.npz")


def test_pickled_objects_are_never_loaded(tmp_path: Path) -> None:
    path = tmp_path / "p.npz"
    np.savez(path, images=np.zeros((1, 2, 2)), class_names=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(DatasetError):
        load_npz(path)
