"""``privis evaluate``'s data handling: ranges honoured, sizes checked and recorded as used, and figures that
could not mean anything (one class, a split missing classes) refused before any training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from privis.cli.main import app
from privis.errors import DatasetError, InvalidInputError
from privis.experiments.evaluate import EvalConfig, evaluate, evaluate_protector, load_train_test
from privis.methods.baselines import GaussianNoise, Pixelate
from privis.privacy import dp_image_bounds

runner = CliRunner()


def _folder(root: Path, counts: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_a_range_in_the_data_spec_is_the_training_slice_and_is_recorded(tmp_path):
    out = tmp_path / "e.json"
    result = runner.invoke(app, ["evaluate", "blur", "--data", "digits:train[:100]", "--test-size", "60",
                                 "--epochs", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["summary"]["train_size"] == 100 and doc["summary"]["fit_size"] == 100
    assert doc["summary"]["test_size"] == 60
    assert doc["config"]["protocol"]["train_size"] == 100 and doc["config"]["protocol"]["test_size"] == 60
    assert doc["config"]["train"] == "digits:train[:100]" and doc["config"]["test"] == "digits:test[:60]"


@pytest.mark.parametrize(("data", "train_size", "expected"), [
    ("digits:train[100:300]", None, (100, 300)), ("digits:train[100:300]", 50, (100, 150)),
    ("digits", None, (0, 1347)), ("digits", 10_000, (0, 1347)), ("digits:train[1300:]", 10_000, (1300, 1347)),
])
def test_train_size_caps_the_range_and_every_image_is_the_one_asked_for(data, train_size, expected,
                                                                       digits_train):
    train, test = load_train_test(EvalConfig(data=data, train_size=train_size))
    start, stop = expected
    assert len(train) == stop - start and len(test) == 450
    assert (train.images - digits_train.images[start:stop]).abs().max() == 0


def test_sizes_are_recorded_as_used_not_as_asked():
    """The default asks for 10,000 training images; digits has 1,347: the report says 1,347."""
    result = evaluate("blur", EvalConfig(data="digits", epochs=1, test_size=100))
    assert result.summary["train_size"] == result.config["protocol"]["train_size"] == 1347
    assert result.summary["test_size"] == result.config["protocol"]["test_size"] == 100


@pytest.mark.parametrize("data", ["digits:train[5:2]", "digits:train[7:7]", "digits:train[:2000]",
                                  "digits:train[1347:]"])
def test_empty_reversed_or_out_of_range_slices_are_refused_by_name(data):
    result = runner.invoke(app, ["evaluate", "blur", "--data", data, "--epochs", "1"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and repr(data) in lines[0], result.output


def test_a_split_other_than_train_is_refused():
    with pytest.raises(InvalidInputError, match="trains on the train split"):
        load_train_test(EvalConfig(data="digits:test[:100]"))


@pytest.mark.parametrize("option", ["--train-size", "--test-size"])
@pytest.mark.parametrize("value", ["0", "-5"])
def test_zero_or_negative_sizes_are_refused(option, value):
    result = runner.invoke(app, ["evaluate", "blur", "--data", "digits", option, value])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        f"privis: error: {option} must be an integer >= 1 (leave it out for the default), got {int(value)}"]


def test_one_class_folder_is_refused_before_training(tmp_path):
    root = _folder(tmp_path / "one", {"cats": 12})
    result = runner.invoke(app, ["evaluate", "blur", "--data", f"folder:{root}", "--epochs", "1"])
    assert result.exit_code == 2, result.output  # a dataset that cannot be used is bad input (the exit rule)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "9 training and 3 test images hold 1 class(es)" in lines[0], result.output
    assert "1.0000" not in result.output


def test_a_split_lacking_a_class_of_the_other_is_refused_with_the_counts(tmp_path):
    root = _folder(tmp_path / "rare", {"common": 10, "rare": 1})  # the rare image lands in one split only
    with pytest.raises(DatasetError, match=r"8 training and 3 test images, but the (test|training) images lack "
                                           r"1 of the 2 (training|test) classes \(rare\)"):
        load_train_test(EvalConfig(data=f"folder:{root}"))
    with pytest.raises(DatasetError, match=r"the test images lack \d of the 10 training classes"):
        load_train_test(EvalConfig(data="digits", test_size=3))


class _NoisyDP(GaussianNoise):
    """Pixel noise that declares DP-Image's accountant inputs (the keys' plumbing, not a real DP claim)."""

    name = "noisy-dp"

    def dp_parameters(self):
        return {"mechanism": "dp-image", "sensitivity": 2.0, "sigma": 0.5, "steps": 10, "clip": 1.0,
                "clip_kind": "l2", "latent_dim": 64, "groups": 1, "perturbed_groups": [0], "lipschitz_bound": None}


def test_identity_and_frechet_keys_for_every_method_and_epsilon_only_for_dp_claims():
    cfg = EvalConfig(data="digits:train[:300]", epochs=1, test_size=120, dp_delta=1e-6)
    same = evaluate_protector(Pixelate(block=1), cfg).summary  # block 1 is the identity map
    assert same["iss_mean"] == pytest.approx(1.0, abs=1e-5) and same["fppsr"] == 0.0
    assert same["fd_privis"] == pytest.approx(0.0, abs=1e-6) and -1 <= same["identity_threshold"] <= 1
    assert "epsilon_claimed" not in same and "epsilon_post_processing" not in same
    noisy = evaluate_protector(_NoisyDP(sigma=0.5, random_state=0), cfg).summary
    assert noisy["iss_mean"] < same["iss_mean"] and noisy["fppsr"] > 0 and noisy["fd_privis"] > 0
    bounds = dp_image_bounds(sensitivity=2.0, sigma=0.5, steps=10, delta=1e-6)
    assert noisy["epsilon_claimed"] == bounds.claimed.epsilon
    assert noisy["epsilon_post_processing"] == bounds.post_processing.epsilon and noisy["dp_delta"] == 1e-6
    with pytest.raises(InvalidInputError, match="dp_delta"):
        EvalConfig(dp_delta=1.0)
