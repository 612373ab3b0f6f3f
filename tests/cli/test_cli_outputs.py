"""Every command checks its output paths against its inputs, and for writability, before any work."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from privis import data as pdata
from privis import models
from privis.cli.main import app

runner = CliRunner()
BIG_SEED = "7318905126447590213"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Small inputs of every kind a command reads: npz files, an image folder, checkpoints, a key."""
    root = tmp_path_factory.mktemp("inputs")
    digits = pdata.load("digits:train[:40]")
    pdata.write_npz(digits, root / "good.npz")
    pdata.write_npz(pdata.load("digits:test[:20]"), root / "test.npz")
    pdata.write_folder(digits, root / "imgs")
    models.save_checkpoint(models.create("lenet5", num_classes=10, in_channels=1, image_size=8), root / "model.pt")
    models.save_checkpoint(models.create("unet-perturbation", num_classes=1, in_channels=1, image_size=16, width=4),
                           root / "gen.pt")
    from privis.methods.visualmixer import generate_key

    generate_key(root / "owner.key")
    image = next(p for p in sorted((root / "imgs").rglob("*.png")))
    return {"good": root / "good.npz", "test": root / "test.npz", "imgs": root / "imgs", "img": image,
            "model": root / "model.pt", "gen": root / "gen.pt", "key": root / "owner.key"}


