"""DP-Image's statements: the thesis' settings, the verdict on the claimed bound, the coverage of groups."""

from __future__ import annotations

import json
import math

import pytest

from privis.errors import InvalidInputError
from privis.privacy.dp_image import DPImageBounds, dp_image_bounds, sensitivity
from privis.privacy.rdp import gaussian_epsilon

DELTA = 1e-8


def test_sensitivity_eq_4_10_to_4_12():
    assert sensitivity(20.0, 18 * 512) == 3840.0  # the thesis' value
    assert sensitivity(20.0, 7 * 512) == pytest.approx(40.0 * math.sqrt(3584))  # only groups 1-7 noised
    assert sensitivity(1.5, 100, "l2") == 3.0
    with pytest.raises(InvalidInputError, match="clip_kind"):
        sensitivity(1.0, 4, "linf")
    with pytest.raises(InvalidInputError, match="latent_dim"):
        sensitivity(1.0, 0)
    with pytest.raises(InvalidInputError, match="clip"):
        sensitivity(float("nan"), 4)


@pytest.mark.parametrize("steps", [1, 10, 100, 1000, 10_000, 100_000])
def test_thesis_settings_claimed_is_theorem_4_4_1_at_its_best_alpha(steps):
    bounds = dp_image_bounds(sensitivity=3840.0, sigma=0.2, steps=steps, delta=DELTA)
    claimed, post = bounds.claimed, bounds.post_processing
    alpha = claimed.alpha
    theorem = alpha * 3840.0**2 / (2 * steps * 0.2**2) + math.log(1 / DELTA) / (alpha - 1)  # Thm 4.4.1, Lemma 4.3.1
    assert claimed.epsilon == pytest.approx(theorem, rel=1e-12)
    for nearby in (1 + (alpha - 1) * (1 - 1e-3), 1 + (alpha - 1) * (1 + 1e-3)):  # and alpha is its minimiser
        assert nearby * 3840.0**2 / (2 * steps * 0.04) + math.log(1 / DELTA) / (nearby - 1) > theorem
    assert post.epsilon == pytest.approx(3840.0**2 / 0.08 + 2 * math.sqrt(3840.0**2 / 0.08 * math.log(1 / DELTA)))
    assert claimed.epsilon_tight <= claimed.epsilon and post.epsilon_tight <= post.epsilon
    assert claimed.epsilon <= post.epsilon * (1 + 1e-12)
    assert (claimed.epsilon == post.epsilon) is (steps == 1)
    assert "1-Lipschitz" in claimed.assumption and "none" in post.assumption
    assert post.epsilon == gaussian_epsilon(3840.0, 0.2, DELTA).epsilon


@pytest.mark.parametrize(("lipschitz", "certified", "verdict"), [
    (None, False, "unverified"), (0.93, False, "supported by measurement"), (1.0, True, "certified"),
    (0.5, True, "certified"), (1.7, False, "not supported"), (1.2, True, "not supported")])
def test_verdict_on_the_contraction_assumption(lipschitz, certified, verdict):
    bounds = dp_image_bounds(sensitivity=2.0, sigma=1.0, steps=4, delta=1e-5, lipschitz=lipschitz,
                             certified=certified)
    assert bounds.verdict == verdict
    assert bounds.lipschitz == lipschitz
    assert bounds.claimed.epsilon < bounds.post_processing.epsilon  # the verdict never changes the numbers


def test_partial_perturbation_says_what_is_not_covered():
    everything = dp_image_bounds(sensitivity=1.0, sigma=1.0, steps=2, delta=1e-5, groups=18,
                                 perturbed_groups=range(18))
    assert "every pair" in everything.coverage
    partial = dp_image_bounds(sensitivity=1.0, sigma=1.0, steps=2, delta=1e-5, groups=18,
                              perturbed_groups=[0, 1, 2, 3, 4, 5, 6])
    assert "deterministic function" in partial.coverage and "no finite epsilon" in partial.coverage
    assert "[7, 8," in partial.coverage and "agree outside the perturbed groups" in partial.coverage
    for groups, perturbed in ((18, [18]), (18, []), (None, [0]), (18, [True])):
        with pytest.raises(InvalidInputError, match="groups"):
            dp_image_bounds(sensitivity=1.0, sigma=1.0, steps=2, delta=1e-5, groups=groups,
                            perturbed_groups=perturbed)


def test_target_epsilon_gives_the_sigma_each_bound_needs():
    bounds = dp_image_bounds(sensitivity=3840.0, sigma=0.2, steps=10_000, delta=DELTA, target_epsilon=10.0)
    for statement, steps in ((bounds.claimed, 10_000), (bounds.post_processing, 1)):
        for sigma, conversion in ((statement.sigma_for_target, "classic"),
                                  (statement.sigma_for_target_tight, "tight")):
            assert sigma is not None
            got = gaussian_epsilon(3840.0, sigma, DELTA, steps=steps, bound="claimed", conversion=conversion)
            assert got.epsilon == pytest.approx(10.0, rel=1e-8)
    assert bounds.claimed.sigma_for_target == pytest.approx(bounds.post_processing.sigma_for_target / 100, rel=1e-10)


def test_from_dp_parameters_and_to_dict():
    params = {"mechanism": "dp-image", "sensitivity": 3840.0, "sigma": 0.2, "steps": 100, "clip": 20.0,
              "clip_kind": "box", "latent_dim": 9216, "groups": 18, "perturbed_groups": list(range(18)),
              "lipschitz_bound": None}
    bounds = DPImageBounds.from_dp_parameters(params, DELTA, lipschitz=3.5)
    assert bounds.verdict == "not supported" and not bounds.certified
    assert bounds == dp_image_bounds(sensitivity=3840.0, sigma=0.2, steps=100, delta=DELTA, lipschitz=3.5,
                                     groups=18, perturbed_groups=range(18))
    certified = DPImageBounds.from_dp_parameters({**params, "lipschitz_bound": 0.9}, DELTA, lipschitz=3.5)
    assert certified.verdict == "certified" and certified.lipschitz == 0.9
    record = json.loads(json.dumps(bounds.to_dict()))
    assert record["claimed"]["epsilon"] == bounds.claimed.epsilon
    assert record["post_processing"]["alpha_tight"] == bounds.post_processing.alpha_tight
    with pytest.raises(InvalidInputError, match="mechanism"):
        DPImageBounds.from_dp_parameters({**params, "mechanism": "dp-sgd"}, DELTA)
    with pytest.raises(InvalidInputError, match="sigma"):
        DPImageBounds.from_dp_parameters({"mechanism": "dp-image", "sensitivity": 1.0, "steps": 1}, DELTA)


@pytest.mark.parametrize("kwargs", [{"delta": 0.0}, {"steps": 0}, {"sigma": -1.0}, {"lipschitz": -0.1},
                                    {"lipschitz": float("inf")}, {"certified": True}, {"target_epsilon": 0.0}])
def test_bad_input_is_refused(kwargs):
    args = {"sensitivity": 1.0, "sigma": 1.0, "steps": 2, "delta": 1e-5, **kwargs}
    with pytest.raises(InvalidInputError):
        dp_image_bounds(**args)
