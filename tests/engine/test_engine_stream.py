"""Streaming sources and the engine's memory bound: items are enumerated lazily and read just ahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from privis import data as pdata
from privis.data.stream import ArraySource, FolderSource, NpzSource, decode_item, open_source
from privis.engine import protect
from privis.engine.local import PREFETCH
from privis.errors import DatasetError, ImageFileError
from privis.methods.baselines import GaussianNoise


def make_folder(root: Path, n: int, *, classes: int = 2, size: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / f"c{i % classes}" / ("deep" if i % 5 == 0 else "")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(d / f"im{i:05d}.png")
    return root


def test_folder_source_matches_load_folder(tmp_path):
    root = make_folder(tmp_path / "in", 40)
    source = FolderSource(root)
    items = list(source.items())
    loaded = pdata.load_folder(root)
    assert source.class_names == loaded.class_names
    assert sorted(it.id for it in items) == sorted(loaded.paths)
    by_path = dict(zip(loaded.paths, range(len(loaded)), strict=True))
    for it in items:
        k = by_path[it.id]
        assert it.label == int(loaded.labels[k])
        assert np.array_equal(decode_item(it), loaded.images[k].numpy())
    assert [it.position for it in items] == list(range(40))


def test_folder_source_is_lazy_and_shards_partition(tmp_path):
    root = make_folder(tmp_path / "in", 30)
    source = FolderSource(root)
    gen = source.items()
    first = next(gen)  # nothing decoded, only the first listing walked
    assert first.array is None and first.file is not None
    shards = [list(source.items(k, 3)) for k in range(3)]
    ids = [it.id for s in shards for it in s]
    assert sorted(ids) == sorted(it.id for it in source.items())
    assert len(ids) == len(set(ids)) == 30


def test_folder_source_flags_output_name_collisions(tmp_path):
    root = tmp_path / "in" / "a"
    root.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "x.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "x.bmp")
    items = list(FolderSource(tmp_path / "in").items())
    assert [it.error is None for it in items] == [False, True] or [it.error is None for it in items] == [True, False]
    bad = next(it for it in items if it.error)
    with pytest.raises(ImageFileError, match="collides"):
        decode_item(bad)


def test_npz_source_streams_the_same_pixels(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (37, 5, 6, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 37)
    path = tmp_path / "x.npz"
    np.savez_compressed(path, images=images, labels=labels)
    source = NpzSource(path, block=8)
    loaded = pdata.load_npz(path)
    items = list(source.items())
    assert len(items) == 37 and source.count() == 37
    got = np.stack([decode_item(it) for it in items])
    assert np.array_equal(got, loaded.images.numpy())
    assert [it.label for it in items] == loaded.labels.tolist()


def test_npz_source_refuses_missing_images(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, labels=np.zeros(3))
    with pytest.raises(DatasetError, match="images"):
        NpzSource(path)


def test_builtin_ids_are_stable_under_slicing():
    whole = list(open_source("digits:train[0:20]").items())
    part = list(open_source("digits:train[10:20]").items())
    assert [it.id for it in part] == [it.id for it in whole[10:]]
    assert isinstance(open_source("digits:train[0:20]"), ArraySource)


class _CountingSource(FolderSource):
    """A folder source that counts how many items were handed out."""

    yielded = 0

    def items(self, shard: int = 0, num_shards: int = 1):
        for item in super().items(shard, num_shards):
            type(self).yielded += 1
            yield item


class _WatchingNoise(GaussianNoise):
    """Records, at each batch, how far enumeration ran ahead of the items protected so far."""

    def __init__(self, sigma: float = 0.1, random_state: int | None = None) -> None:
        super().__init__(sigma=sigma, random_state=random_state)

    def transform(self, images, labels=None, *, ids=None):
        seen = getattr(self, "_seen", 0) + images.shape[0]
        self._seen = seen
        self._ahead = max(getattr(self, "_ahead", 0), _CountingSource.yielded - seen)
        return super().transform(images, labels, ids=ids)


def test_memory_is_bounded_by_batches_not_dataset(tmp_path):
    root = make_folder(tmp_path / "in", 400)
    batch = 16
    _CountingSource.yielded = 0
    protector = _WatchingNoise(random_state=0)
    summary = protect(protector, _CountingSource(root), tmp_path / "out", batch_size=batch, workers=2)
    assert summary.done == 400
    # read-ahead never exceeds the prefetched batches plus the one being assembled (the run's shape is
    # decided from file headers, without handing out items; the 64 allowed here are a margin)
    assert protector._ahead <= (PREFETCH + 1) * batch + 64
    assert protector._ahead < 400 // 2


def test_torch_tensor_dataset_runs_through_engine(tmp_path, digits_train):
    ds = digits_train.subset(slice(0, 50))
    summary = protect(GaussianNoise(random_state=1), ds, tmp_path / "out", batch_size=16)
    back = pdata.load(f"folder:{tmp_path / 'out'}")
    assert summary.done == 50 and len(back) == 50
    assert torch.equal(back.labels.sort().values, ds.labels.sort().values)
