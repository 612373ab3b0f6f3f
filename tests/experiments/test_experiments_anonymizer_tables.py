"""Latent anonymiser experiments: quick runs on digits whose rows keep their invariants (the original row is the
reference, the codec's reconstruction is the sanity row, verdicts follow the rows), and the keys
``privis evaluate latent-anonymizer`` adds."""

from __future__ import annotations

import pytest
import torch

from privis import experiments
from privis.experiments.anonymizer_tables import anonymizer_frontier, anonymizer_table1, anonymizer_table3

NAMES = ("anonymizer-table1", "anonymizer-table3", "anonymizer-frontier")
COLUMNS = {"spr", "spr_heldout", "spr_train", "fd_privis", "ssim", "attribute_acc"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a busy 2-core machine two threads make these 8x8 convolutions tens of times slower;
    restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_registered():
    assert set(NAMES) <= set(experiments.available())


@pytest.fixture(scope="module")
def table1():
    return anonymizer_table1(quick=True)


def test_table1_quick_rows_and_keys(table1):
    rows = {r["method"]: r for r in table1.tables["Table 6.1 analogue"]}
    assert list(rows) == ["original", "codec reconstruction", "blur", "pixelate", "noise", "dp-image", "fsap",
                          "latent-anonymizer (IIS)"]
    for name, r in rows.items():
        assert set(r) >= COLUMNS and r["detection"] == "n/a"
        assert all(0 <= r[k] <= 1 for k in ("spr", "spr_heldout", "spr_train", "attribute_acc")), name
        assert {f"{name}.{k}" for k in COLUMNS} <= set(table1.summary)
    original = rows["original"]
    # an image is always matched to itself: no anonymity, no distance, the reference accuracy
    assert original["spr"] == original["spr_heldout"] == original["spr_train"] == 0
    assert original["fd_privis"] == pytest.approx(0, abs=1e-6) and original["ssim"] == pytest.approx(1)
    assert original["attribute_acc"] == table1.summary["attribute_acc_original"]
    assert rows["latent-anonymizer (IIS)"]["seconds"] > 0
    met = any(r["spr"] >= 0.9 and r["attribute_acc"] >= original["attribute_acc"] - 0.1
              for name, r in rows.items() if name.startswith("latent-anonymizer"))
    assert table1.summary["acceptance_met"] == float(met)
    assert table1.notes[0].startswith("acceptance") and "n/a" in " ".join(table1.notes)
    assert table1.config["identity_model"] == "lenet5-exemplar" and table1.config["heldout_model"] == "vgg-exemplar"
    (grid,) = table1.figures
    assert "paired fake (latent-anonymizer (IIS))" in grid.title and grid.png.startswith(b"\x89PNG")


def test_table3_quick_compares_the_schemes_on_the_same_setup():
    result = anonymizer_table3(quick=True)
    rows = {r["method"]: r for r in result.tables["Table 6.3 analogue"]}
    assert list(rows) == ["original", "latent-anonymizer (IRS)", "latent-anonymizer (IIS)"]
    iis, irs = rows["latent-anonymizer (IIS)"], rows["latent-anonymizer (IRS)"]
    assert result.summary["iis_spr_higher"] == float(iis["spr"] > irs["spr"])
    assert result.summary["irs_fd_lower"] == float(irs["fd_privis"] < iis["fd_privis"])
    assert {result.config["anonymizer"][s]["scheme"] for s in ("iis", "irs")} == {"iis", "irs"}


def test_frontier_quick_has_one_row_per_lambda():
    result = anonymizer_frontier(quick=True, lambdas=[0.0, 10.0])
    rows = result.tables["frontier"]
    assert [r["lambda_att"] for r in rows] == [0.0, 10.0]
    assert all(set(r) >= COLUMNS for r in rows)
    assert result.summary["lambda_att=10.spr"] == rows[1]["spr"]
    assert result.figures[0].png.startswith(b"\x89PNG")


def test_evaluate_latent_anonymizer_adds_identity_and_attribute_keys():
    from privis import data as pdata
    from privis.experiments.anonymizer_tables import QUICK_CODEC
    from privis.experiments.evaluate import EvalConfig, evaluate
    from privis.latent import train_codec

    codec = train_codec(pdata.load("digits:train[:48]").images, "diffae", epochs=1, random_state=0, **QUICK_CODEC)
    cfg = EvalConfig(data="digits", train_size=48, test_size=24, epochs=2,
                     params={"codec": codec, "identity_epochs": 2, "attribute_epochs": 1, "iterations": 2})
    summary = evaluate("latent-anonymizer", cfg).summary
    assert {"spr", "spr_heldout", "attribute_acc", "fd_privis"} <= set(summary)
    assert summary["attribute_acc"] == summary["protected_acc_original"]
    assert 0 <= summary["spr"] <= 1 and 0 <= summary["spr_heldout"] <= 1


def test_heldout_identity_follows_the_objective():
    from privis import data as pdata
    from privis.experiments.evaluate import EvalConfig, heldout_identity, is_exemplar
    from privis.identity.exemplar import train_exemplar_identity

    train, test = pdata.load("digits:train[:32]"), pdata.load("digits:test[:16]")
    exemplar = train_exemplar_identity(train.images, epochs=1, random_state=0, calibrate_on=test.images)
    assert is_exemplar(exemplar)
    cfg = EvalConfig(data="digits", epochs=1)
    heldout = heldout_identity(exemplar, cfg, train, test)
    # another architecture, the same kind of identity: individual images, not classes
    assert heldout.name == "vgg-exemplar" and is_exemplar(heldout)
    assert heldout.threshold != exemplar.threshold
