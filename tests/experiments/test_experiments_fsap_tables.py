"""FSAP experiments: quick smoke runs on digits whose figures must agree with their own rows (verdicts,
references), and FSAP against the torch port of dlib's recogniser on a real face."""

from __future__ import annotations

import pytest
import torch

from privis import experiments
from privis.experiments.fsap_tables import fsap_table1, fsap_table3

NAMES = ("fsap-table1", "fsap-table2", "fsap-table3", "fsap-lambda", "fsap-faces")


def test_registered():
    assert set(NAMES) <= set(experiments.available())


def test_table1_quick_verdicts_follow_the_rows():
    result = fsap_table1(quick=True)
    rows = result.tables["Table 5.1 analogue"]
    assert len(rows) == 4 and {r["variant"] for r in rows} == {"id-only", "both"}
    for lam_i, lam_p in ((0.02, 0.008), (0.05, 0.002)):
        pair = {r["variant"]: r for r in rows if (r["lambda_I"], r["lambda_P"]) == (lam_i, lam_p)}
        both, only = pair["both"], pair["id-only"]
        holds = abs(both["spr"] - only["spr"]) <= 0.05 and both["mse"] < only["mse"]
        assert result.summary[f"both_mse_lower_at_equal_spr@{lam_i},{lam_p}"] == float(holds)
        # the attribute steps pull the release back towards the original
        assert pair["both"]["mse"] < pair["id-only"]["mse"]
    assert all(0 <= r["spr"] <= 1 and 0 <= r["spr_heldout"] <= 1 for r in rows)


def test_table3_quick_original_row_is_the_reference():
    result = fsap_table3(quick=True)
    rows = {r["method"]: r for r in result.tables["Table 5.3 analogue (utility)"]}
    assert rows["original"]["mse"] == 0 and rows["original"]["ssim"] == pytest.approx(1.0)
    assert {"fsap", "blur", "pixelate", "noise", "dp-image", "visualmixer"} <= set(rows)
    assert all(r["mse"] > 0 for name, r in rows.items() if name != "original")


def test_fsap_deidentifies_a_real_face_under_the_dlib_port():
    pytest.importorskip("dlib")
    from privis.identity import protection_success_rate
    from privis.identity.alignment import sample_faces
    from privis.identity.dlib_identity import DlibResNetIdentity
    from privis.methods.fsap import FSAP

    face = sample_faces(2)[1]  # an LFW crop upscaled for dlib, (1, 1, 230, 230)
    port = DlibResNetIdentity().eval()
    out = FSAP(identity_model=port, N=3, k=1, lambda_I=0.05, lambda_P=0.002, random_state=0).fit(face).transform(face)
    port.locate(face)
    assert protection_success_rate(port, face, out) == 1.0
    assert float((out - face).abs().max()) <= 4 * 0.05 + 1e-6
    assert torch.isfinite(out).all()


def test_evaluate_adds_spr_keys_only_for_a_method_with_an_identity_objective():
    from privis.experiments.evaluate import EvalConfig, evaluate

    cfg = EvalConfig(data="digits", train_size=120, test_size=40, epochs=1,
                     params={"N": 2, "k": 1, "identity_epochs": 1})
    summary = evaluate("fsap", cfg).summary
    assert {"spr", "spr_heldout", "mse_mean"} <= set(summary)
    assert 0 <= summary["spr"] <= 1 and summary["mse_mean"] > 0
    blur = evaluate("blur", EvalConfig(data="digits", train_size=120, test_size=40, epochs=1)).summary
    assert not {"spr", "spr_heldout", "mse_mean"} & set(blur)


def test_protect_faces_fits_each_group_with_identity_labels_and_names_refused_groups():
    from privis.errors import PrivisError
    from privis.experiments.fsap_tables import protect_faces

    gen = torch.Generator().manual_seed(0)
    one, triple = torch.rand(1, 1, 16, 16, generator=gen), torch.rand(3, 1, 16, 16, generator=gen)
    # the perturbation generator needs labels (one class per face) and at least three images per fit
    kept, out, note = protect_faces("perturbation", [one, triple], seed=0,
                                    params={"epochs": 1, "classifier_epochs": 1})
    assert kept == [1] and len(out) == 1 and out[0].shape == triple.shape
    assert "1 face(s) of (1, 16, 16)" in note and "at least 3 images" in note
    # Veil trains its local model on the identity labels
    kept, out, note = protect_faces("veil", [triple], seed=0, params={"steps": 2, "local_epochs": 1})
    assert kept == [0] and note == "" and not torch.equal(out[0], triple)
    with pytest.raises(PrivisError, match="at least 3 images"):
        protect_faces("perturbation", [one], seed=0, params={"epochs": 1, "classifier_epochs": 1})
