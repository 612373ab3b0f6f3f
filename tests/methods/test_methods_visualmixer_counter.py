"""VisualMixer's counter scheme: the torch path (any device) against the numpy path, the hash, inversion, batching,
and the table scheme's keyed outputs staying restorable."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from privis.engine import protect
from privis.engine.restore import unprotect_folder
from privis.methods.visualmixer import VisualMixer, content_ids, generate_key, seed_secret, sort_within_windows
from privis.methods.visualmixer import counter as ctr
from privis.methods.visualmixer.partition import _geometry, _plan
from privis.methods.visualmixer.permute import _shuffle_regions_torch, shuffle_regions

# (shape, levels): table geometry, edges at every level, a single uniform window larger than 8 (remainders of
# 8 and more), a non-power-of-two window
GEOMETRIES = [((3, 3, 32, 32), (4, 2)), ((3, 1, 30, 37), (8, 4, 2)), ((2, 3, 35, 26), (17,)), ((2, 3, 23, 19), (7,))]


def _smooth(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Images with smooth and busy parts, so that every level of the partition holds final regions."""
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.avg_pool2d(x, 3, 1, 1)


def _torch_path(x: torch.Tensor, levels: tuple[int, ...], **kwargs) -> torch.Tensor:
    args = {"statistic": "vfe", "low_vfe_window": "current", "channel_shuffle": True, "secret": None, "ids": None,
            "entropy": None, "inverse": False, "stats": None}
    return _shuffle_regions_torch(x, levels, **{**args, **kwargs})


def _reference_key(words: list[int], counter: int) -> int:
    """The counter hash in Python integers (no overflow anywhere)."""
    h = counter
    for k in words:
        h ^= k
        for shift, mul in ((16, 0x7FEB352D), (15, 0x31848BAB)):
            h = ((h ^ (h >> shift)) * mul) & 0xFFFFFFFF
        h ^= h >> 16
    return h


def test_counter_keys_equal_the_python_reference_and_span_32_bits() -> None:
    words = torch.tensor([[0xFFFFFFFF, 0x80000000], [1, 2]], dtype=torch.int64)
    keys = ctr.counter_keys(words, 2, 50)
    assert keys.shape == (2, 2, 50) and keys.min() >= 0 and keys.max() < 2**32
    for i, p, j in ((0, 0, 0), (0, 1, 49), (1, 1, 3)):
        assert int(keys[i, p, j]) == _reference_key(words[i].tolist(), p * 50 + j)
    assert int(keys.max()) >= 2**31  # the top bit is used: no sign trouble
    assert np.array_equal(ctr.counter_keys_numpy(words.numpy(), 2, 50), keys.numpy())  # the CPU path's keys
    assert len(set(keys[0].reshape(-1).tolist())) == 100  # a bijection of the counter: no ties in an image


@pytest.mark.parametrize("statistic", ["vfe", "variance"])
@pytest.mark.parametrize("low", ["current", "half"])
def test_torch_partition_is_the_numpy_partition(statistic, low) -> None:
    for seed, (shape, levels) in enumerate(GEOMETRIES):
        x = _smooth(shape, seed)
        geo = _geometry(shape[2], shape[3], levels)
        plan = _plan(x.numpy(), geo, statistic, low)
        finals, counts, vfe = ctr._plan(x, geo, ctr._on_device(geo, x.device), statistic, low)
        for a, b in zip(plan.finals, finals, strict=True):
            assert np.array_equal(a, b.numpy())
        assert np.array_equal(plan.counts, counts.numpy())
        np.testing.assert_allclose(vfe.numpy(), plan.vfe, rtol=1e-6)


def test_content_ids_on_the_device_are_the_numpy_ones(device) -> None:
    x = _smooth((2, 3, 70, 64), 4)
    assert ctr.content_ids(x.to(device)) == content_ids(x.numpy())


