"""Veil tables: resumable checkpoints, the device and backbone options, and the paper's figures beside privis'."""

from __future__ import annotations

import json
import shutil
import stat
import warnings

import pytest
import torch
from typer.testing import CliRunner

from privis import models
from privis.cli.main import app
from privis.errors import InvalidInputError
from privis.experiments import veil_tables as vt
from privis.methods.veil import Veil

QUICK = {"data": "digits", "quick": True, "seed": 0}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """Quick Table 2 on digits with checkpoints in a fresh folder: (folder, result)."""
    root = tmp_path_factory.mktemp("veil-checkpoints")
    return root, vt.table2(**QUICK, checkpoint_dir=str(root))


def _forbid_work(monkeypatch):
    """Make every Veil fit/transform and every model training fail: a run that needs one is not resuming."""
    def boom(*args, **kwargs):
        raise AssertionError("work was redone although its checkpoint exists")

    monkeypatch.setattr(Veil, "fit", boom)
    monkeypatch.setattr(Veil, "transform", boom)
    monkeypatch.setattr(models, "train", boom)


def test_checkpoints_are_private_and_named_by_key_only(first_run):
    root, result = first_run
    key = result.config["checkpoint_keys"]["digits"]
    files = sorted(p.name.split("-")[0] for p in (root / key).iterdir())
    # the slow steps of Table 2: the owner's local model, the veiled sets, the baseline and the veiled model
    assert files == ["baseline", "local", "service", "veiled"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (root / key).iterdir())
    assert stat.S_IMODE((root / key).stat().st_mode) == 0o700
    record = result.to_json()
    assert key in record and str(root) not in record  # the report names the key, never the folder


def test_second_run_loads_every_step_and_does_no_work(first_run, monkeypatch):
    root, first = first_run
    _forbid_work(monkeypatch)
    again = vt.table2(**QUICK, checkpoint_dir=str(root))
    assert again.tables == first.tables
    assert {k: v for k, v in again.summary.items()} == first.summary
    assert any("loaded 3 steps, computed 0" in note for note in again.notes)
    # Table 3 veils the same data with the same setting: it reads Table 2's veiled sets
    t3 = vt.table3(**QUICK, checkpoint_dir=str(root))
    assert t3.tables["Table 3 (|SSIM| veiled vs original)"][0]["mean"] == pytest.approx(
        first.tables["Table 2 (accuracy)"][0]["ssim_mean"], abs=1e-6)


