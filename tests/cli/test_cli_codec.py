"""``privis train-codec``: trains, scores on held-out images, writes the codec, refuses to overwrite."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from privis.cli.main import app
from privis.latent import ContractiveCodec, DiffusionAutoencoder, load_codec

runner = CliRunner()


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_train_codec_writes_a_loadable_codec_and_its_figures(tmp_path):
    out, report = tmp_path / "codec.pt", tmp_path / "codec.json"
    res = _run("train-codec", "--data", "digits:train[:48]", "--out", out, "--kind", "contractive", "--epochs", 1,
               "--test-size", 16, "--json", report)
    assert res.exit_code == 0, res.output
    assert "Codec reconstruction: mean |SSIM|" in res.output and "↑" in res.output and f"wrote {out}" in res.output
    codec = load_codec(out)
    assert isinstance(codec, ContractiveCodec)
    summary = json.loads(report.read_text())["summary"]
    assert 0.0 < summary["certified_bound"] <= 1.0 + 1e-6
    assert summary["pair_ratio_max"] <= summary["certified_bound"] * (1 + 1e-5)
    assert codec.extra["reconstruction_ssim_mean"] == summary["reconstruction_ssim_mean"]
    config = json.loads(report.read_text())["config"]
    assert config["held_out"] == "digits:test[:16]" and config["train_images"] == 48

    before = out.read_bytes()
    res = _run("train-codec", "--data", "digits:train[:48]", "--out", out, "--epochs", 1)
    assert res.exit_code == 2 and "--overwrite" in res.output and out.read_bytes() == before
    res = _run("train-codec", "--data", "digits:train[:48]", "--out", out, "--epochs", 1, "--test-size", 8,
               "--overwrite")
    assert res.exit_code == 0, res.output
    assert out.read_bytes() != before


def test_train_codec_refuses_bad_kind_and_data_before_work(tmp_path):
    out = tmp_path / "codec.pt"
    res = _run("train-codec", "--data", "digits", "--out", out, "--kind", "vae")
    assert res.exit_code == 2 and "--kind must be one of autoencoder, contractive" in res.output
    res = _run("train-codec", "--data", "nosuch", "--out", out)
    assert res.exit_code == 2 and not out.exists()


def test_train_codec_diffae_reports_reconstruction_from_both_codes(tmp_path):
    out, report = tmp_path / "diffae.pt", tmp_path / "diffae.json"
    res = _run("train-codec", "--data", "digits:train[:32]", "--out", out, "--kind", "diffae", "--epochs", 1,
               "--test-size", 8, "--steps", 3, "--base", 4, "--density", "gaussian", "--json", report)
    assert res.exit_code == 0, res.output
    codec = load_codec(out)
    assert isinstance(codec, DiffusionAutoencoder) and codec.steps == 3 and codec.density.kind == "gaussian"
    summary = json.loads(report.read_text())["summary"]
    assert {"reconstruction_ssim_mean", "semantic_ssim_mean", "train_seconds"} <= set(summary)
    assert "jacobian_max" not in summary and codec.extra["steps"] == 3


def test_train_codec_refuses_bad_diffae_flags_in_one_line(tmp_path):
    out = tmp_path / "codec.pt"
    for args, words in ((("--kind", "diffae", "--steps", 0), "--steps must be an integer in [1, 1000]"),
                        (("--kind", "diffae", "--steps", 5000), "--steps must be an integer in [1, 1000]"),
                        (("--kind", "diffae", "--density", "flow"), "--density must be one of gaussian, gmm"),
                        (("--steps", 10), "--steps applies to --kind diffae only"),
                        (("--kind", "contractive", "--base", 8), "--base applies to")):
        res = _run("train-codec", "--data", "digits", "--out", out, *args)
        assert res.exit_code == 2 and words in res.output and len(res.output.strip().splitlines()) == 1, res.output
        assert not out.exists()