@pytest.mark.parametrize("channel_shuffle", [True, False])
def test_torch_path_equals_the_numpy_path_and_keeps_every_window(device, channel_shuffle) -> None:
    for seed, (shape, levels) in enumerate(GEOMETRIES):
        x = _smooth(shape, seed)
        ids = [f"i{k}" for k in range(shape[0])]
        for kwargs in ({"secret": seed_secret(3), "ids": ids}, {"entropy": np.random.SeedSequence(5)}):
            cpu = shuffle_regions(x, levels, permutations="counter", channel_shuffle=channel_shuffle, **kwargs)
            on_device = _torch_path(x.to(device), levels, channel_shuffle=channel_shuffle, **kwargs)
            assert on_device.device == x.to(device).device
            assert torch.equal(on_device.cpu(), cpu)  # one scheme, bit for bit, whatever the device
            assert not torch.equal(cpu, x)
            # every region lies inside one cell of the coarsest window: those cells keep their multisets
            assert torch.equal(sort_within_windows(cpu, levels[0]), sort_within_windows(x, levels[0]))
            if not channel_shuffle:  # one permutation shared by the channels: equal channels stay equal
                same = x[:, :1].expand_as(x).contiguous()
                y = _torch_path(same.to(device), levels, channel_shuffle=False, **kwargs).cpu()
                assert torch.equal(y, y[:, :1].expand_as(y)) and not torch.equal(y, same)


def test_counter_scheme_is_per_image_and_inverts_exactly(device) -> None:
    shape, levels = (5, 3, 30, 37), (8, 4, 2)
    x = torch.round(_smooth(shape, 9) * 255) / 255
    ids = [f"img-{k}" for k in range(5)]
    secret = seed_secret(21)
    full = _torch_path(x.to(device), levels, statistic="variance", secret=secret, ids=ids).cpu()
    assert torch.equal(full, _torch_path(x, levels, statistic="variance", secret=secret, ids=ids))  # same twice
    order = [3, 0, 4, 1, 2]
    assert torch.equal(_torch_path(x[order], levels, statistic="variance", secret=secret, ids=[ids[i] for i in order]),
                       full[order])
    assert torch.equal(_torch_path(x[1:3], levels, statistic="variance", secret=secret, ids=ids[1:3]), full[1:3])
    back = _torch_path(full.to(device), levels, statistic="variance", secret=secret, ids=ids, inverse=True)
    assert torch.equal(back.cpu(), x)
    assert torch.equal(shuffle_regions(full, levels, statistic="variance", secret=secret, ids=ids, inverse=True,
                                       permutations="counter"), x)
    other = _torch_path(x, levels, statistic="variance", secret=seed_secret(22), ids=ids)
    assert not torch.equal(other, full)


@pytest.mark.filterwarnings("ignore:keyed VisualMixer stores:UserWarning")
def test_protector_schemes_auto_table_counter(tmp_path) -> None:
    x = _smooth((4, 3, 28, 28), 2)
    table = VisualMixer(random_state=5, permutations="table").fit(x).transform(x)
    assert torch.equal(VisualMixer(random_state=5).fit(x).transform(x), table)  # auto on the CPU: the table scheme
    counter_vm = VisualMixer(random_state=5, permutations="counter").fit(x)
    counted = counter_vm.transform(x)
    assert not torch.equal(counted, table)
    assert counter_vm.diagnostics()["regions_mean"] > 0
    key = generate_key(tmp_path / "k")
    keyed = VisualMixer(key_file=str(key), permutations="counter").fit(x)
    y = keyed.transform(x)
    assert torch.equal(keyed.inverse_transform(y), torch.round(x * 255) / 255)
    # keyed "auto" is the counter scheme on every device: the output does not depend on where it was made
    assert torch.equal(VisualMixer(key_file=str(key)).fit(x).transform(x), y)
    assert keyed.public_record()["restore_params"] == {"permutations": "counter"}
    table_keyed = VisualMixer(key_file=str(key), permutations="table").fit(x)
    assert table_keyed.public_record()["restore_params"] == {"permutations": "table"}
    assert not torch.equal(table_keyed.transform(x), y)