def test_truncated_checkpoint_is_ignored_with_one_warning_and_recomputed(first_run, tmp_path):
    root, first = first_run
    shutil.copytree(root, tmp_path / "ck")
    key = first.config["checkpoint_keys"]["digits"]
    veiled = next((tmp_path / "ck" / key).glob("veiled-*.pt"))
    veiled.write_bytes(veiled.read_bytes()[: veiled.stat().st_size // 2])  # a file cut short
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        redo = vt.table3(**QUICK, checkpoint_dir=str(tmp_path / "ck"))
    messages = [str(w.message) for w in caught if "checkpoint" in str(w.message)]
    assert len(messages) == 1 and messages[0].startswith(f"ignoring the unreadable checkpoint {veiled.name}")
    # recomputed from the saved local model, to the same seeded images: the same |SSIM| as the first run
    assert any("loaded 1 steps, computed 1" in note for note in redo.notes)
    assert redo.tables["Table 3 (|SSIM| veiled vs original)"][0]["mean"] == pytest.approx(
        first.tables["Table 2 (accuracy)"][0]["ssim_mean"], abs=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten file reads back without a warning
        vt.table3(**QUICK, checkpoint_dir=str(tmp_path / "ck"))


def test_paper_column_beside_privis(first_run):
    _, result = first_run
    ours = result.tables["Table 2 (accuracy)"][0]
    rows = {r["quantity"]: r for r in result.tables["Table 2: the paper (MNIST) beside privis"]}
    column = "privis: digits (lenet5, 400 train / 150 test)"
    for key, label in vt.TABLE2_QUANTITIES:
        assert rows[label][column] == ours[key]
        assert rows[label]["paper: MNIST (AlexNet)"] == vt.PAPER_VALUES["table2"]["MNIST (AlexNet)"].get(key)
    assert rows["veiled model, original test data"]["paper: MNIST (AlexNet)"] == 0.9660
    assert len(result.tables["Table 2 as published (every data set)"]) == 8
    assert any("not as a like-for-like comparison" in note for note in result.notes)


def test_paper_values_table5_is_orl():
    # Table 5 names no data set; its Fc3 column repeats ORL's Table 2 accuracy and Table 3 |SSIM| values
    fc3 = vt.PAPER_VALUES["table5"]["F = logits (fc3)"]
    orl3 = vt.PAPER_VALUES["table3"]["ORL"]
    assert [fc3[f"ssim_example_{i}"] for i in (1, 2, 3)] == [orl3[f"example_{i}"] for i in (1, 2, 3)]
    assert fc3["acc_on_original"] == vt.PAPER_VALUES["table2"]["ORL (LeNet-5)"]["veiled_on_original"]
    assert vt.PAPER_COLUMN["table5"] == "ORL (LeNet-5)"


def test_table5_shares_steps_and_compares_every_paper_variant(first_run, monkeypatch):
    root, first = first_run
    monkeypatch.setattr(vt, "TABLE5_VARIANTS", [("p=0.5", {"flip_ratio": 0.5}),
                                                 ("F = conv", {"feature_layer": vt.LAST_CONV})])
    result = vt.table5(**QUICK, checkpoint_dir=str(root))
    rows = {r["variant"]: r for r in result.tables["Table 5 (digits)"]}
    assert rows["F = conv"]["feature_layer"] == "conv2"  # LeNet-5's last convolution
    # p = 0.5 is Table 2's setting: the same checkpointed veiled data and model, the same figures
    assert rows["p=0.5"]["acc_on_original"] == first.tables["Table 2 (accuracy)"][0]["veiled_on_original"]
    compare = result.tables["Table 5: the paper (ORL) beside privis"]
    column = "privis: digits (lenet5, 400 train / 150 test)"
    assert len(compare) == 3 * 2
    conv = next(r for r in compare if r["quantity"] == "F = conv: veiled model, original test data")
    assert conv["paper: ORL (LeNet-5)"] == 0.9697 and conv[column] == rows["F = conv"]["acc_on_original"]
    assert next(r for r in compare if r["quantity"].startswith("p=0.5: |SSIM|"))["paper: ORL (LeNet-5)"] == (
        pytest.approx((0.03478 + 0.03607 + 0.01760) / 3))


def test_resolve_layers_names_each_backbones_last_convolution():
    assert vt.resolve_layers({"feature_layer": vt.LAST_CONV, "flip_ratio": 0.4}, "lenet5") == {
        "feature_layer": "conv2", "flip_ratio": 0.4}
    assert vt.resolve_layers({"feature_layer": vt.LAST_CONV}, "alexnet") == {"feature_layer": "conv5"}
    assert vt.resolve_layers({"feature_layer": "fc1"}, "alexnet") == {"feature_layer": "fc1"}


@pytest.mark.parametrize("option, value, match", [("device", "gpu0", "not a device"),
                                                   ("arch", "resnet50", "not in the model zoo")])
def test_bad_options_refused_in_one_line(option, value, match):
    with pytest.raises(InvalidInputError, match=match) as info:
        vt.table3(**QUICK, **{option: value})
    assert "\n" not in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_refused_where_absent():
    with pytest.raises(InvalidInputError, match="no CUDA device"):
        vt.resolve_device("cuda")


def test_table3_on_each_device(device, tmp_path):
    result = vt.table3(**QUICK, device=str(device), checkpoint_dir=str(tmp_path))
    assert result.config["devices"] == {"digits": str(device)}
    row = result.tables["Table 3 (|SSIM| veiled vs original)"][0]
    assert 0 <= row["mean"] <= 1


def test_cli_passes_the_options(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(app, [
        "experiment", "veil-table3", "--data", "digits", "--quick", "--set", f"checkpoint_dir={tmp_path / 'ck'}",
        "--set", "device=cpu", "--set", "arch=lenet5", "--json", str(out / "t3.json")])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "t3.json").read_text())
    key = record["config"]["checkpoint_keys"]["digits"]
    assert (tmp_path / "ck" / key).is_dir() and [p.name for p in out.iterdir()] == ["t3.json"]
    assert "Table 3: the paper (MNIST) beside privis" in record["tables"]
