"""Frechet distance: Heusel et al.'s closed form on known Gaussians, an independent eigenvalue computation,
its invariances, the guard for singular covariances, and fd_privis on a trained classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from privis.errors import InvalidInputError
from privis.metrics import fd_privis, frechet_distance, gaussian_frechet_distance
from privis.models import FeatureExtractor


def _psd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def _fd_eigh(m1, s1, m2, s2) -> float:
    """tr((S1 S2)^(1/2)) = sum of sqrt(eigenvalues of S1^(1/2) S2 S1^(1/2)), a symmetric PSD matrix."""
    w, v = np.linalg.eigh(s1)
    r1 = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(r1 @ s2 @ r1)
    return float(np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def test_diagonal_gaussians_exact():
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)  # = 7.25 + 4 + 1 + 0
    assert expected == pytest.approx(12.25)
    assert gaussian_frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)


def test_full_covariances_match_independent_eigen_computation():
    rng = np.random.default_rng(0)
    for d in (2, 5, 16):
        m1, m2, s1, s2 = rng.normal(size=d), rng.normal(size=d), _psd(rng, d), _psd(rng, d)
        assert gaussian_frechet_distance(m1, s1, m2, s2) == pytest.approx(_fd_eigh(m1, s1, m2, s2), rel=1e-8)
        # a metric on Gaussians: symmetric, zero on itself
        assert gaussian_frechet_distance(m1, s1, m2, s2) == pytest.approx(gaussian_frechet_distance(m2, s2, m1, s1))
        assert gaussian_frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-8)


def test_sample_features_fit_mean_and_unbiased_covariance():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 6)), rng.normal(loc=0.5, scale=2.0, size=(200, 6))
    expected = _fd_eigh(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-5)
    # translating both sets changes nothing; translating one by v adds exactly |v|^2 (same covariance)
    shift = rng.normal(size=6)
    assert frechet_distance(a + shift, b + shift) == pytest.approx(frechet_distance(a, b), rel=1e-8)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-8)


def test_singular_covariances_are_guarded():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 20)), rng.normal(size=(7, 20))  # rank < D: singular covariances
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value >= 0
    assert value == pytest.approx(_fd_eigh(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T)), rel=1e-3)


@pytest.mark.parametrize("a, b, match", [
    (np.zeros(5), np.zeros((5, 2)), "2-D"),
    (np.zeros((1, 2)), np.zeros((5, 2)), "at least 2"),
    (np.zeros((4, 2)), np.zeros((5, 3)), "dimensions differ"),
    (np.full((4, 2), np.nan), np.zeros((5, 2)), "NaN"),
])
def test_bad_features_refused(a, b, match):
    with pytest.raises(InvalidInputError, match=match):
        frechet_distance(a, b)


def test_fd_privis_on_classifier_features(digits_lenet, digits_test, device):
    model = digits_lenet.to(device)
    try:
        x = digits_test.images[:200].to(device)
        gen = torch.Generator(device=device).manual_seed(0)
        noise = torch.randn(x.shape, generator=gen, device=device)
        mild, strong = (x + 0.05 * noise).clamp(0, 1), (x + 0.5 * noise).clamp(0, 1)
        assert fd_privis(model, x, x) == pytest.approx(0.0, abs=1e-6)
        assert 0 < fd_privis(model, x, mild) < fd_privis(model, x, strong)
        feats = FeatureExtractor(model, "fc2").eval()
        with torch.no_grad():
            expected = frechet_distance(feats(x).cpu(), feats(strong).cpu())
        assert fd_privis(model, x, strong, batch_size=64) == pytest.approx(expected, rel=1e-4)
        with pytest.raises(InvalidInputError, match="unknown layer"):
            fd_privis(model, x, x, layer="nope")
    finally:
        digits_lenet.to("cpu")