# keyed outputs of the table scheme as privis made them before the counter scheme existed (sha256 of the float32
# output bytes): the table scheme must keep giving them, or those outputs could no longer be restored
_TABLE_GOLDEN = {(): "9116178f618c587c41e11c245d7e20f1dd6a20154e04a42ad782449605240904",
                 (("window", 8),): "2b9191d4b08e5d252920d603e2c953c69c59bd25dd4557669a2903183f78ea80"}


def test_table_scheme_outputs_of_earlier_versions_still_restore(tmp_path) -> None:
    key = tmp_path / "k"
    key.write_bytes(bytes(range(32)))
    x = torch.from_numpy(np.random.default_rng(19).integers(0, 256, (3, 3, 21, 18)).astype(np.float32) / 255)
    for params, digest in _TABLE_GOLDEN.items():
        vm = VisualMixer(key_file=str(key), permutations="table", **dict(params)).fit(x)
        y = vm.transform(x, ids=["a", "b", "c"])
        assert hashlib.sha256(y.numpy().tobytes()).hexdigest() == digest
        assert torch.equal(vm.inverse_transform(y, ids=["a", "b", "c"]), x)


def test_engine_records_the_scheme_and_restores_either(tmp_path) -> None:
    rng = np.random.default_rng(0)
    root = tmp_path / "in"
    for i in range(6):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / f"c{i % 2}" / f"{i}.png")
    key = generate_key(tmp_path / "k.key")
    # (scheme asked for, what the manifest says after editing it as an earlier version wrote it)
    cases = {"counter": None, "auto": None, "table": None,
             "table-recorded-as-auto": "auto", "table-without-parameter": "absent"}
    for case, legacy in cases.items():
        scheme = "table" if legacy else case
        out = tmp_path / case
        protect(VisualMixer(key_file=str(key), permutations=scheme), f"folder:{root}", out, batch_size=4)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["extra"]["params"]["permutations"] == scheme
        made_with = "counter" if scheme == "auto" else scheme
        assert manifest["extra"]["public"]["restore_params"] == {"permutations": made_with}
        if legacy:  # a manifest of an earlier version: no restore_params, "auto" or no parameter at all
            del manifest["extra"]["public"]["restore_params"]
            if legacy == "absent":
                del manifest["extra"]["params"]["permutations"]
            else:
                manifest["extra"]["params"]["permutations"] = "auto"
            (out / "manifest.json").write_text(json.dumps(manifest))
        assert unprotect_folder(out, tmp_path / f"restored-{case}", key) == 6
        for path in root.rglob("*.png"):
            restored = tmp_path / f"restored-{case}" / path.relative_to(root)
            assert np.array_equal(np.asarray(Image.open(restored)), np.asarray(Image.open(path)))


def test_counter_permutations_are_uniform_and_independent_across_channels() -> None:
    from scipy.stats import chisquare

    n, side = 8, 64
    x = torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(3))  # distinct values
    y = shuffle_regions(x, (2,), secret=seed_secret(1), permutations="counter")  # every 2x2 cell is a region

    def cells(a: torch.Tensor) -> torch.Tensor:  # (n, C, cells, 4), raster order inside each cell
        return a.reshape(n, 3, side // 2, 2, side // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, 3, -1, 4)

    src = (cells(y)[..., :, None] == cells(x)[..., None, :]).int().argmax(-1)  # source of every output slot
    code = (src * torch.tensor([64, 16, 4, 1])).sum(-1).numpy()  # one of the 24 permutations of a cell
    for ch in range(3):
        _, counts = np.unique(code[:, ch], return_counts=True)
        assert counts.size == 24 and chisquare(counts).pvalue > 1e-4
    _, rank = np.unique(code, return_inverse=True)
    rank = rank.reshape(code.shape)
    _, pairs = np.unique(rank[:, 0] * 24 + rank[:, 1], return_counts=True)  # two channels: independent
    assert pairs.size == 576 and chisquare(pairs).pvalue > 1e-4
