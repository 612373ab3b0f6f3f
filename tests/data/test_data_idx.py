"""IDX reading, Fashion-MNIST discovery and loading, and the checksum-verified download (no network)."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import privis.data.idx as idx
from privis.data import FASHION_MNIST_CLASSES, fashion_mnist, find_fashion_mnist, load, read_idx
from privis.errors import DatasetError, ImageFileError

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """Encode ``array`` as IDX by hand (independently of the reader under test)."""
    big = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + big.tobytes()


def write_fake_fashion(folder: Path, n: int = 5, *, split: str = "test", gz: bool = True) -> np.ndarray:
    """Write a tiny but well-formed Fashion-MNIST split into ``folder``; returns its images."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images_name, labels_name = idx.FASHION_MNIST_FILES[split]
    for name, array in ((images_name, images), (labels_name, labels)):
        data = idx_bytes(array)
        if gz:
            (folder / name).write_bytes(gzip.compress(data))
        else:
            (folder / name.removesuffix(".gz")).write_bytes(data)
    return images


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $PRIVIS_DATA, no system folder, a private cache: Fashion-MNIST is nowhere until a test puts it."""
    monkeypatch.delenv("PRIVIS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(idx, "SYSTEM_DIRS", ())
    return tmp_path / "cache" / "privis" / "fashion-mnist"


# ------------------------------------------------------------------------------------------ read_idx


def test_read_idx_raw_and_gz_round_trip(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw, gz = tmp_path / "a-idx3-ubyte", tmp_path / "a-idx3-ubyte.gz"
    raw.write_bytes(idx_bytes(array))
    gz.write_bytes(gzip.compress(idx_bytes(array)))
    for path in (raw, gz):
        out = read_idx(path)
        assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
        np.testing.assert_array_equal(out, array)
    # gzip is recognised by content, not by name
    misnamed = tmp_path / "plain-name"
    misnamed.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(misnamed), array)


@pytest.mark.parametrize(
    ("code", "dtype"),
    [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)],
)
def test_read_idx_other_dtypes_big_endian(tmp_path: Path, code: int, dtype: type) -> None:
    array = np.array([[-3, 1, 2], [7, -100, 5]], dtype=dtype)
    path = tmp_path / "x.idx"
    path.write_bytes(idx_bytes(array, code))
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_one_dim_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.array([9, 0, 3], dtype=np.uint8)))
    np.testing.assert_array_equal(read_idx(path), [9, 0, 3])


def test_read_idx_truncated_names_file(tmp_path: Path) -> None:
    data = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(data[:-1])
    with pytest.raises(ImageFileError) as info:
        read_idx(path)
    assert info.value.path == path
    assert str(path) in str(info.value) and "truncated" in str(info.value)


def test_read_idx_truncated_gzip_names_file(tmp_path: Path) -> None:
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8)))[:-12])
    with pytest.raises(ImageFileError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "hdr"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">I", 5))
    with pytest.raises(ImageFileError, match="truncated"):
        read_idx(path)


@pytest.mark.parametrize(
    "head", [b"\x00\x01\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00", b"PK\x03\x04", b"\x00"]
)
def test_read_idx_bad_magic(tmp_path: Path, head: bytes) -> None:
    path = tmp_path / "bad"
    path.write_bytes(head + b"\x00" * 8)
    with pytest.raises(ImageFileError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_trailing_bytes_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)) + b"\x00")
    with pytest.raises(ImageFileError, match="unexpected bytes"):
        read_idx(path)
    with pytest.raises(DatasetError, match="no such"):
        read_idx(tmp_path / "absent")


# ------------------------------------------------------------------------------- real Fashion-MNIST


@pytest.fixture
def system_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if not SYSTEM_DIR.is_dir():
        pytest.skip(f"{SYSTEM_DIR} absent (apt-get install dataset-fashion-mnist)")
    monkeypatch.delenv("PRIVIS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_fashion_mnist_from_debian_package(system_only: None) -> None:
    found = find_fashion_mnist("train")
    assert found is not None and found[0].parent == SYSTEM_DIR

    train = fashion_mnist("train")
    assert len(train) == 60000 and train.shape == (1, 28, 28)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.long
    assert float(train.images.min()) == 0.0 and float(train.images.max()) == 1.0
    assert train.class_names == list(FASHION_MNIST_CLASSES) and train.num_classes == 10
    assert train.class_names[0] == "T-shirt/top" and train.class_names[9] == "Ankle boot"
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert train.name == "fashion-mnist:train" and train.paths is None and train.skipped == []
    # pixel values are k / 255 exactly
    assert torch.equal((train.images[:100] * 255).round() / 255, train.images[:100])


def test_fashion_mnist_test_split_and_spec_slice(system_only: None) -> None:
    test = fashion_mnist("test")
    assert len(test) == 10000 and test.shape == (1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    part = load("fashion-mnist:test[100:300]")
    assert len(part) == 200 and part.name == "fashion-mnist:test[100:300]"
    assert torch.equal(part.images, test.images[100:300])
    assert torch.equal(part.labels, test.labels[100:300])
    head = load("fashion-mnist:train[:2000]")
    assert len(head) == 2000


# ---------------------------------------------------------------------------------- search order


def test_explicit_root_wins_and_is_exclusive(isolated: Path, tmp_path: Path) -> None:
    root = tmp_path / "mine"
    images = write_fake_fashion(root, n=7)
    ds = fashion_mnist("test", root=root)
    assert len(ds) == 7
    np.testing.assert_array_equal((ds.images[:, 0] * 255).round().numpy().astype(np.uint8), images)
    assert ds.labels.tolist() == [0, 1, 2, 3, 4, 5, 6]

    # uncompressed files, and a fashion-mnist/ subfolder, are found too
    write_fake_fashion(tmp_path / "raw" / "fashion-mnist", n=3, gz=False)
    assert len(fashion_mnist("test", root=tmp_path / "raw")) == 3

    with pytest.raises(DatasetError) as info:
        fashion_mnist("train", root=root, fetch=lambda url, timeout: pytest.fail("must not download"))
    assert str(root) in str(info.value) and "apt-get install dataset-fashion-mnist" in str(info.value)


def test_privis_data_env(isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_fashion(tmp_path / "data" / "fashion-mnist", n=4)
    monkeypatch.setenv("PRIVIS_DATA", str(tmp_path / "data"))
    assert len(fashion_mnist("test")) == 4
    monkeypatch.setattr(idx, "SYSTEM_DIRS", (SYSTEM_DIR,))  # $PRIVIS_DATA comes before the system folder
    assert len(fashion_mnist("test")) == 4


def test_bad_label_file_is_rejected(isolated: Path, tmp_path: Path) -> None:
    root = tmp_path / "r"
    write_fake_fashion(root, n=3)
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.array([1, 2], np.uint8))))
    with pytest.raises(DatasetError, match="t10k-labels"):
        fashion_mnist("test", root=root)


# ------------------------------------------------------------------------------------------ download


def test_official_checksums() -> None:
    assert idx.FASHION_MNIST_MD5 == {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    assert idx.FASHION_MNIST_URLS[0] == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def _served_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int = 6) -> dict[str, bytes]:
    """Bytes a fake server hands out for the test split; their MD5s are made the expected ones."""
    staging = tmp_path / "staging"
    write_fake_fashion(staging, n=n)
    served = {p.name: p.read_bytes() for p in staging.iterdir()}
    for name, data in served.items():
        monkeypatch.setitem(idx.FASHION_MNIST_MD5, name, hashlib.md5(data).hexdigest())
    return served


def test_download_verified_into_cache(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = _served_split(tmp_path, monkeypatch)
    calls: list[tuple[str, float]] = []

    def fetch(url: str, timeout: float) -> bytes:
        calls.append((url, timeout))
        return served[url.rsplit("/", 1)[1]]

    ds = fashion_mnist("test", fetch=fetch)
    assert len(ds) == 6
    assert sorted(url for url, _ in calls) == sorted(idx.FASHION_MNIST_URLS[0] + n for n in served)
    assert all(timeout > 0 for _, timeout in calls)
    for name, data in served.items():
        assert (isolated / name).read_bytes() == data
    assert not [p for p in isolated.iterdir() if p.name.startswith(".")]  # no temp files left

    calls.clear()
    assert len(fashion_mnist("test", fetch=fetch)) == 6  # now found in the cache
    assert calls == []


def test_download_checksum_mismatch_refused(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = _served_split(tmp_path, monkeypatch)

    def fetch(url: str, timeout: float) -> bytes:
        return served[url.rsplit("/", 1)[1]] + b"tampered"

    with pytest.raises(DatasetError) as info:
        fashion_mnist("test", fetch=fetch)
    message = str(info.value)
    assert "MD5" in message and "refused" in message
    assert "apt-get install dataset-fashion-mnist" in message and "$PRIVIS_DATA" in message
    assert str(isolated) in message  # says where it looked
    assert not isolated.exists() or list(isolated.iterdir()) == []


def test_download_falls_back_to_next_mirror(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = _served_split(tmp_path, monkeypatch)
    tried: list[str] = []

    def fetch(url: str, timeout: float) -> bytes:
        tried.append(url)
        if url.startswith(idx.FASHION_MNIST_URLS[0]):
            raise OSError("connection refused")
        return served[url.rsplit("/", 1)[1]]

    dest = idx.download_fashion_mnist(tmp_path / "dl", splits=("test",), fetch=fetch)
    assert sorted(p.name for p in dest.iterdir()) == sorted(served)
    assert len(tried) == 4 and any(u.startswith(idx.FASHION_MNIST_URLS[1]) for u in tried)


def test_download_failure_everywhere(isolated: Path) -> None:
    def fetch(url: str, timeout: float) -> bytes:
        raise TimeoutError("timed out")

    with pytest.raises(DatasetError) as info:
        fashion_mnist("train", fetch=fetch)
    assert "timed out" in str(info.value) and "apt-get install dataset-fashion-mnist" in str(info.value)
    with pytest.raises(DatasetError, match="not found"):
        fashion_mnist("train", download=False)
