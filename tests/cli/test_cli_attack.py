"""``privis attack`` and ``privis attacks`` end to end on digits."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from privis.cli.main import app

runner = CliRunner()
SMALL = ["--data", "digits", "--train-size", "150", "--test-size", "60", "--aux-size", "100", "--attack-size", "40"]


def test_attacks_lists_every_attack():
    result = runner.invoke(app, ["attacks"])
    assert result.exit_code == 0
    for name in ("filters", "learned-inversion", "invariants", "shredder", "auxiliary-recognition",
                 "model-inversion", "membership-inference"):
        assert name in result.output
    assert "keyspace" not in result.output  # an analysis (privis.privacy.keyspace_analysis), not an attack


def test_attack_writes_json_and_report(tmp_path):
    out_json, out_html = tmp_path / "a.json", tmp_path / "a.html"
    result = runner.invoke(app, ["attack", "invariants", "--method", "veil", *SMALL, "--param", "steps=5",
                                 "--param", "local_epochs=1", "--json", str(out_json), "--report", str(out_html)])
    assert result.exit_code == 0, result.output
    data = json.loads(out_json.read_text())
    assert data["config"]["method"] == "veil" and data["config"]["attack_size"] == 40
    assert data["summary"]["ssim_mean"] > data["summary"]["ssim_protected"]
    assert "data:image/png;base64," in out_html.read_text()


def test_attack_usage_errors_fail_before_any_training():
    result = runner.invoke(app, ["attack", "nope", "--method", "blur", *SMALL])
    assert result.exit_code == 2 and "unknown attack 'nope'" in result.output
    result = runner.invoke(app, ["attack", "shredder", "--method", "blur", *SMALL, "--attack-param", "turns=2"])
    assert result.exit_code == 2 and "turns" in result.output


def test_attacks_command_lists_one_attacks_parameters_and_bad_values_are_one_line():
    result = runner.invoke(app, ["attacks", "model-inversion"])
    assert result.exit_code == 0, result.output
    assert re.search(r"\n  steps +an integer in \[1, 100000\]; default 300\n", result.output), result.output
    bad = runner.invoke(app, ["attack", "model-inversion", "--method", "blur", *SMALL, "--attack-param", "lr=nan"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert bad.stderr.strip().splitlines() == [
        "privis: error: model-inversion: parameter lr must be a finite number in (0, 100], got 'nan'"]
