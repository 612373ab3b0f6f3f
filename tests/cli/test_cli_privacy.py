"""``privis privacy dp-image``: the printed table, the JSON summary, the codec's verdict, bad values."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from privis import latent
from privis.cli.main import app
from privis.privacy.rdp import gaussian_epsilon, sigma_for_epsilon

runner = CliRunner()
THESIS = ["privacy", "dp-image", "--sigma", "0.2", "--steps", "100000", "--delta", "1e-8"]


def test_thesis_setting_prints_both_bounds_and_writes_the_summary(tmp_path):
    out = tmp_path / "dp.json"
    result = runner.invoke(app, [*THESIS, "--clip", "20", "--latent-dim", "9216", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "2211.73" in result.output and "1.84437e+08" in result.output  # claimed, post-processing
    assert "1-Lipschitz" in result.output and "unverified" in result.output
    summary = json.loads(out.read_text())["summary"]
    assert summary["sensitivity"] == 3840.0 and summary["steps"] == 100000
    alpha = summary["alpha_claimed"]
    assert summary["epsilon_claimed"] == pytest.approx(alpha * 3840**2 / (2e5 * 0.04) + math.log(1e8) / (alpha - 1))
    assert summary["epsilon_post_processing"] == pytest.approx(gaussian_epsilon(3840.0, 0.2, 1e-8).epsilon)
    assert summary["epsilon_claimed_tight"] <= summary["epsilon_claimed"]
    assert summary["epsilon_post_processing_tight"] <= summary["epsilon_post_processing"]
    assert {"alpha_post_processing", "sigma", "delta"} <= set(summary)


def test_target_epsilon_prints_the_sigma_needed(tmp_path):
    out = tmp_path / "dp.json"
    result = runner.invoke(app, [*THESIS, "--sensitivity", "3840", "--epsilon", "10", "--json", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())["summary"]
    expected = sigma_for_epsilon(10.0, 1e-8, sensitivity=3840.0, steps=100000, bound="claimed")
    assert summary["sigma_needed_claimed"] == pytest.approx(expected, rel=1e-12)
    assert f"{expected:.6g}" in result.output


@pytest.mark.parametrize(("estimate", "certified", "verdict"), [
    (3.2, None, "not supported"), (0.8, None, "supported by measurement"), (1.4, 0.95, "certified")])
def test_codec_measurement_decides_the_verdict(tmp_path, monkeypatch, estimate, certified, verdict):
    codec_file = tmp_path / "codec.pt"
    codec_file.write_bytes(b"stand-in")
    seen = {}

    def load_codec(path):
        seen["path"] = path
        return SimpleNamespace(latent_dim=16)

    def measure_lipschitz(codec, random_state=None):
        seen["seed"] = random_state
        return SimpleNamespace(estimate=estimate, jacobian_max=estimate, pair_ratio_max=estimate * 0.9,
                               certified_bound=certified)

    monkeypatch.setattr(latent, "load_codec", load_codec, raising=False)
    monkeypatch.setattr(latent, "measure_lipschitz", measure_lipschitz, raising=False)
    out = tmp_path / "dp.json"
    result = runner.invoke(app, ["privacy", "dp-image", "--clip", "1", "--sigma", "1", "--steps", "10", "--delta",
                                 "1e-5", "--codec", str(codec_file), "--seed", "7", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert f"verdict on the claimed bound: {verdict}" in result.output
    record = json.loads(out.read_text())
    assert record["config"]["verdict"] == verdict and record["summary"]["sensitivity"] == 8.0  # 2 * 1 * sqrt(16)
    assert record["summary"]["lipschitz_estimate"] == estimate and seen == {"path": codec_file, "seed": 7}


@pytest.mark.parametrize(("changes", "message"), [
    ({"--sigma": "0"}, "sigma"), ({"--delta": "1.5"}, "delta"), ({"--steps": "0"}, "steps"),
    ({"--sigma": "nan"}, "sigma"), ({"--epsilon": "-1"}, "epsilon"), ({"--clip": "1"}, "not both"),
    ({"--sensitivity": None, "--clip": "1", "--latent-dim": "4", "--clip-kind": "linf"}, "clip_kind")])
def test_bad_values_exit_2_with_one_line(changes, message):
    given = {"--sigma": "1", "--steps": "3", "--delta": "1e-5", "--sensitivity": "2", **changes}
    result = runner.invoke(app, ["privacy", "dp-image", *[x for kv in given.items() if kv[1] is not None for x in kv]])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("privis: error:")]
    assert len(errors) == 1 and message in errors[0]


def test_missing_sensitivity_and_missing_codec_are_usage_errors(tmp_path):
    result = runner.invoke(app, ["privacy", "dp-image", "--sigma", "1", "--steps", "3", "--delta", "1e-5"])
    assert result.exit_code == 2 and "--sensitivity" in result.output
    result = runner.invoke(app, ["privacy", "dp-image", "--sigma", "1", "--steps", "3", "--delta", "1e-5", "--clip",
                                 "1"])
    assert result.exit_code == 2 and "--latent-dim" in result.output
    result = runner.invoke(app, [*THESIS, "--sensitivity", "1", "--codec", str(tmp_path / "none.pt")])
    assert result.exit_code == 2 and "codec not found" in result.output


def test_bad_values_are_refused_before_the_codec_is_measured(tmp_path, monkeypatch):
    codec_file = tmp_path / "codec.pt"
    codec_file.write_bytes(b"stand-in")
    measured = []
    monkeypatch.setattr(latent, "load_codec", lambda path: SimpleNamespace(latent_dim=4), raising=False)
    monkeypatch.setattr(latent, "measure_lipschitz", lambda codec, random_state=None: measured.append(1),
                        raising=False)
    result = runner.invoke(app, ["privacy", "dp-image", "--sensitivity", "1", "--sigma", "-1", "--steps", "3",
                                 "--delta", "1e-5", "--codec", str(codec_file)])
    assert result.exit_code == 2 and "sigma" in result.output and measured == []
