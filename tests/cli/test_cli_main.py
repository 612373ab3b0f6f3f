"""The privis command end to end on digits: exit codes, one-line errors, JSON/HTML outputs."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from privis.cli.main import app, exit_code, handle_errors, parse_params
from privis.errors import DatasetError, ImageFileError, InvalidInputError, PrivisError

runner = CliRunner()


def test_listing_commands():
    for cmd, expected in [("methods", "veil"), ("datasets", "digits"), ("models", "lenet5"),
                          ("experiments", "veil-table2")]:
        result = runner.invoke(app, [cmd])
        assert result.exit_code == 0, result.output
        assert expected in result.output


def test_help_explains_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("demo", "protect", "evaluate", "experiment", "train"):
        assert cmd in result.output


def test_evaluate_veil_on_digits_writes_json_and_report(tmp_path):
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    result = runner.invoke(app, ["evaluate", "veil", "--data", "digits", "--epochs", "3", "--param", "steps=20",
                                 "--param", "local_epochs=2", "--json", str(out_json), "--report", str(out_html)])
    assert result.exit_code == 0, result.output
    summary = json.loads(out_json.read_text())["summary"]
    for key in ("baseline_acc_original", "baseline_acc_protected", "protected_acc_original",
                "protected_acc_protected", "ssim_mean", "stop_reached_fraction", "images_per_second",
                "peak_rss_mb"):
        assert key in summary
        assert summary[key] == summary[key]  # not NaN
    for key in ("baseline_acc_original", "protected_acc_protected", "stop_reached_fraction"):
        assert 0.0 <= summary[key] <= 1.0
    html = out_html.read_text()
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html
    assert "baseline_acc_original" in html


def test_protect_then_read_back(tmp_path):
    out = tmp_path / "veiled"
    result = runner.invoke(app, ["protect", "veil", "--data", "digits:test[:40]", "--fit-data", "digits:train",
                                 "--out", str(out), "--seed", "0", "--param", "steps=10", "--param", "local_epochs=1"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["items"]) == 40
    assert manifest["extra"]["method"] == "veil"
    from privis import data

    back = data.load(f"folder:{out}")
    assert len(back) == 40 and back.images.shape[1:] == (1, 8, 8)


def test_train_and_use_checkpoint(tmp_path):
    ckpt = tmp_path / "m.pt"
    result = runner.invoke(app, ["train", "--data", "digits:train", "--model", "lenet5", "--epochs", "2",
                                 "--out", str(ckpt), "--test", "digits:test"])
    assert result.exit_code == 0, result.output
    assert ckpt.is_file() and "test accuracy" in result.output
    result = runner.invoke(app, ["evaluate", "veil", "--data", "digits", "--epochs", "1", "--param",
                                 f"local_model={ckpt}", "--param", "steps=5"])
    assert result.exit_code == 0, result.output


def test_errors_are_one_line_with_exit_codes(tmp_path):
    """One rule for every error type: 2 for bad input (a bad spec, folder or file included), 1 for a failure.
    An empty folder and a broken image file are bad input: they exit 2 (they exited 1 before the rule)."""
    result = runner.invoke(app, ["evaluate", "nope", "--data", "digits"])
    assert result.exit_code == 2 and "unknown method" in result.output
    data = tmp_path / "in"  # the output folder is outside the input: an output inside it is refused first
    data.mkdir()
    result = runner.invoke(app, ["protect", "veil", "--data", f"folder:{data}", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "error" in result.output
    bad = data / "cls"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = runner.invoke(app, ["protect", "veil", "--data", f"folder:{data}", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "broken.png" in result.output
    result = runner.invoke(app, ["evaluate", "veil", "--data", "digits", "--param", "flip_ratio=2"])
    assert result.exit_code == 2 and "flip_ratio" in result.output


@pytest.mark.parametrize(("error", "code", "line"), [
    (InvalidInputError("bad option"), 2, "bad option"),
    (DatasetError("no such dataset 'x'"), 2, "no such dataset 'x'"),
    (ImageFileError("a/b.png", "truncated"), 2, "bad image file a/b.png: truncated"),
    (FloatingPointError("training diverged"), 1, "numerical failure: training diverged"),
    (PrivisError("cannot serve on host:1"), 1, "cannot serve on host:1"),
    (OSError(28, "No space left on device"), 1, "OSError: [Errno 28] No space left on device"),
    (MemoryError("out of memory"), 1, "MemoryError: out of memory"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_each_error_type_gets_the_exit_code_of_the_rule(error, code, line, capsys):
    """2 = bad input (usage, a bad spec, a bad file), 1 = a failure of the work, 130 = interrupted; the message is
    one stderr line."""

    @handle_errors
    def command() -> None:
        raise error

    with pytest.raises(typer.Exit) as info:
        command()
    assert info.value.exit_code == code
    if not isinstance(error, KeyboardInterrupt):
        assert exit_code(error) == code
    assert capsys.readouterr().err.splitlines() == [f"privis: error: {line}"]


def test_help_states_the_exit_code_rule():
    result = runner.invoke(app, ["--help"])
    text = " ".join(result.output.split())
    assert result.exit_code == 0
    assert "2 bad input" in text and "1 failure" in text and "image file" in text


def test_train_exit_codes_follow_the_rule(tmp_path):
    """A bad dataset spec, an unknown architecture and test data of another size are bad input (2), one line
    each, and no checkpoint is written."""
    out = tmp_path / "m.pt"
    for args, words in ((["--data", "nosuchset"], "nosuchset"),
                        (["--data", "digits:train[:50]", "--model", "nosuchnet"], "nosuchnet"),
                        (["--data", "digits:train[:50]", "--test", "lfw-subset:test[:10]"], "test data")):
        result = runner.invoke(app, ["train", *args, "--epochs", "1", "--out", str(out)])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], result.output
        assert not out.exists()


def test_train_writes_a_checkpoint_of_the_seeded_model(tmp_path):
    """`privis train` is models.train_from_spec: the same seed gives the same weights, and the checkpoint holds the
    trained model and its class names."""
    from privis.models import load_checkpoint, train_from_spec

    runs = [train_from_spec("digits:train[:60]", tmp_path / f"{i}.pt", epochs=1, seed=5) for i in range(2)]
    for a, b in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    loaded, info = load_checkpoint(tmp_path / "0.pt")
    assert info["extra"]["class_names"] == [str(i) for i in range(10)] and runs[0].train_size == 60
    for a, b in zip(loaded.state_dict().values(), runs[0].model.state_dict().values(), strict=True):
        assert torch.equal(a, b.cpu())
    result = runner.invoke(app, ["train", "--data", "digits:train[:60]", "--epochs", "1", "--seed", "5",
                                 "--out", str(tmp_path / "cli.pt")])
    assert result.exit_code == 0, result.output
    assert f"train accuracy {runs[0].train_acc:.4f}" in result.output


def test_parse_params():
    assert parse_params(["steps=10", "optimizer=sgd", "step-size=0.5", "flag=True"]) == {
        "steps": 10, "optimizer": "sgd", "step_size": 0.5, "flag": True}
    with pytest.raises(InvalidInputError):
        parse_params(["novalue"])


def test_evaluate_visualmixer_puts_the_cell_sort_in_front_of_the_service_model(tmp_path):
    """On 8x8 digits the shuffle is 2x2 cells; behind the cell sort the service model sees one image per
    original, so it does not lose to the bare model trained on the same shuffled data."""
    accs = {}
    for flag, expected in (("--service-layer", "WindowSort(window=2)"), ("--no-service-layer", None)):
        out = tmp_path / f"{flag}.json"
        result = runner.invoke(app, ["evaluate", "visualmixer", "--data", "digits", "--epochs", "8", flag,
                                     "--json", str(out)])
        assert result.exit_code == 0, result.output
        doc = json.loads(out.read_text())
        assert doc["config"]["service_input_layer"] == expected
        assert doc["config"]["protocol"]["service_layer"] is (flag == "--service-layer")
        accs[flag] = doc["summary"]["protected_acc_protected"]
    assert accs["--service-layer"] >= accs["--no-service-layer"]


def test_parse_params_without_a_class_refuses_non_finite_numbers():
    for pair in ("sigma=1e400", "bank=[('tv', 1e999)]", "w=-1e999"):
        with pytest.raises(InvalidInputError, match="finite"):
            parse_params([pair])
    from privis.methods.baselines import GaussianBlur

    with pytest.raises(InvalidInputError, match="blur: parameter sigma must be a finite number"):
        parse_params(["sigma=nan"], GaussianBlur)


def test_experiment_sizes_below_one_are_refused():
    result = runner.invoke(app, ["experiment", "veil-table2", "--train-size", "0"])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        "privis: error: --train-size must be an integer >= 1 (leave it out for the default), got 0"]


def test_a_parameter_given_twice_is_refused_before_any_work(tmp_path):
    from privis.methods.baselines import GaussianBlur

    for pairs in (["sigma=1", "sigma=2"], ["sigma=1", " sigma =1"]):
        for cls in (GaussianBlur, None):
            with pytest.raises(InvalidInputError, match="sigma is given twice"):
                parse_params(pairs, cls)
    out = tmp_path / "out"
    result = runner.invoke(app, ["protect", "blur", "--data", "digits[:4]", "--out", str(out), "--param", "sigma=1",
                                 "--param", "sigma=2"])
    assert result.exit_code == 2 and "given twice" in result.output and not out.exists()


def test_a_warning_is_one_line_without_source_code(tmp_path):
    """Keyed VisualMixer on digits (finer than 8 bits) warns; a user sees one line, not privis' source."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    privis = str(Path(sys.executable).with_name("privis"))
    env = {**os.environ, "PRIVIS_NO_PROGRESS": "1"}
    key = tmp_path / "k.key"
    assert subprocess.run([privis, "keygen", str(key)], env=env, capture_output=True).returncode == 0
    proc = subprocess.run([privis, "protect", "visualmixer", "--data", "digits[:3]", "--out", str(tmp_path / "out"),
                           "--param", f"key_file={key}"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and all(line.startswith("privis: warning: ") for line in lines), proc.stderr
    assert "8 bits" in proc.stderr and ".py" not in proc.stderr


@pytest.mark.parametrize("command", [["train", "--data", "digits[:20]", "--epochs", "1"],
                                     ["protect", "blur", "--data", "digits[:3]"],
                                     ["train-generator", "--data", "digits[:20]"],
                                     ["evaluate", "blur", "--data", "digits"]])
@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_a_seed_outside_what_torch_accepts_is_refused_before_any_work(tmp_path, command, seed):
    """Seeds are integers in [0, 2**63 - 1] for every command (train --seed 2**64 ended in a traceback)."""
    out = tmp_path / "out"
    result = runner.invoke(app, [*command, "--out" if command[0] != "evaluate" else "--json", str(out),
                                 "--seed", seed])
    assert result.exit_code == 2, result.output
    assert "--seed" in result.output and "Traceback" not in result.output and not out.exists()


@pytest.mark.parametrize("command", [["train", "--epochs", "1"], ["train-generator", "--param", "epochs=1"]])
def test_training_on_one_class_is_refused_and_writes_nothing(tmp_path, command):
    """A one-class classifier reports accuracy 1.0 (and a generator's loss against it diverges)."""
    import numpy as np

    data = tmp_path / "one.npz"
    np.savez(data, images=np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32),
             labels=np.zeros(40, dtype=np.int64))
    out = tmp_path / "m.pt"
    result = runner.invoke(app, [*command, "--data", f"npz:{data}", "--out", str(out)])
    assert result.exit_code == 2, result.output  # bad input (a DatasetError), by the one exit-code rule
    assert "hold 1 class" in result.output and "Traceback" not in result.output and not out.exists()


class _DemoStartedError(Exception):
    pass


def test_demo_never_replaces_a_users_file_of_its_output_names(tmp_path, monkeypatch):
    """demo writes OUT/results.json and OUT/report.html: files of those names privis did not write are refused
    before any work; a previous demo's files are replaced as before."""
    import privis.experiments.demo as demo_module

    def started(*args, **kwargs):
        raise _DemoStartedError

    monkeypatch.setattr(demo_module, "run_demo", started)
    out = tmp_path / "docs"
    out.mkdir()
    (out / "report.html").write_text("<html><title>my thesis figures</title></html>")
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 2 and "report.html" in result.output and "not written by privis" in result.output
    assert (out / "report.html").read_text() == "<html><title>my thesis figures</title></html>"
    (out / "report.html").write_text("<!doctype html>\n<html lang=\"en\"><head><title>privis: demo</title>")
    (out / "results.json").write_text(json.dumps({"name": "demo", "summary": {"acc": 0.5}}))
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert isinstance(result.exception, _DemoStartedError), result.output


def _commands():
    """Every privis command (click objects), for the tests that cover each one."""
    import typer.main

    return typer.main.get_command(app).commands


def _flags():
    return [(name, param) for name, command in _commands().items() for param in command.params
            if getattr(param, "is_flag", False)]


def test_every_boolean_option_is_a_flag_in_the_help():
    flags = _flags()
    assert {"--resume", "--force", "--skip-bad", "--allow-lossy", "--quick", "--overwrite",
            "--service-layer"} <= {p.opts[0] for _, p in flags}
    for name in _commands():
        help_text = runner.invoke(app, [name, "--help"]).output
        assert "<bool>" not in help_text.lower() and "boolean" not in help_text.lower(), name


@pytest.mark.parametrize("form", ["--{} true", "--{} false", "--{}=yes", "--{} 0"])
def test_a_value_after_any_flag_is_one_clear_line_and_exit_2(form):
    for command, param in _flags():
        flag = param.opts[0].lstrip("-")
        result = runner.invoke(app, [command, *form.format(flag).split()])
        assert result.exit_code == 2, (command, flag, result.output)
        line = result.output.strip()
        assert line.startswith(f"privis: error: --{flag} is a flag and takes no value"), line
        assert line.endswith("(leave it out for off)" if not param.secondary_opts else param.secondary_opts[0])


def test_a_flag_before_a_positional_argument_still_works(tmp_path):
    result = runner.invoke(app, ["keygen", "--overwrite", str(tmp_path / "k.key")])
    assert result.exit_code == 0, result.output


def test_error_lines_spell_options_as_the_command_line_does(tmp_path):
    from privis.cli.main import cli_spelling

    spell = {"overwrite": "--overwrite", "batch_size": "--batch-size", "skip_bad": "--skip-bad"}
    assert cli_spelling("pass overwrite=True to replace it", spell) == "pass --overwrite to replace it"
    assert cli_spelling("batch_size must be >= 1 (skip_bad=False)", spell) == (
        "--batch-size must be >= 1 (no --skip-bad)")
    assert cli_spelling("veil: parameter batch_size must be an integer; --param batch_size=2", spell) == (
        "veil: parameter batch_size must be an integer; --param batch_size=2")
    key = tmp_path / "k.key"
    assert runner.invoke(app, ["keygen", str(key)]).exit_code == 0
    again = runner.invoke(app, ["keygen", str(key)])
    assert again.exit_code == 2 and "pass --overwrite to replace it" in again.output, again.output
    protected, restored = tmp_path / "vm", tmp_path / "restored"
    assert runner.invoke(app, ["protect", "visualmixer", "--data", "digits:test[:8]", "--out", str(protected),
                               "--param", f"key_file={key}"]).exit_code == 0
    args = ["unprotect", "visualmixer", "--data", f"folder:{protected}", "--out", str(restored), "--key", str(key)]
    assert runner.invoke(app, args).exit_code == 0
    second = runner.invoke(app, args)
    assert second.exit_code == 2 and "--overwrite" in second.output and "overwrite=True" not in second.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_train_generator_takes_epochs(monkeypatch, tmp_path):
    import privis.methods.perturbation as pp

    seen = {}

    def fake(data, out, **kwargs):
        seen.update(kwargs["params"])
        raise InvalidInputError("stop here")

    monkeypatch.setattr(pp, "train_generator_from_spec", fake)
    base = ["train-generator", "--data", "digits", "--out", str(tmp_path / "g.pt")]
    result = runner.invoke(app, [*base, "--epochs", "3"])
    assert result.exit_code == 2 and seen["epochs"] == 3, result.output
    assert runner.invoke(app, [*base, "--epochs", "0"]).exit_code == 2
    both = runner.invoke(app, [*base, "--epochs", "3", "--param", "epochs=4"])
    assert both.exit_code == 2 and "--epochs or --param epochs=, not both" in both.output
    assert "--epochs" in runner.invoke(app, ["train-generator", "--help"]).output


def test_experiment_set_passes_keyword_options_and_refuses_unknown_or_reserved_ones(tmp_path):
    out = tmp_path / "eps.json"
    ok = runner.invoke(app, ["experiment", "dp-image-epsilon", "--quick", "--data", "digits", "--set", "sigma=0.6",
                             "--set", "max_steps=100", "--json", str(out)])
    assert ok.exit_code == 0, ok.output
    config = json.loads(out.read_text())["config"]
    assert config["sigma"] == 0.6 and max(config["steps"]) == 100
    unknown = runner.invoke(app, ["experiment", "dp-image-epsilon", "--set", "bogus=1"])
    assert unknown.exit_code == 2 and "takes no option 'bogus'" in unknown.output and "sigma" in unknown.output
    reserved = runner.invoke(app, ["experiment", "dp-image-epsilon", "--set", "seed=3"])
    assert reserved.exit_code == 2 and "use --seed" in reserved.output
    malformed = runner.invoke(app, ["experiment", "dp-image-epsilon", "--set", "sigma"])
    assert malformed.exit_code == 2 and "KEY=VALUE" in malformed.output
