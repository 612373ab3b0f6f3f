"""ClassifierIdentity (penultimate embedding, equal-error-rate calibration) and TorchScriptIdentity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_curve
from torch import nn

from privis.errors import InvalidInputError
from privis.identity import ClassifierIdentity, TorchScriptIdentity, equal_error_threshold


def test_separated_scores_give_zero_error():
    threshold, eer = equal_error_threshold(torch.tensor([0.9, 0.8, 0.95], dtype=torch.float64),
                                           torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64))
    assert eer == 0.0 and 0.2 < threshold <= 0.8
    # a distance flips the sides: same identity below the threshold
    threshold, eer = equal_error_threshold(torch.tensor([0.1, 0.2]).double(), torch.tensor([0.9, 1.5]).double(),
                                           metric="euclidean")
    assert eer == 0.0 and 0.2 <= threshold < 0.9


def test_equal_error_rate_matches_sklearn_roc():
    rng = np.random.default_rng(0)
    same, diff = rng.normal(1.0, 1.0, 400), rng.normal(0.0, 1.0, 600)
    threshold, eer = equal_error_threshold(torch.from_numpy(same), torch.from_numpy(diff))
    fpr, tpr, _ = roc_curve(np.r_[np.ones(400), np.zeros(600)], np.r_[same, diff])
    sk_eer = float(np.min(np.maximum(fpr, 1 - tpr)))  # the ROC point nearest FAR = FRR
    assert eer == pytest.approx(sk_eer, abs=2 / 400)
    # two unit-variance Gaussians one apart: the EER threshold is near the midpoint, EER = Phi(-1/2) = 0.3085
    assert threshold == pytest.approx(0.5, abs=0.15) and eer == pytest.approx(0.3085, abs=0.04)
    far, frr = float((diff >= threshold).mean()), float((same < threshold).mean())
    assert abs(far - frr) <= 0.01 and (far + frr) / 2 == pytest.approx(eer)


@pytest.mark.parametrize("same, diff", [(torch.tensor([]), torch.tensor([0.1])),
                                        (torch.tensor([float("nan")]), torch.tensor([0.1]))])
def test_bad_scores_refused(same, diff):
    with pytest.raises(InvalidInputError, match="finite"):
        equal_error_threshold(same, diff)


def test_classifier_identity_embeds_and_calibrates(digits_lenet, digits_test, device):
    ident = ClassifierIdentity(digits_lenet.to(device))
    try:
        x = digits_test.images[:300].to(device)
        labels = digits_test.labels[:300]
        assert ident.features.layer == "fc2" and ident.metric == "cosine" and ident.threshold == 0.31
        emb = ident.embed(x)
        assert emb.shape == (300, 84) and emb.device.type == device.type
        # differentiable w.r.t. the images
        probe = x[:4].clone().requires_grad_(True)
        ident.embed(probe).sum().backward()
        assert probe.grad is not None and float(probe.grad.abs().sum()) > 0
        threshold = ident.calibrate(x, labels)
        assert threshold == ident.threshold and -1.0 <= threshold <= 1.0
        assert ident.eer is not None and ident.eer < 0.2  # a trained digits classifier separates classes
        # embeddings are centred on the calibration images' mean activation from now on
        centred = ident.embed(x).detach()
        assert torch.allclose(centred, emb.detach() - emb.detach().mean(0), atol=1e-4)
        assert float(centred.mean(0).abs().max()) < 1e-4
        # the threshold agrees with the FAR/FRR it was chosen by
        e = nn.functional.normalize(centred.double(), dim=1)
        sims = e @ e.T
        i, j = torch.triu_indices(300, 300, offset=1)
        genuine = (labels[i] == labels[j]).to(device)
        far = float((sims[i, j][~genuine] >= threshold).double().mean())
        frr = float((sims[i, j][genuine] < threshold).double().mean())
        assert (far + frr) / 2 == pytest.approx(ident.eer, abs=1e-6) and abs(far - frr) < 0.02
    finally:
        digits_lenet.to("cpu")


def test_classifier_identity_refusals(digits_lenet, digits_test):
    with pytest.raises(InvalidInputError, match="unknown layer"):
        ClassifierIdentity(digits_lenet, "nope")
    with pytest.raises(InvalidInputError, match="no layer before a final"):
        ClassifierIdentity(nn.Sequential(nn.Flatten(), nn.ReLU()))
    ident = ClassifierIdentity(digits_lenet, image_shape=(1, 8, 8))
    with pytest.raises(InvalidInputError, match="expects images of shape"):
        ident.embed(torch.zeros(2, 1, 9, 9))
    with pytest.raises(InvalidInputError, match="two different labels"):
        ident.calibrate(digits_test.images[:5], torch.zeros(5, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="labels must be an integer"):
        ident.calibrate(digits_test.images[:5], torch.zeros(5))


class _Arc(nn.Module):
    """A stand-in face embedder: a fixed linear map of the flattened image."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_torchscript_identity_loads_a_scripted_model(tmp_path, device):
    model = _Arc().eval()
    path = tmp_path / "arc.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    ident = TorchScriptIdentity(path, "cosine", 0.31, (3, 8, 8)).to(device)
    x = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        expected = model.to(device)(x)
    assert torch.allclose(ident.embed(x), expected, atol=1e-6)
    assert torch.allclose(ident.score(ident.embed(x), ident.embed(x)), torch.ones(5, device=device), atol=1e-6)
    with pytest.raises(InvalidInputError, match=r"expects images of shape \(N, 3, 8, 8\)"):
        ident.embed(torch.rand(2, 3, 9, 9, device=device))
    dist = TorchScriptIdentity(path, "euclidean", 0.6)
    assert dist.same_identity(torch.tensor([0.5, 0.7])).tolist() == [True, False]


@pytest.mark.parametrize("kwargs, match", [({"metric": "l1"}, "metric must be"),
                                           ({"threshold": float("inf")}, "threshold must be"),
                                           ({"image_shape": (3, 8)}, "image_shape must be")])
def test_torchscript_identity_refusals(tmp_path, kwargs, match):
    path = tmp_path / "arc.pt"
    torch.jit.save(torch.jit.script(_Arc()), str(path))
    with pytest.raises(InvalidInputError, match=match):
        TorchScriptIdentity(path, **kwargs)
    with pytest.raises(InvalidInputError, match="not found"):
        TorchScriptIdentity(tmp_path / "missing.pt")
