"""Shared fixtures: small real data (scikit-learn digits), a small trained LeNet-5 and the devices to test on."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("PRIVIS_NO_PROGRESS", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory, monkeypatch):
    """Every test's protect runs keep their owner-side state in a fresh temporary folder, never in the
    real cache folder of the user running the tests (subprocesses inherit the variable)."""
    monkeypatch.setenv("PRIVIS_STATE_DIR", str(tmp_path_factory.mktemp("privis-state")))


@pytest.fixture(scope="session")
def digits_train():
    from privis import data

    return data.load("digits:train")


@pytest.fixture(scope="session")
def digits_test():
    from privis import data

    return data.load("digits:test")


@pytest.fixture(scope="session")
def digits_lenet(digits_train):
    """LeNet-5 trained on digits (a few seconds): the owner's local model in Veil tests. It stays on the CPU
    (tests call it on CPU tensors); tests of other devices take the ``device`` fixture."""
    from privis import models

    torch.manual_seed(0)
    model = models.create("lenet5", num_classes=10, in_channels=1, image_size=8)
    models.train(model, digits_train.images, digits_train.labels, epochs=15, seed=0, device="cpu")
    model.eval()
    return model


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Every device this machine offers: the CPU always, CUDA where present (privis' default device there)."""
    if request.param == "cuda":
        torch.backends.cudnn.deterministic = True  # same seed, same output, also on the GPU
        torch.backends.cudnn.benchmark = False
    return torch.device(request.param)


@pytest.fixture(scope="session")
def quick_leaderboard():
    """The quick leaderboard on digits (about 10 s), run once for the tests that read it."""
    from privis import experiments

    return experiments.get("leaderboard").run(data="digits", quick=True, seed=0)


@pytest.fixture(scope="session")
def quick_demo():
    """The quick demo on small digits slices (a few seconds), run once for the tests that read it."""
    from privis.experiments.demo import demo

    return demo(data="digits", quick=True, seed=0, train_size=300, test_size=100)
