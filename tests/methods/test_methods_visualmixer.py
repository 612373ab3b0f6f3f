"""VisualMixer (Algorithm 1): partition, per-region shuffles, keyed inversion, modes and errors."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from privis import methods, metrics
from privis.errors import InvalidInputError
from privis.methods.base import NotFittedError
from privis.methods.visualmixer import (
    VisualMixer,
    WindowSort,
    generate_key,
    sort_within_windows,
    window_levels,
)
from privis.methods.visualmixer.partition import _geometry, _plan
from privis.metrics.regions import grid_cuts as _cuts


def _coded(n: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Images whose values are distinct inside every (image, channel) plane, in a random arrangement."""
    gen = torch.Generator().manual_seed(seed)
    keys = torch.rand(n, c, h * w, generator=gen).argsort(-1).float()
    return ((keys + 1) / (h * w + 1)).reshape(n, c, h, w)


def _region_labels(x: np.ndarray, mixer: VisualMixer) -> np.ndarray:
    """``(n, H, W)`` label of the final region of every pixel, from the partition the protector used."""
    n, _, h, w = x.shape
    geo = _geometry(h, w, mixer._levels(h, w))
    plan = _plan(x, geo, mixer.statistic_, mixer.low_vfe_window)
    labels = np.full((n, h, w), -1, dtype=np.int64)
    base = 0
    for li, finals in enumerate(plan.finals):
        sh, sw = _cuts(h, geo.levels[li])[:-1], _cuts(w, geo.levels[li])[:-1]  # first row/col of each region
        row_of = np.searchsorted(sh, np.arange(h), side="right") - 1
        col_of = np.searchsorted(sw, np.arange(w), side="right") - 1
        region = row_of[:, None] * len(sw) + col_of[None, :]
        final_px = finals[:, row_of][:, :, col_of]
        assert not (final_px & (labels >= 0)).any(), "a pixel lies in two final regions"
        labels = np.where(final_px, base + region[None], labels)
        base += len(sh) * len(sw)
    assert (labels >= 0).all(), "a pixel lies in no final region"
    return labels


def _q8(x: torch.Tensor) -> torch.Tensor:
    """The 8-bit values the keyed mode works on and restores: ``round(255 x) / 255``."""
    return torch.round(x * 255) / 255


def _assert_region_multisets(x: torch.Tensor, y: torch.Tensor, mixer: VisualMixer) -> None:
    """Every final region keeps its multiset of values per channel (values may repeat)."""
    labels = torch.from_numpy(_region_labels(x.numpy(), mixer))
    n, c = x.shape[:2]
    for i in range(n):
        order = torch.argsort(labels[i].reshape(-1), stable=True)
        key = labels[i].reshape(-1)[order].double() * 4
        for ch in range(c):
            a, b = x[i, ch].reshape(-1)[order], y[i, ch].reshape(-1)[order]
            assert torch.equal(torch.sort(key + a.double()).values, torch.sort(key + b.double()).values)


def _assert_moves_within_regions(x: torch.Tensor, y: torch.Tensor, mixer: VisualMixer) -> None:
    """Every output value comes from the same channel and the same final region (values are unique)."""
    labels = _region_labels(x.numpy(), mixer)
    n, c, h, w = x.shape
    for i in range(n):
        for ch in range(c):
            src = {float(v): p for p, v in enumerate(x[i, ch].flatten().tolist())}
            flat_labels = labels[i].reshape(-1)
            for p, v in enumerate(y[i, ch].flatten().tolist()):
                assert flat_labels[src[v]] == flat_labels[p]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 30, 22), (3, 16, 16), (1, 8, 8)])