def checksums(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def cases(i: dict[str, Path]) -> list[list[str]]:
    good, test, imgs, img, model, gen, key = (str(i[k]) for k in ("good", "test", "imgs", "img", "model", "gen",
                                                                    "key"))
    elsewhere = str(i["good"].parent.parent / "elsewhere")
    return [
        ["evaluate", "blur", "--data", f"npz:{good}", "--json", good],
        ["evaluate", "blur", "--data", f"npz:{good}", "--report", good],
        ["evaluate", "blur", "--data", f"folder:{imgs}", "--report", img],
        ["evaluate", "veil", "--data", f"npz:{good}", "--param", f"local_model={model}", "--json", model],
        ["train", "--data", f"npz:{good}", "--out", good],
        ["train", "--data", f"npz:{good}", "--test", f"npz:{test}", "--out", test],
        ["train", "--data", f"folder:{imgs}", "--out", img],
        ["attack", "learned-inversion", "--method", "blur", "--data", f"npz:{good}", "--json", good],
        ["attack", "learned-inversion", "--method", "blur", "--data", f"folder:{imgs}", "--report", img],
        ["experiment", "veil-table2", "--data", f"npz:{good}", "--json", good],
        ["experiment", "veil-table2", "--data", f"npz:{good}", "--report", good],
        ["bench", "blur", "--json", imgs],  # bench reads no file: a folder is not a JSON file
        ["train-generator", "--data", f"npz:{good}", "--out", good],
        ["train-generator", "--data", f"npz:{good}", "--target", model, "--out", model],
        ["train-generator", "--data", f"npz:{good}", "--aux", model, "--out", f"{elsewhere}/g.pt"
         , "--target-out", model],
        ["unprotect", "visualmixer", "--key", key, "--data", f"folder:{imgs}", "--out", imgs],
        ["unprotect", "visualmixer", "--key", key, "--data", f"folder:{imgs}", "--out", f"{imgs}/restored"],
        ["unprotect", "visualmixer", "--key", key, "--data", f"npz:{good}", "--out", key],
        ["keygen", key],
        ["demo", "--out", good],
        ["protect", "blur", "--data", f"folder:{imgs}", "--out", imgs],
        ["protect", "blur", "--data", f"npz:{good}", "--out", good],
        ["protect", "veil", "--data", f"npz:{good}", "--fit-data", f"folder:{imgs}", "--out", f"{imgs}/o"],
        ["protect", "visualmixer", "--data", f"npz:{good}", "--param", f"key_file={key}", "--out", key],
        ["protect", "blur", "--data", f"folder:{imgs}", "--out", f"{elsewhere}/p", "--state-dir", f"{imgs}/s"],
        ["export", "--generator", gen, "--onnx", gen],
        ["export", "--generator", gen, "--torchscript", gen],
    ]


def test_every_output_flag_pointed_at_an_input_is_refused(inputs):
    root = inputs["good"].parent
    before = checksums(root)
    for args in cases(inputs):
        result = runner.invoke(app, args)
        assert result.exit_code != 0, (args, result.output)
        assert "Traceback" not in result.output and "privis: error:" in result.output, (args, result.output)
        assert any(why in result.output for why in ("input", "folder", "exists")), (args, result.output)
        assert checksums(root) == before, args
    assert not (root.parent / "elsewhere").exists()


def test_a_read_only_json_is_refused_before_any_work(tmp_path, monkeypatch):
    import privis.experiments.evaluate as evaluate

    def no_work(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(evaluate, "evaluate", no_work)
    target = tmp_path / "e.json"
    target.write_text("{}")
    target.chmod(0o444)
    result = runner.invoke(app, ["evaluate", "blur", "--data", "digits", "--json", str(target)])
    assert result.exit_code == 2 and "read-only" in result.output and ".tmp" not in result.output
    assert target.read_text() == "{}"


def test_protect_warns_once_about_a_guessable_seed(tmp_path):
    base = ["protect", "noise", "--data", "digits:train[:8]"]
    small = runner.invoke(app, [*base, "--out", str(tmp_path / "a"), "--seed", "7"])
    assert small.exit_code == 0, small.output
    assert len([ln for ln in small.stderr.splitlines() if "warning" in ln]) == 1 and "guessable" in small.stderr
    big = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--seed", BIG_SEED])
    assert big.exit_code == 0 and "warning" not in big.stderr
    plain = runner.invoke(app, ["protect", "blur", "--data", "digits:train[:8]", "--out", str(tmp_path / "c"),
                                "--seed", "7"])
    assert plain.exit_code == 0 and "warning" not in plain.stderr  # blur draws nothing at random


def test_a_bad_parameter_leaves_nothing_and_the_corrected_command_runs(tmp_path):
    out = tmp_path / "out"
    base = ["protect", "noise", "--data", "digits:train[:8]", "--out", str(out), "--seed", BIG_SEED]
    bad = runner.invoke(app, [*base, "--param", "sigma=-1"])
    assert bad.exit_code == 2 and "sigma" in bad.output
    assert not out.exists()
    good = runner.invoke(app, [*base, "--param", "sigma=0.1"])
    assert good.exit_code == 0, good.output
    assert len(pdata.load(f"folder:{out}")) == 8
    resumed = runner.invoke(app, [*base, "--param", "sigma=0.1", "--resume"])
    assert resumed.exit_code == 0 and "already done 8" in resumed.output


def test_builtin_fashion_mnist_files_are_inputs_too():
    from privis.data.idx import find_fashion_mnist

    found = find_fashion_mnist("test")
    if found is None:
        pytest.skip("Fashion-MNIST is not on this machine")
    before = hashlib.sha256(found[0].read_bytes()).hexdigest()
    result = runner.invoke(app, ["evaluate", "blur", "--data", "fashion-mnist:train[:10]", "--json", str(found[0])])
    assert result.exit_code == 2 and "is the input" in result.output
    assert hashlib.sha256(found[0].read_bytes()).hexdigest() == before


def test_a_state_root_set_to_an_input_folder_is_refused_before_any_work(inputs, tmp_path, monkeypatch):
    """$PRIVIS_STATE_DIR is an output location too: set to the input folder, the run would add its state
    folder and lock beside the classes (a new 'class' the next reader of the folder meets)."""
    imgs = inputs["imgs"]
    listing = sorted(p.name for p in imgs.iterdir())
    before = checksums(imgs)
    monkeypatch.setenv("PRIVIS_STATE_DIR", str(imgs))
    result = runner.invoke(app, ["protect", "blur", "--data", f"folder:{imgs}", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "inside the input folder" in result.output, result.output
    assert sorted(p.name for p in imgs.iterdir()) == listing and checksums(imgs) == before
    assert not (tmp_path / "o").exists()
    # a state root that merely holds the input folder is fine: the run's state is a folder of its own
    monkeypatch.setenv("PRIVIS_STATE_DIR", str(imgs.parent))
    result = runner.invoke(app, ["protect", "blur", "--data", f"folder:{imgs}", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in imgs.iterdir()) == listing and checksums(imgs) == before
