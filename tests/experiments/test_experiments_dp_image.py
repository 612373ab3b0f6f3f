"""DP-Image experiments: quick smoke runs on digits with one shared stand-in codec, and their building blocks
(matched-ISS search, PGD against the identity model, epsilon curves against the accountant)."""

from __future__ import annotations

import json

import pytest
import torch

from privis import experiments
from privis.experiments.dp_image_tables import (
    THESIS_SENSITIVITY,
    adversarial_identity,
    dp_image_audit,
    dp_image_epsilon,
    dp_image_grids,
    dp_image_iss,
    dp_image_table1,
    epsilon_curve,
    match_iss,
)
from privis.identity import ClassifierIdentity, identity_similarity
from privis.latent import train_codec
from privis.privacy import dp_image_bounds

NAMES = ("dp-image-table1", "dp-image-epsilon", "dp-image-grids", "dp-image-iss", "dp-image-audit")


@pytest.fixture(scope="module")
def codec(digits_train):
    return train_codec(digits_train.images[:400], epochs=1, random_state=0)


def test_registered():
    assert set(NAMES) <= set(experiments.available())


def test_match_iss_bisects_to_the_target_and_scans_candidates():
    def protect(v):
        return torch.tensor(v)

    def iss(out):
        return 1.0 - float(out)

    strength, out, value = match_iss(protect, iss, 0.3, lo=0.0, hi=1.0, iterations=20)
    assert strength == pytest.approx(0.7, abs=1e-5) and value == pytest.approx(0.3, abs=1e-5)
    assert float(out) == strength
    strength, _, value = match_iss(protect, iss, 0.3, lo=0, hi=1, candidates=[0.0, 0.5, 0.8, 1.0])
    assert strength == 0.8 and value == pytest.approx(0.2)


def test_pgd_lowers_identity_similarity_within_its_budget(digits_lenet, digits_test, device):
    identity = ClassifierIdentity(digits_lenet.to(device))
    try:
        x = digits_test.images[:64].to(device)
        assert torch.equal(adversarial_identity(identity, x, eps=0.0), x)
        out = adversarial_identity(identity, x, eps=0.1, steps=5, random_state=0)
        assert out.device.type == device.type and float((out - x).abs().max()) <= 0.1 + 1e-6
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        noise = (x + 0.1 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
                                      ).to(device)).clamp(0, 1)
        # the attack beats random sign noise of the same L_inf size
        attacked, noised = identity_similarity(identity, x, out), identity_similarity(identity, x, noise)
        assert float(attacked.mean()) < float(noised.mean())
        assert torch.equal(out, adversarial_identity(identity, x, eps=0.1, steps=5, random_state=0))
    finally:
        digits_lenet.to("cpu")


def test_epsilon_curve_is_the_accountant_at_each_t():
    rows = epsilon_curve(THESIS_SENSITIVITY, 0.2, 1e-8, [1, 10, 100_000])
    for r in rows:
        b = dp_image_bounds(sensitivity=THESIS_SENSITIVITY, sigma=0.2, steps=r["T"], delta=1e-8)
        assert r["epsilon_claimed"] == b.claimed.epsilon and r["epsilon_post_processing"] == b.post_processing.epsilon
    assert rows[-1]["epsilon_claimed"] == pytest.approx(2211.7, abs=0.1)  # the accountant's documented value
    # amplification by iteration: the claim falls with T; post-processing does not depend on T
    assert rows[0]["epsilon_claimed"] > rows[1]["epsilon_claimed"] > rows[2]["epsilon_claimed"]
    assert rows[0]["epsilon_post_processing"] == rows[2]["epsilon_post_processing"]


def test_epsilon_quick(codec):
    res = dp_image_epsilon(quick=True, codec=codec)
    privis_rows = next(v for k, v in res.tables.items() if "privis" in k)
    assert res.config["codec_latent_dim"] == codec.latent_dim
    assert privis_rows[0]["T"] == 1 and privis_rows[-1]["T"] == 100_000
    assert res.summary["thesis.T100000.epsilon_claimed"] == pytest.approx(2211.7, abs=0.1)
    assert res.figures and json.loads(res.to_json())


def test_table1_quick(codec):
    res = dp_image_table1(data="digits", quick=True, codec=codec)
    rows = res.tables["Table 4.1 analogue (matched ISS)"]
    assert [r["method"] for r in rows] == ["DP-Image", "blur", "mosaic (pixelate)", "pixel noise",
                                           "adversarial (pixel, PGD)"]
    for r in rows:
        assert r["l2"] >= 0 and r["ald_inf"] >= 0 and 0 <= r["ssim_abs"] <= 1 and r["fd_privis"] >= 0
        assert -1 <= r["iss"] <= 1 and 0 <= r["fppsr"] <= 1
    assert res.summary["iss_target"] == rows[0]["iss"]
    # blur and pixel noise reach the target ISS (continuous strengths)
    assert abs(rows[1]["iss"] - rows[0]["iss"]) < 0.1 and abs(rows[3]["iss"] - rows[0]["iss"]) < 0.1
    assert "fd_privis" in res.notes[0] and json.loads(res.to_json())


def test_iss_grids_and_audit_quick(codec):
    iss = dp_image_iss(data="digits", quick=True, codec=codec, sigmas=(0.2, 0.6))
    rows = iss.tables["ISS and FPPSR vs T (Figs. 4.11-4.12)"]
    assert [(r["sigma"], r["T"]) for r in rows] == [(v, t) for v in (0.2, 0.6) for t in (1, 2, 5)]
    assert all(-1 <= r["iss"] <= 1 and 0 <= r["fppsr"] <= 1 for r in rows)
    utility = iss.tables["utility of DP-Image outputs"]
    assert len(utility) == 2 and all(0 <= u["trained_dp_image_tested_original"] <= 1 for u in utility)
    grids = dp_image_grids(data="digits", quick=True, codec=codec)
    assert len(grids.figures) == 2 and {r["grid"] for r in grids.tables["ISS of the grid images"]} == {"T", "sigma"}
    audit = dp_image_audit(data="digits", quick=True, codec=codec, steps_grid=(1,), sigmas=(1.0,))
    (row,) = audit.tables["audit vs claimed epsilon"]
    assert row["epsilon_lower"] >= 0 and row["verdict_claimed"] in ("violated", "consistent")
    assert (row["verdict_claimed"] == "violated") == (row["epsilon_lower"] > row["epsilon_claimed"])


def test_a_codec_file_is_recorded_by_name_not_by_the_owners_path(tmp_path, codec):
    from privis.experiments.dp_image_tables import setup
    from privis.latent import save_codec
    from privis.results import Result

    path = tmp_path / "owner-private-folder" / "my-codec.pt"
    path.parent.mkdir()
    save_codec(codec, path)
    s = setup(data="digits", seed=0, quick=True, codec=str(path), train_size=100, test_size=50, epochs=1)
    assert s.config["codec"] == "my-codec.pt"
    Result("x", config=s.config).save_json(tmp_path / "r.json")
    assert "owner-private-folder" not in (tmp_path / "r.json").read_text()