def test_shuffle_keeps_each_region_multiset_per_channel(shape: tuple[int, int, int]) -> None:
    x = _coded(3, *shape)
    vm = VisualMixer(random_state=0).fit(x)
    y = vm.transform(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    _assert_moves_within_regions(x, y, vm)
    assert not torch.equal(x, y)


def test_uniform_window_and_half_rule_keep_regions() -> None:
    x = _coded(2, 3, 20, 28, seed=1)
    for params in ({"window": 7}, {"window": 4}, {"low_vfe_window": "half"}, {"channel_shuffle": False}):
        vm = VisualMixer(random_state=3, **params).fit(x)
        _assert_moves_within_regions(x, vm.transform(x), vm)


def test_half_rule_never_shuffles_at_the_coarsest_window(digits_train) -> None:
    x = digits_train.images[:50]
    vm = VisualMixer(random_state=0, low_vfe_window="half", max_window_fraction=None).fit(x)
    geo = _geometry(8, 8, vm.levels_)
    plan = _plan(x.numpy(), geo, "vfe", "half")
    assert len(vm.levels_) > 1 and not plan.finals[0].any()


def test_levels_follow_algorithm1() -> None:
    # WS_u = 9 -> coarsest window 8; WS_l = 3 -> smallest window 2 (line 12 floors to a power of two)
    assert window_levels(28, 28, 3, 9) == (8, 4, 2)
    assert window_levels(224, 224, 9, 9) == (8,)
    assert window_levels(6, 40, 2, 64) == (4, 2)  # no window larger than the image
    assert window_levels(8, 8, 3, 7, max_side_fraction=0.25) == (2,)
    assert window_levels(28, 28, 3, 9, max_side_fraction=0.25) == (4, 2)
    assert window_levels(4, 4, 3, 7, max_side_fraction=0.25) == (2,)  # never below the smallest window
    with pytest.raises(InvalidInputError, match="smaller than the smallest"):
        window_levels(3, 28, 4, 9)


def test_image_smaller_than_smallest_window_is_an_error() -> None:
    vm = VisualMixer(ws_lower=4, random_state=0).fit(torch.rand(2, 1, 16, 16))
    with pytest.raises(InvalidInputError, match="smaller than the smallest VisualMixer window"):
        vm.transform(torch.rand(2, 1, 3, 16))


def test_vfe_increases_and_diagnostics(digits_test) -> None:
    x = digits_test.images
    vfe_x = float(metrics.vfe(x).mean())
    uncapped = VisualMixer(random_state=0, max_window_fraction=None).fit(x)  # windows 4 and 2
    assert float(metrics.vfe(uncapped.transform(x)).mean()) > 1.5 * vfe_x
    vm = VisualMixer(random_state=0).fit(x)  # capped at a quarter of 8 pixels: 2x2 windows only
    y = vm.transform(x)
    assert float(metrics.vfe(y).mean()) > 1.3 * vfe_x
    d = vm.diagnostics()
    assert d["vfe_after_mean"] > d["vfe_before_mean"] > 0
    assert d["keyspace_bits_mean"] >= d["keyspace_bits_paper_mean"] > 0
    assert d["regions_mean"] >= 1
    shares = [v for k, v in d.items() if k.startswith("pixel_share_window_")]
    assert sum(shares) == pytest.approx(1.0)


def test_bounds_are_fitted() -> None:
    vm = VisualMixer().fit(torch.rand(4, 1, 28, 28))
    assert vm.ws_upper_ == 7 and vm.ws_lower_ == 3 and vm.levels_ == (4, 2)
    assert VisualMixer(bias_d=3.5, max_window_fraction=None).fit(torch.rand(1, 1, 28, 28)).levels_ == (8, 4, 2)
    assert VisualMixer(bias_d=3.5).fit(torch.rand(1, 1, 28, 28)).levels_ == (4, 2)  # 9 capped at 28 // 4
    assert VisualMixer(bias_d=3.5).fit(torch.rand(1, 1, 64, 64)).levels_ == (8, 4, 2)
    assert 0 < vm.alpha0_ < 1
    assert VisualMixer(ws_upper=4, ws_lower=2).fit(torch.rand(1, 1, 28, 28)).levels_ == (4, 2)


def test_window_cap_follows_the_image_side() -> None:
    """The derived WS_u is capped at a quarter of the shorter side, never below the smallest window."""
    assert VisualMixer().fit(torch.rand(1, 1, 8, 8)).levels_ == (2,)
    assert VisualMixer(max_window_fraction=None).fit(torch.rand(1, 1, 8, 8)).levels_ == (4, 2)
    assert VisualMixer().fit(torch.rand(1, 1, 4, 5)).levels_ == (2,)  # 0.25 * 4 = 1 -> the 2x2 floor
    assert VisualMixer().fit(torch.rand(1, 1, 32, 20)).levels_ == (4, 2)  # 20 // 4 = 5 -> 4
    assert VisualMixer(ws_upper=7).fit(torch.rand(1, 1, 8, 8)).levels_ == (4, 2)  # explicit: not capped
    assert VisualMixer(max_window_fraction=0.5, bias_d=3.5).fit(torch.rand(1, 1, 28, 28)).levels_ == (8, 4, 2)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(InvalidInputError, match="max_window_fraction"):
            VisualMixer(max_window_fraction=bad).fit(torch.rand(1, 1, 8, 8))


def test_entropy_mode_differs_between_runs_seeded_mode_is_per_item() -> None:
    x = _coded(6, 3, 16, 16)
    free = VisualMixer().fit(x)
    assert not torch.equal(free.transform(x), free.transform(x))
    seeded = VisualMixer(random_state=7).fit(x)
    full = seeded.transform(x)
    assert torch.equal(full, seeded.transform(x))
    assert torch.equal(full[3:], seeded.transform(x[3:]))  # independent of the batch an item is in
    by_id = seeded.transform(x, ids=list(range(6)))
    assert torch.equal(by_id[2:4], seeded.transform(x[2:4], ids=[2, 3]))
    assert not torch.equal(by_id, full)
    assert not torch.equal(VisualMixer(random_state=8).fit(x).transform(x), full)


def test_keyed_inverse_is_bit_exact(tmp_path, digits_test) -> None:
    key = generate_key(tmp_path / "vm.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and key.stat().st_size == 32
    with pytest.raises(InvalidInputError, match="already exists"):
        generate_key(key)
    for x in (digits_test.images, _coded(5, 3, 30, 22)):  # values finer than 8 bits: restored at 8 bits
        vm = VisualMixer(key_file=str(key)).fit(x)
        with pytest.warns(UserWarning, match="8 bits"):
            y = vm.transform(x)
        assert torch.equal(y, _q8(y))  # an 8-bit PNG stores the output exactly
        assert not torch.equal(_q8(x), y)
        assert torch.equal(vm.inverse_transform(y), _q8(x))
        assert torch.equal(vm.transform(_q8(x)), y)  # the keyed mode shuffles exactly what is stored
        ids = [f"item-{i}" for i in range(x.shape[0])]
        y2 = vm.transform(x, ids=ids)
        assert torch.equal(vm.inverse_transform(y2, ids=ids), _q8(x))
        assert not torch.equal(vm.inverse_transform(y2), _q8(x))  # the wrong ids do not invert
    other = VisualMixer(key_file=str(generate_key(tmp_path / "other.key"))).fit(x)
    assert not torch.equal(other.inverse_transform(y), _q8(x))


def test_inverse_needs_a_key_and_the_invariant_statistic(tmp_path) -> None:
    x = torch.rand(2, 1, 16, 16)
    with pytest.raises(InvalidInputError, match="keyed mode"):
        VisualMixer(random_state=0).fit(x).inverse_transform(x)
    key = generate_key(tmp_path / "k")
    with pytest.raises(InvalidInputError, match="statistic='variance'"):
        VisualMixer(key_file=str(key), statistic="vfe").fit(x).inverse_transform(x)
    with pytest.raises(InvalidInputError, match="32 bytes"):
        (tmp_path / "short").write_bytes(b"abc")
        VisualMixer(key_file=str(tmp_path / "short")).fit(x)


def test_keygen_overwrite_replaces_only_a_key_file(tmp_path) -> None:
    """``--overwrite`` is for rotating a key: a data file or folder given by mistake is never replaced."""
    data = tmp_path / "train.npz"
    data.write_bytes(b"PK\x03\x04 the user's data")
    folder = tmp_path / "folder"
    folder.mkdir()
    for path in (data, folder):
        with pytest.raises(InvalidInputError, match="not a key file"):
            generate_key(path, overwrite=True)
    assert data.read_bytes() == b"PK\x03\x04 the user's data" and folder.is_dir()
    key = generate_key(tmp_path / "k.key")
    old = key.read_bytes()
    assert generate_key(key, overwrite=True) == key and key.read_bytes() != old and len(key.read_bytes()) == 32
    with pytest.raises(InvalidInputError, match="is a folder"):
        VisualMixer(key_file=str(folder)).fit(torch.rand(2, 1, 8, 8))


def test_key_check_and_item_tags_identify_key_id_and_pixels(tmp_path) -> None:
    from privis.methods.visualmixer import item_tag, key_check_value, stored_pixels

    x = _q8(_coded(4, 3, 12, 10, seed=2))
    key = generate_key(tmp_path / "k")
    vm = VisualMixer(key_file=str(key)).fit(x)
    assert vm.needs_exact_output() and not VisualMixer(random_state=0).needs_exact_output()
    check = vm.public_record()["key_check"]
    assert check == vm.key_check_ == key_check_value(key.read_bytes()) and len(check) == 32
    assert key.read_bytes().hex() not in check
    other = VisualMixer(key_file=str(generate_key(tmp_path / "k2"))).fit(x)
    assert other.public_record()["key_check"] != check
    assert VisualMixer(random_state=0).fit(x).public_record() == {}
    assert VisualMixer(random_state=0).fit(x).item_tags(x, ["a"] * 4) is None
    ids = ["a/0.png", "a/1.png", "b/2.png", "b/3.png"]
    tags = vm.item_tags(x, ids)
    assert len(set(tags)) == 4 and tags == vm.item_tags(x.clone(), ids)
    assert tags == vm.item_tags(x + 0.4 / 255, ids)  # tags are of the stored 8-bit values round(255 x)
    assert vm.item_tags(x, ids[1:] + ids[:1]) != tags  # bound to the item's id
    assert other.item_tags(x, ids)[0] != tags[0]  # and to the key
    pixels = stored_pixels(x.numpy())
    pixels[0, 1, 3, 4] ^= 1  # one level of one pixel
    assert item_tag(key.read_bytes(), ids[0], pixels[0]) != tags[0]
    assert item_tag(key.read_bytes(), ids[1], pixels[1]) == tags[1]
    with pytest.raises(InvalidInputError, match="statistic='variance'"):
        VisualMixer(key_file=str(key), statistic="vfe").fit(x)  # a keyed output it could not invert


def test_pickled_keyed_protector_holds_no_key(tmp_path) -> None:
    import pickle

    x = _q8(_coded(3, 1, 16, 16, seed=3))
    key = generate_key(tmp_path / "k")
    vm = VisualMixer(key_file=str(key)).fit(x)
    y = vm.transform(x)
    blob = pickle.dumps(vm)
    secret = key.read_bytes()
    assert secret not in blob and secret.hex().encode() not in blob
    back = pickle.loads(blob)
    assert torch.equal(back.transform(x), y) and torch.equal(back.inverse_transform(y), x)  # key read again
    assert secret not in pickle.dumps(back)
    generate_key(key, overwrite=True)  # another key under the same name is not silently used
    with pytest.raises(InvalidInputError, match="no longer holds the key"):
        pickle.loads(blob).inverse_transform(y)
    key.unlink()
    with pytest.raises(InvalidInputError, match="key file not found"):
        pickle.loads(blob).transform(x)


def test_shared_permutation_across_channels() -> None:
    grey = _coded(2, 1, 16, 16)
    x = grey.repeat(1, 3, 1, 1)
    y = VisualMixer(channel_shuffle=False, random_state=0).fit(x).transform(x)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    z = VisualMixer(random_state=0).fit(x).transform(x)
    assert not torch.equal(z[:, 0], z[:, 1])


def test_contract_and_errors() -> None:
    vm = methods.create("visualmixer", random_state=1)
    assert isinstance(vm, VisualMixer) and vm.get_params()["random_state"] == 1
    with pytest.raises(NotFittedError):
        vm.transform(torch.rand(1, 1, 8, 8))
    with pytest.raises(InvalidInputError, match="low_vfe_window"):
        VisualMixer(low_vfe_window="third").fit(torch.rand(1, 1, 8, 8))
    with pytest.raises(InvalidInputError, match="ids must have one entry"):
        VisualMixer(random_state=0).fit(torch.rand(2, 1, 8, 8)).transform(torch.rand(2, 1, 8, 8), ids=[1])
    with pytest.raises(InvalidInputError):
        VisualMixer().fit(torch.rand(2, 1, 8, 8)).transform(torch.full((1, 1, 8, 8), 2.0))


def test_cli_keygen_protect_unprotect_round_trip(tmp_path) -> None:
    from typer.testing import CliRunner

    from privis import data as pdata
    from privis.cli.main import app

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 16, 20), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=images, labels=np.arange(12) % 3)
    runner = CliRunner()
    key = tmp_path / "secret" / "vm.key"
    assert runner.invoke(app, ["keygen", str(key)]).exit_code == 0
    res = runner.invoke(app, ["protect", "visualmixer", "--data", f"npz:{tmp_path / 'd.npz'}", "--out",
                              str(tmp_path / "prot"), "--param", f"key_file={key}"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["unprotect", "visualmixer", "--key", str(key), "--data", f"folder:{tmp_path / 'prot'}",
                              "--out", str(tmp_path / "rest")])
    assert res.exit_code == 0, res.output
    original = pdata.load(f"npz:{tmp_path / 'd.npz'}")
    protected = pdata.load(f"folder:{tmp_path / 'prot'}")
    restored = pdata.load(f"folder:{tmp_path / 'rest'}")
    assert not torch.equal(protected.images, original.images)
    assert torch.equal(restored.images, original.images)
    bad = runner.invoke(app, ["unprotect", "visualmixer", "--key", str(key), "--data", f"folder:{tmp_path / 'prot'}",
                              "--out", str(key.parent)])
    assert bad.exit_code == 2 and "inside the output folder" in bad.output


# --------------------------------------------------------------------- batched, table-driven permutations
def test_statistics_match_the_per_pixel_definitions() -> None:
    from privis.methods.visualmixer.partition import _region_sums, _vfe_density_map

    x = _coded(3, 3, 31, 29, seed=4).numpy()
    dens = _vfe_density_map(x)
    assert np.allclose(dens, metrics.vfe_map(torch.from_numpy(x)).numpy().mean(1), atol=1e-6)
    geo = _geometry(31, 29, (8, 4, 2))
    for li, sums in enumerate(_region_sums(dens, geo)):  # edges absorb remainders, levels nest
        sh, sw = list(_cuts(31, geo.levels[li])), list(_cuts(29, geo.levels[li]))
        brute = np.array([[[dens[i, sh[r]:sh[r + 1], sw[c]:sw[c + 1]].sum() for c in range(len(sw) - 1)]
                           for r in range(len(sh) - 1)] for i in range(3)])
        assert np.allclose(sums, brute, rtol=1e-5, atol=1e-6)


def test_uniform_draw_is_the_exact_multiply_shift() -> None:
    from privis.methods.visualmixer.permute import _uniform

    words = np.random.default_rng(0).integers(0, 2**64, size=2000, dtype=np.uint64, endpoint=False)
    words[:3] = [0, 2**64 - 1, 2**63]
    for m in (24, 576 * 576, 12870, 40320 * 40320):
        expect = [(int(w) * m) >> 64 for w in words]
        assert _uniform(words.copy(), m).tolist() == expect


def _tile_perms(whole: bool, n: int, seed: int) -> np.ndarray:
    """Permutations of one 4 x 4 image (one tile) from the table path: whole tile, or its four 2x2 quadrants."""
    from privis.methods.visualmixer.partition import _ChunkPlan
    from privis.methods.visualmixer.permute import _tile_permutations

    geo = _geometry(4, 4, (4, 2))
    finals = [np.full((n, 1, 1), whole), np.full((n, 2, 2), not whole)]
    plan = _ChunkPlan(finals, np.zeros((n, 2)), np.array([16, 4]), np.array([0, 1]), np.zeros(n))
    words = np.random.default_rng(seed).integers(0, 2**64, size=(n, 2), dtype=np.uint64, endpoint=False)
    return _tile_permutations(plan, geo, n, 1, words).reshape(n, 16).astype(np.int64)


def test_table_permutations_are_uniform() -> None:
    from scipy.stats import chisquare

    n = 48000
    perms = _tile_perms(True, n, seed=1)  # a final 4x4 tile: uniform over all 16! permutations
    assert (np.sort(perms, 1) == np.arange(16)).all()
    for i, j in ((0, 1), (0, 15), (5, 10), (3, 12)):  # pair of outputs: uniform over the 240 ordered source pairs
        counts = np.bincount(perms[:, i] * 16 + perms[:, j], minlength=256).reshape(16, 16)
        assert np.trace(counts) == 0
        assert chisquare(counts[~np.eye(16, dtype=bool)]).pvalue > 1e-4
    # a tile split into 2x2 quadrants: each quadrant uniform over its 24 permutations, independently
    perms = _tile_perms(False, n, seed=2)
    quads = [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    codes = []
    for q in quads:
        sub = perms[:, q]
        assert np.isin(sub, q).all()
        rank = np.searchsorted(np.array(q), sub)  # positions inside the quadrant
        codes.append(rank @ np.array([64, 16, 4, 1]))
    for a, b in ((0, 1), (1, 2), (0, 3)):
        _, pair = np.unique(codes[a] * 256 + codes[b], return_counts=True)
        assert pair.size == 576 and chisquare(pair).pvalue > 1e-4


@pytest.mark.parametrize("params", [{}, {"window": 2}, {"ws_lower": 4, "ws_upper": 4}, {"bias_d": 3.5},
                                    {"low_vfe_window": "half"}])
@pytest.mark.parametrize("permutations", ["table", "counter"])
def test_every_path_keeps_regions_and_inverts_exactly(tmp_path, params, permutations) -> None:
    # table path (coarsest window 2 or 4, with edges and padding) and the sorting path (window 8); the counter
    # scheme sorts every window
    params = {**params, "permutations": permutations}
    key = generate_key(tmp_path / "k")
    for shape in ((3, 30, 22), (1, 28, 28), (3, 17, 33)):
        x = _coded(4, *shape, seed=5)
        seeded = VisualMixer(random_state=11, **params).fit(x)
        _assert_moves_within_regions(x, seeded.transform(x), seeded)
        xq = _q8(x)  # the keyed mode works on 8-bit values (several pixels may share one)
        keyed = VisualMixer(key_file=str(key), **params).fit(xq)
        y = keyed.transform(xq)
        _assert_region_multisets(xq, y, keyed)
        assert not torch.equal(xq, y) and torch.equal(keyed.inverse_transform(y), xq)


@pytest.mark.filterwarnings("ignore:keyed VisualMixer stores:UserWarning")
@pytest.mark.parametrize("permutations", ["table", "counter"])
def test_batched_output_does_not_depend_on_the_batch(tmp_path, monkeypatch, permutations) -> None:
    from privis.methods.visualmixer import permute as vm_module

    x = _coded(7, 3, 24, 20, seed=6)
    ids = [f"img-{i}" for i in range(7)]
    order = [4, 0, 6, 2, 1, 5, 3]
    key = str(generate_key(tmp_path / "k"))
    for vm in (VisualMixer(random_state=3, permutations=permutations).fit(x),
               VisualMixer(key_file=key, permutations=permutations).fit(x)):
        full = vm.transform(x, ids=ids)
        assert torch.equal(full, vm.transform(x, ids=ids))  # same seed/key, same output
        assert torch.equal(vm.transform(x[order], ids=[ids[i] for i in order]), full[order])
        assert torch.equal(vm.transform(x[2:3], ids=ids[2:3]), full[2:3])
        vm.n_jobs = 1
        assert torch.equal(vm.transform(x, ids=ids), full)  # one thread or several: same output
        with monkeypatch.context() as patch:  # chunks of two images, on two threads
            patch.setattr(vm_module, "_CHUNK_VALUES", 2 * 3 * 24 * 20)
            vm.n_jobs = 2
            assert torch.equal(vm.transform(x, ids=ids), full)


def test_content_ids_histogram_branch_equals_the_direct_sum() -> None:
    from privis.methods.visualmixer import content_ids
    from privis.methods.visualmixer.keys import _id_tables

    x = np.random.default_rng(3).random((2, 3, 70, 64)).astype(np.float32)  # >= 4096 pixels: histogram branch
    q = np.rint(np.clip(x, 0.0, 1.0) * 4095).astype(np.intp).reshape(2, 3, -1)
    tables = _id_tables()
    with np.errstate(over="ignore"):
        direct = np.stack([tables[0][q].sum(-1, dtype=np.uint64), tables[1][q].sum(-1, dtype=np.uint64)], -1)
    assert content_ids(x) == [row.tobytes() for row in direct.astype("<u8")]
    shuffled = np.take_along_axis(x.reshape(2, 3, -1), np.argsort(np.random.default_rng(4).random((2, 3, 4480)), -1),
                                  -1).reshape(x.shape)
    assert content_ids(shuffled) == content_ids(x)


def _sorted_cells_reference(x: torch.Tensor, window: int) -> torch.Tensor:
    """The per-cell loop: sort every cell of the grid_cuts grid, refill it in raster order."""
    out = x.clone()
    ch, cw = _cuts(x.shape[-2], window), _cuts(x.shape[-1], window)
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            for r0, r1 in zip(ch[:-1], ch[1:], strict=True):
                for c0, c1 in zip(cw[:-1], cw[1:], strict=True):
                    cell = x[i, c, r0:r1, c0:c1]
                    out[i, c, r0:r1, c0:c1] = cell.reshape(-1).sort().values.reshape(cell.shape)
    return out


@pytest.mark.parametrize(("shape", "window"), [((2, 3, 8, 8), 2), ((3, 2, 9, 7), 2), ((2, 1, 30, 22), 4),
                                               ((1, 1, 5, 5), 5)])
def test_sort_within_windows_matches_the_per_cell_loop(shape, window) -> None:
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sort_within_windows(x, window), _sorted_cells_reference(x, window))


def test_window_sort_is_invariant_to_the_visualmixer_draw(digits_test) -> None:
    """On 8x8 digits every region is a 2x2 cell, so two independent shuffles sort to one image."""
    x = digits_test.images[:100]
    a, b = VisualMixer(random_state=1).fit(x), VisualMixer(random_state=2).fit(x)
    ya, yb = a.transform(x), b.transform(x)
    assert not torch.equal(ya, yb)
    layer = a.service_input_layer()
    assert isinstance(layer, WindowSort) and layer.window == 2
    assert torch.equal(layer(ya), layer(yb)) and torch.equal(layer(ya), layer(x))
    # with 4x4 regions too (uncapped), the cells of the shuffled image still hold sorted values only
    c = VisualMixer(random_state=1, max_window_fraction=None).fit(x)
    yc = c.transform(x)
    assert torch.equal(c.service_input_layer()(yc), _sorted_cells_reference(yc, 2))


def test_sort_within_windows_rejects_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="window"):
        sort_within_windows(torch.rand(1, 1, 4, 4), 5)
    with pytest.raises(InvalidInputError, match=r"\(N, C, H, W\)"):
        sort_within_windows(torch.rand(4, 4), 2)
    with pytest.raises(NotFittedError):
        VisualMixer().service_input_layer()


