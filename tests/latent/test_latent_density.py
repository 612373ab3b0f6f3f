"""Densities of semantic codes: moments of the draws, mixtures, tensor storage, the comparison, errors."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf

from privis.errors import InvalidInputError
from privis.latent import DiffusionAutoencoder, LatentDensity, compare_densities
from privis.latent.density import GMM_REG_COVAR
from privis.metrics import frechet_distance


def _correlated(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    mean = torch.tensor([3.0, -1.0, 0.5])
    mix = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [-0.5, 0.3, 0.1]])
    return mean + torch.randn(n, 3, generator=gen) @ mix.T, mean, mix @ mix.T


def test_gaussian_draws_have_the_fitted_moments():
    codes, mean, cov = _correlated(4000)
    density = LatentDensity(3).fit(codes, "gaussian")
    assert density.fitted and density.kind == "gaussian"
    draws = density.sample(40000, torch.Generator().manual_seed(1)).double()
    # the fit: Ledoit-Wolf on the standardised codes, scaled back
    std = codes.double().std(0)
    normed = ((codes.double() - codes.double().mean(0)) / std).numpy()
    fitted_cov = torch.from_numpy(LedoitWolf().fit(normed).covariance_) * std[:, None] * std[None, :]
    torch.testing.assert_close(draws.mean(0), codes.double().mean(0), rtol=0, atol=0.05)
    torch.testing.assert_close(torch.cov(draws.T), fitted_cov, rtol=0.05, atol=0.03)
    torch.testing.assert_close(torch.cov(draws.T), cov.double(), rtol=0.1, atol=0.05)
    assert draws.dtype == torch.float64 and density.sample(2).dtype == torch.float32


def test_shrinkage_keeps_few_codes_in_many_dimensions_sampleable():
    codes = torch.randn(10, 40, generator=torch.Generator().manual_seed(0))
    draws = LatentDensity(40).fit(codes).sample(5, torch.Generator().manual_seed(0))
    assert draws.shape == (5, 40) and torch.isfinite(draws).all()


def test_a_mixture_finds_separated_clusters_and_is_seeded():
    gen = torch.Generator().manual_seed(0)
    codes = torch.cat([torch.randn(600, 2, generator=gen) * 0.1 + torch.tensor([5.0, 0.0]),
                       torch.randn(200, 2, generator=gen) * 0.1 - torch.tensor([5.0, 0.0])])
    density = LatentDensity(2).fit(codes, "gmm", components=2, random_state=0)
    assert density.kind == "gmm"
    assert sorted(density.weights.tolist()) == pytest.approx([0.25, 0.75], abs=1e-3)
    draws = density.sample(8000, torch.Generator().manual_seed(3))
    assert float((draws[:, 0] > 0).float().mean()) == pytest.approx(0.75, abs=0.02)
    # not smeared between the two: the cluster's variance 0.01 plus reg_covar (normalised units) scaled back
    expected_std = math.sqrt(0.01 + GMM_REG_COVAR * float(density.scale[0]) ** 2)
    assert float(draws[draws[:, 0] > 0, 0].std()) == pytest.approx(expected_std, rel=0.05)
    other = LatentDensity(2).fit(codes, "gmm", components=2, random_state=0)
    assert torch.equal(other.sample(5, torch.Generator().manual_seed(9)),
                       density.sample(5, torch.Generator().manual_seed(9)))


def test_state_dict_round_trips_through_weights_only_files():
    codes, _, _ = _correlated(500)
    density = LatentDensity(3).fit(codes, "gmm", components=3, random_state=1)
    buffer = io.BytesIO()
    torch.save(density.state_dict(), buffer)
    buffer.seek(0)
    fresh = LatentDensity(3)
    assert not fresh.fitted and fresh.kind is None
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh.kind == "gmm" and fresh.scale_tril.shape == (3, 3, 3)
    assert torch.equal(fresh.sample(6, torch.Generator().manual_seed(2)),
                       density.sample(6, torch.Generator().manual_seed(2)))


def test_bad_calls_are_refused():
    codes, _, _ = _correlated(50)
    cases = [
        (lambda: LatentDensity(3).sample(2), "not fitted"),
        (lambda: LatentDensity(3).fit(codes, "flow"), "unknown density kind"),
        (lambda: LatentDensity(4).fit(codes), "4 columns"),
        (lambda: LatentDensity(3).fit(codes[:1]), "at least 2 codes"),
        (lambda: LatentDensity(3).fit(codes[:5], "gmm", components=6), "at least 6 codes"),
        (lambda: LatentDensity(3).fit(codes.masked_fill(codes > 3, math.nan)), "NaN"),
        (lambda: LatentDensity(3).fit(np.zeros((5, 3))), "floating tensor"),
        (lambda: LatentDensity(3).fit(codes).sample(0), "n"),
        (lambda: compare_densities(codes, codes, kinds=("flow",)), "kinds"),
        (lambda: compare_densities(codes, codes, model=torch.nn.Linear(3, 2)), "together"),
    ]
    for call, words in cases:
        with pytest.raises(InvalidInputError, match=words):
            call()


def test_compare_densities_scores_sampled_codes_and_decoded_fakes():
    codes, _, _ = _correlated(3000)
    train, held = codes[:2000], codes[2000:]
    fitted: dict[str, LatentDensity] = {}
    report = compare_densities(train, held, components=3, random_state=0, fitted=fitted)
    assert set(report) == set(fitted) == {"gaussian", "gmm"}
    for kind in report:
        fresh = LatentDensity(3).fit(train, kind, components=3, random_state=0)
        assert torch.equal(fresh.means, fitted[kind].means)
        expected = frechet_distance(fresh.sample(1000, torch.Generator().manual_seed(0)), held)
        assert report[kind]["code_fd"] == pytest.approx(expected, rel=1e-6)
        assert 0 <= report[kind]["code_fd"] < 0.1  # the data are Gaussian: both fits match them
    # against held-out codes of another distribution the distance is large
    assert compare_densities(train, held * 3, kinds=("gaussian",), random_state=0)["gaussian"]["code_fd"] > 5

    torch.manual_seed(0)
    codec = DiffusionAutoencoder(image_shape=(1, 8, 8), semantic_dim=3, base=4, timesteps=20, steps=2).eval()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    real = torch.rand(30, 1, 8, 8)
    report = compare_densities(train, held, kinds=("gaussian",), samples=20, random_state=0, codec=codec,
                               model=model, real_images=real)
    assert report["gaussian"]["image_fd"] >= 0 and math.isfinite(report["gaussian"]["image_fd"])
