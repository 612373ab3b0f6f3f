"""The latent anonymiser on digits with a small trained diffusion autoencoder: pairing, both identity schemes,
per-image stopping, seeding and its errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from linear_codec import LinearCodec
from privis import models
from privis.errors import InvalidInputError
from privis.identity import ClassifierIdentity, train_exemplar_identity
from privis.latent import train_codec
from privis.latent.diffae import DiffusionAutoencoder
from privis.methods.base import NotFittedError
from privis.methods.latent_anonymizer import LatentAnonymizer, last_conv_layer, pair_nearest

N = 16  # images anonymised per test


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the DDIM loops are many small kernels, which a second thread slows on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def parts(digits_train, one_thread):
    """Fit images and labels, and the three trained models (about 10 s): a codec small enough for tests but
    trained long enough that its semantic code matters, the exemplar identity model and a LeNet-5."""
    images, labels = digits_train.images[:120], digits_train.labels[:120]
    codec = train_codec(images, "diffae", epochs=30, random_state=0, semantic_dim=16, base=8, steps=5)
    identity = train_exemplar_identity(images, epochs=10, random_state=0, calibrate_on=images)
    attributes = models.create_seeded("lenet5", 0, num_classes=10, in_channels=1, image_size=8)
    models.train(attributes, images, labels, epochs=5, seed=0, device="cpu")
    return images, labels, codec, identity, models.freeze(attributes)


def _fitted(parts, identity: ClassifierIdentity | None = None, **params) -> LatentAnonymizer:
    images, labels, codec, fitted_identity, attributes = parts
    params = {"iterations": 10, "lr": 2.0, "random_state": 0, **params}
    return LatentAnonymizer(codec=codec, identity_model=identity or fitted_identity, attribute_model=attributes,
                            **params).fit(images, labels)


def _with_threshold(identity: ClassifierIdentity, threshold: float) -> ClassifierIdentity:
    """A copy whose threshold makes every pair match (-1) or none (2): the stop criterion never holds."""
    changed = copy.deepcopy(identity)
    changed.threshold = threshold
    return changed


def _cos(identity: ClassifierIdentity, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return identity.score(identity.embed(a), identity.embed(b))


def test_pairing_picks_the_nearest_fake():
    generator = torch.Generator().manual_seed(0)
    real, fake = torch.randn(40, 7, generator=generator), torch.randn(90, 7, generator=generator)
    assert torch.equal(pair_nearest(real, fake), torch.cdist(real.double(), fake.double()).argmin(1))
    assert torch.equal(pair_nearest(fake[[5, 2, 5]], fake), torch.tensor([5, 2, 5]))


def test_pairing_pairs_each_image_with_its_nearest_pool_image_in_the_attribute_features(parts):
    anonymizer = _fitted(parts, iterations=0)
    x = parts[0][:N]
    anonymizer.transform(x)
    token = anonymizer.models_.token
    generator = torch.Generator().manual_seed(0)  # the pool transform drew from the same seed
    codec = anonymizer.models_.codec
    pool = codec.sample_images(codec.sample_semantic(2 * N, generator), generator)
    with torch.no_grad():
        nearest = torch.cdist(token(x).double(), token(pool).double()).argmin(1)
    assert torch.equal(anonymizer.paired_fakes(), pool[nearest])


def test_iis_lowers_the_identity_cosine_below_the_start_and_the_reconstruction(parts):
    x = parts[0][:N]
    never_stops = _with_threshold(parts[3], -1.0)
    start = _fitted(parts, never_stops, iterations=0).transform(x)
    anonymizer = _fitted(parts, never_stops, iterations=15, lambda_att=0.0)
    out = anonymizer.transform(x)
    assert bool((anonymizer.iterations_per_image() == 15).all())
    codec = anonymizer.models_.codec
    with torch.no_grad():
        z = codec.encode_semantic(x)
        reconstruction = codec.decode_semantic(z, codec.encode_stochastic(x, z))
    identity = parts[3]
    after, before = _cos(identity, out, x).abs().mean(), _cos(identity, start, x).abs().mean()
    assert float(after) < float(before) - 0.05, (float(after), float(before))
    assert float(after) < float(_cos(identity, reconstruction, x).abs().mean()) - 0.2


def test_irs_raises_the_cosine_to_the_paired_fake(parts):
    x = parts[0][:N]
    never_stops = _with_threshold(parts[3], 2.0)
    start_run = _fitted(parts, never_stops, scheme="irs", iterations=0)
    start = start_run.transform(x)
    anonymizer = _fitted(parts, never_stops, scheme="irs", iterations=15, lambda_att=0.0)
    out = anonymizer.transform(x)
    fakes = anonymizer.paired_fakes()
    assert torch.equal(fakes, start_run.paired_fakes())
    identity = parts[3]
    after, before = _cos(identity, out, fakes).abs().mean(), _cos(identity, start, fakes).abs().mean()
    assert float(after) > float(before) + 0.02, (float(after), float(before))


def test_a_stopped_image_is_left_alone_by_later_steps(parts):
    x = parts[0][:N]
    short, long = _fitted(parts, iterations=4), _fitted(parts, iterations=12)
    a, b = short.transform(x), long.transform(x)
    taken = long.iterations_per_image()
    stopped = taken < 4
    assert torch.equal(short.iterations_per_image()[stopped], taken[stopped])
    assert bool(stopped.any()) and bool((taken[stopped] > 0).any()), taken  # some stop while optimising
    assert torch.equal(a[stopped], b[stopped])
    assert not torch.allclose(a[~stopped], b[~stopped])
    assert long.diagnostics()["stop_reached_fraction"] == float((taken < 12).float().mean())


@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_an_image_that_stopped_is_released_as_checked_past_the_margin(parts, margin):
    x = parts[0][:N]
    anonymizer = _fitted(parts, iterations=8, margin=margin)
    out = anonymizer.transform(x)
    stopped = anonymizer.iterations_per_image() < 8
    assert bool(stopped.any())
    identity = anonymizer.identity_objective()
    assert bool((_cos(identity, out[stopped], x[stopped]) < identity.threshold - margin).all())


def test_fewer_decode_steps_while_optimising_still_release_with_the_codecs_steps(parts):
    x = parts[0][:4]
    anonymizer = _fitted(parts, iterations=2, decode_steps=2)
    out = anonymizer.transform(x)
    assert out.shape == x.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.equal(out, _fitted(parts, iterations=2).transform(x))


def test_decode_steps_beyond_the_codecs_are_the_codecs(parts):
    x = parts[0][:4]
    assert torch.equal(_fitted(parts, iterations=2, decode_steps=500).transform(x),
                       _fitted(parts, iterations=2, decode_steps=None).transform(x))


def test_each_image_is_optimised_independently_of_the_batch(parts):
    anonymizer = _fitted(parts, iterations=6)
    m = anonymizer.models_
    x = parts[0][:N]
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        z_fake, x_fake = anonymizer._paired_fakes(m, x, generator)
        x_T = m.codec.encode_stochastic(x)
        real_id, fake_id = m.identity.embed(x), m.identity.embed(x_fake)
    z_all, taken_all, _ = anonymizer._optimise(m, x, x_T, z_fake, real_id, fake_id)
    half = slice(0, N // 2)
    z_half, taken_half, _ = anonymizer._optimise(m, x[half], x_T[half], z_fake[half], real_id[half], fake_id[half])
    assert torch.equal(taken_all[half], taken_half)
    torch.testing.assert_close(z_all[half], z_half, atol=1e-4, rtol=1e-5)  # float sums vary with the batch size


def test_same_seed_same_output_other_seed_other_pool(parts):
    x = parts[0][:N]
    a, b = _fitted(parts, iterations=2).transform(x), _fitted(parts, iterations=2).transform(x)
    c = _fitted(parts, iterations=2, random_state=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c.transform(x))


def test_diagnostics_and_per_image_reports(parts):
    anonymizer = _fitted(parts, iterations=3)
    with pytest.raises(InvalidInputError, match="call transform first"):
        anonymizer.iterations_per_image()
    assert anonymizer.diagnostics() == {}
    x = parts[0][:N]
    out = anonymizer.transform(x)
    diag = anonymizer.diagnostics()
    assert set(diag) == {"stop_reached_fraction", "latent_anonymizer_iterations_mean",
                         "latent_anonymizer_id_cos_mean", "latent_anonymizer_fake_cos_mean"}
    taken = anonymizer.iterations_per_image()
    assert taken.shape == (N,) and bool(((taken >= 0) & (taken <= 3)).all())
    assert diag["latent_anonymizer_iterations_mean"] == pytest.approx(float(taken.float().mean()))
    assert diag["latent_anonymizer_id_cos_mean"] == pytest.approx(float(_cos(parts[3], out, x).mean()), abs=1e-5)
    assert anonymizer.paired_fakes().shape == x.shape
    assert anonymizer.identity_objective() is anonymizer.models_.identity


def test_fit_trains_the_models_it_is_not_given(parts):
    images, labels = parts[0][:24], parts[1][:24]
    anonymizer = LatentAnonymizer(codec_epochs=1, identity_epochs=1, attribute_epochs=1, iterations=1,
                                  random_state=0).fit(images, labels)
    assert isinstance(anonymizer.models_.codec, DiffusionAutoencoder) and anonymizer.models_.codec.has_density
    assert anonymizer.identity_objective().name == "lenet5-exemplar"
    assert anonymizer.transform(images[:3]).shape == (3, 1, 8, 8)


def test_a_codec_without_a_density_gets_one_and_the_callers_codec_is_untouched(parts):
    images, labels, _, identity, attributes = parts
    codec = DiffusionAutoencoder(image_shape=(1, 8, 8), semantic_dim=8, base=4, timesteps=100, steps=2)
    anonymizer = LatentAnonymizer(codec=codec, identity_model=identity, attribute_model=attributes, iterations=1,
                                  random_state=0).fit(images[:20], labels[:20])
    assert anonymizer.models_.codec.has_density and not codec.has_density


def test_last_conv_layer_names_the_last_convolution():
    assert last_conv_layer(models.create("lenet5", num_classes=3, in_channels=1, image_size=8)) == "conv2"
    with pytest.raises(InvalidInputError, match="no nn.Conv2d"):
        last_conv_layer(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)))


@pytest.mark.parametrize(("params", "message"), [
    ({"pool_ratio": 1.0}, "pool_ratio"),
    ({"pool_ratio": 0.5}, "pool_ratio"),
    ({"scheme": "swap"}, "scheme"),
    ({"iterations": -1}, "iterations"),
    ({"margin": -0.1}, "margin"),
    ({"identity_model": nn.Linear(2, 2)}, "IdentityModel"),
    ({"codec": DiffusionAutoencoder(image_shape=(1, 12, 12), semantic_dim=4, base=4, timesteps=10, steps=2)},
     "expects images of shape"),
    ({"codec": LinearCodec((1, 8, 8), (1, 64))}, "diffusion autoencoder"),
    ({"attribute_model": nn.Sequential(nn.Flatten(), nn.Linear(64, 3))}, "no nn.Conv2d"),
])
def test_bad_parameters_are_one_line_errors(parts, params, message):
    images, labels = parts[0][:8], parts[1][:8]
    with pytest.raises(InvalidInputError, match=message):
        LatentAnonymizer(**{"codec": parts[2], "identity_model": parts[3], **params}).fit(images, labels)


def test_no_labels_without_an_attribute_model_is_an_error(parts):
    with pytest.raises(InvalidInputError, match="needs labels"):
        LatentAnonymizer(codec=parts[2], identity_model=parts[3]).fit(parts[0][:8])


def test_transform_errors(parts):
    with pytest.raises(NotFittedError):
        LatentAnonymizer().transform(parts[0][:2])
    anonymizer = _fitted(parts, iterations=1)
    with pytest.raises(InvalidInputError, match="expects images of shape"):
        anonymizer.transform(torch.rand(2, 1, 9, 9))