# ------------------------------------------------------------------------------ the functional core
def test_shuffle_regions_is_the_protectors_core(tmp_path) -> None:
    from privis.methods.visualmixer import ShuffleStats, seed_secret, shuffle_regions

    x = _coded(5, 3, 30, 22, seed=8)
    vm = VisualMixer(random_state=4).fit(x)
    stats = ShuffleStats()
    y = shuffle_regions(x, vm.levels_, secret=seed_secret(4), ids=list(range(5)), stats=stats)
    assert torch.equal(y, vm.transform(x, ids=list(range(5))))  # the class calls the function
    _assert_moves_within_regions(x, y, vm)
    assert stats.region_counts.shape == (5, stats.region_sizes.size) and stats.vfe_before.shape == (5,)
    assert ((stats.region_counts * stats.region_sizes).sum(1) == 30 * 22).all()  # the regions tile each image
    assert np.allclose(stats.vfe_before, metrics.vfe(x).numpy(), rtol=1e-4)
    # with a shuffle-invariant split test the same secret undoes it exactly, on any float values
    z = shuffle_regions(x, (4, 2), statistic="variance", secret=b"k" * 32)
    assert not torch.equal(z, x)
    assert torch.equal(shuffle_regions(z, (4, 2), statistic="variance", secret=b"k" * 32, inverse=True), x)
    with pytest.raises(InvalidInputError, match="needs the secret"):
        shuffle_regions(z, (4, 2), inverse=True)
    with pytest.raises(InvalidInputError, match="must lie in"):
        shuffle_regions(x, (32, 16))
    with pytest.raises(InvalidInputError, match="one entry per image"):
        shuffle_regions(x, (2,), secret=b"k" * 32, ids=[1, 2])


def test_declared_invariants_name_the_region_grid() -> None:
    x = _coded(2, 1, 16, 16)
    assert VisualMixer().invariants() == {"region_multisets": None}  # before fit: known only after fit
    vm = VisualMixer(random_state=0).fit(x)
    assert vm.invariants() == {"region_multisets": vm.levels_}
