"""FSAP (Algorithm 7): de-identifies digits against the identity model it optimises, stops each image on its
own as soon as L_I > tau, takes no attribute step in the ID-only variant or at lambda_P = 0, stays within the
sign-step budget, works in a codec's latent space, and refuses what it cannot use."""

from __future__ import annotations

import pytest
import torch

from linear_codec import LinearCodec
from privis.errors import InvalidInputError
from privis.identity import ClassifierIdentity, protection_success_rate
from privis.methods.base import NotFittedError
from privis.methods.fsap import FSAP, id_loss


@pytest.fixture(scope="module")
def identity(digits_lenet, digits_train):
    model = ClassifierIdentity(digits_lenet)
    model.calibrate(digits_train.images[:300], digits_train.labels[:300])
    return model


@pytest.fixture(scope="module")
def images(digits_test):
    return digits_test.images[:16]


def test_id_only_deidentifies_against_the_optimised_model_and_stops_each_image_past_tau(identity, images):
    fsap = FSAP(identity_model=identity, variant="id-only", N=40, random_state=0).fit(images)
    out = fsap.transform(images)
    assert protection_success_rate(identity, images, out) >= 0.9
    losses = id_loss(identity, identity.embed(images), out)
    stats = fsap.diagnostics()
    assert stats["stop_reached_fraction"] >= 0.9
    stopped = losses > fsap.tau
    assert float(stopped.float().mean()) == pytest.approx(stats["stop_reached_fraction"], abs=1e-6)
    # each stopped image is released at its first iterate past tau: one more step would be pointless
    assert stats["fsap_iterations_mean"] < 40


def test_both_losses_at_lambda_p_zero_equal_id_only_and_attribute_steps_lower_the_distortion(identity, images):
    base = {"identity_model": identity, "N": 6, "lambda_I": 0.05, "random_state": 3}
    only = FSAP(variant="id-only", **base).fit(images).transform(images)
    torch.testing.assert_close(FSAP(variant="both", k=2, lambda_P=0.0, **base).fit(images).transform(images), only)
    both = FSAP(variant="both", k=2, lambda_P=0.002, tau=10.0, **base).fit(images).transform(images)
    far = FSAP(variant="id-only", tau=10.0, **base).fit(images).transform(images)
    assert float((both - images).square().mean()) < float((far - images).square().mean())


def test_pixel_steps_stay_within_the_sign_step_budget(identity, images):
    """Start lambda_I from x, then N identity steps of lambda_I: |x_hat - x|_inf <= (N + 1) lambda_I."""
    out = FSAP(identity_model=identity, variant="id-only", N=3, tau=10.0, lambda_I=0.01, random_state=0) \
        .fit(images).transform(images)
    assert float((out - images).abs().max()) <= 4 * 0.01 + 1e-6
    assert float((out - images).abs().max()) > 0.01 + 1e-6
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_tau_zero_releases_the_random_start(identity, images):
    fsap = FSAP(identity_model=identity, tau=0.0, lambda_I=0.01, random_state=0).fit(images)
    out = fsap.transform(images)
    assert fsap.diagnostics()["fsap_iterations_mean"] == 0
    assert float((out - images).abs().max()) <= 0.01 + 1e-6


def test_latent_space_with_a_codec(identity, images):
    codec = LinearCodec(image_shape=(1, 8, 8), latent_shape=(4, 16))
    fsap = FSAP(codec=codec, identity_model=identity, variant="id-only", N=40, random_state=0).fit(images)
    out = fsap.transform(images)
    assert out.shape == images.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert protection_success_rate(identity, images, out) >= 0.9
    with pytest.raises(InvalidInputError, match="codec expects"):
        FSAP(codec=LinearCodec(), identity_model=identity).fit(images)


def test_fits_its_own_identity_model_from_labels_and_refuses_without_them(digits_train):
    x, y = digits_train.images[:64], digits_train.labels[:64]
    fsap = FSAP(identity_epochs=1, N=2, k=1, random_state=0)
    with pytest.raises(NotFittedError):
        fsap.identity_objective()
    fsap.fit(x, y)
    assert isinstance(fsap.identity_objective(), ClassifierIdentity)
    with pytest.raises(InvalidInputError, match="needs labels"):
        FSAP().fit(x)


def test_images_that_keep_their_identity_are_named_in_one_warning_with_the_pixel_space_hint() -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 1, 8, 8)
    labels = torch.arange(6) % 2
    fsap = FSAP(N=1, k=6, identity_epochs=1, random_state=0).fit(x, labels)  # thesis rates, pixel space
    with pytest.warns(UserWarning, match=r"did not reach the identity loss tau = 0.8.*try lambda_I=0.05"):
        fsap.transform(x)
    assert fsap.diagnostics()["stop_reached_fraction"] < 1.0
