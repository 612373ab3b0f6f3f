"""The one region grid: cut points, per-pixel region ids, and its users (VisualMixer, attacks, region VFE)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from privis import metrics
from privis.attacks.invariants import region_index
from privis.errors import InvalidInputError
from privis.methods.visualmixer.partition import _geometry
from privis.methods.visualmixer.service import _cell_order
from privis.metrics.regions import grid_cuts, grid_positions, region_grid


@pytest.mark.parametrize("size,window", [(28, 4), (30, 4), (17, 8), (5, 5), (9, 2), (7, 1)])
def test_cuts_absorb_and_drop_the_remainder(size, window):
    absorb, drop = grid_cuts(size, window), grid_cuts(size, window, remainder="drop")
    assert len(absorb) == len(drop) == size // window + 1
    assert absorb[0] == drop[0] == 0 and absorb[-1] == size and drop[-1] == (size // window) * window
    assert (np.diff(drop) == window).all()  # drop: every region exactly one window long
    assert (np.diff(absorb)[:-1] == window).all() and window <= np.diff(absorb)[-1] < 2 * window
    pos = grid_positions(absorb)
    assert pos.shape == (size,) and (np.diff(pos) >= 0).all()  # every pixel in exactly one region, in order
    assert [int((pos == r).sum()) for r in range(len(absorb) - 1)] == np.diff(absorb).tolist()


def test_cuts_of_halving_windows_are_nested():
    coarse, fine = grid_cuts(30, 8), grid_cuts(30, 4)
    assert set(coarse.tolist()) <= set(fine.tolist())


def test_region_grid_matches_the_per_pixel_definition():
    h, w, s = 11, 9, 4
    ids, count = region_grid(h, w, s)
    brute = np.array([[min(y // s, h // s - 1) * (w // s) + min(x // s, w // s - 1) for x in range(w)]
                      for y in range(h)])
    assert count == 4 and ids.tolist() == brute.reshape(-1).tolist()  # 2 x 2 regions, the last ones wider


def test_bad_windows_are_one_line_errors():
    with pytest.raises(InvalidInputError, match="window must lie in"):
        grid_cuts(4, 5)
    with pytest.raises(InvalidInputError, match="remainder"):
        grid_cuts(8, 2, remainder="pad")


def test_every_user_shares_the_grid():
    h, w = 30, 22
    for s in (2, 4, 8):
        ids, count = region_grid(h, w, s)
        attack_ids, attack_count = region_index(h, w, s)  # the attacks' torch view
        assert attack_count == count and attack_ids.tolist() == ids.tolist()
        assert _cell_order(h, w, s)[0].tolist() == ids.tolist()  # VisualMixer's server layer
    geo = _geometry(h, w, (8, 4, 2))  # VisualMixer's partition: region areas from the same cuts
    for li, s in enumerate(geo.levels):
        assert geo.area[li].tolist() == np.outer(np.diff(grid_cuts(h, s)), np.diff(grid_cuts(w, s))).tolist()
    x = torch.rand(2, 1, h, w, generator=torch.Generator().manual_seed(0))
    regions = metrics.vfe_regions(x, 4)  # the region VFE drops the remainder (exact 4x4 regions)
    cuts_h, cuts_w = grid_cuts(h, 4, remainder="drop"), grid_cuts(w, 4, remainder="drop")
    vmap = metrics.vfe_map(x)
    brute = torch.stack([torch.stack([vmap[..., cuts_h[i]:cuts_h[i + 1], cuts_w[j]:cuts_w[j + 1]].sum((-2, -1))
                                      for j in range(len(cuts_w) - 1)], -1) for i in range(len(cuts_h) - 1)], -2)
    assert regions.shape == (2, 1, h // 4, w // 4) and torch.allclose(regions, brute, atol=1e-5)
