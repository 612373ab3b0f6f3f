"""The diffusion autoencoder codec: DDIM in closed form, the codec's contract, training, files, TorchScript."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from privis.errors import InvalidInputError
from privis.latent import (
    DiffusionAutoencoder,
    TorchScriptDiffusionAutoencoder,
    codec_quality,
    load_codec,
    save_codec,
    train_codec,
)
from privis.latent.diffae import ddim_decode, ddim_invert, ddim_timesteps, linear_alpha_bar

TINY = {"semantic_dim": 16, "base": 8, "timesteps": 100, "steps": 5}


def _tiny(seed: int = 0) -> DiffusionAutoencoder:
    torch.manual_seed(seed)
    codec = DiffusionAutoencoder(image_shape=(1, 8, 8), **TINY).eval()
    with torch.no_grad():  # the zero-initialised output layers would make eps_theta constant: wake them up
        for p in codec.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return codec


@pytest.fixture(scope="module")
def images(digits_train) -> Tensor:
    return digits_train.images[:48].clone()


@pytest.fixture(scope="module")
def trained(images) -> DiffusionAutoencoder:
    codec = train_codec(images, "diffae", epochs=1, batch_size=16, random_state=0, **TINY)
    assert isinstance(codec, DiffusionAutoencoder)
    return codec


def test_schedule_and_timesteps_follow_ho_et_al():
    alpha_bar = linear_alpha_bar(1000)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert alpha_bar[0] == pytest.approx(1 - 1e-4) and alpha_bar[-1] == pytest.approx(float(torch.prod(1 - betas)))
    assert ddim_timesteps(1000, 20) == list(range(0, 1000, 50))
    assert ddim_timesteps(10, 10) == list(range(10))
    with pytest.raises(InvalidInputError, match="steps must be at most"):
        ddim_timesteps(100, 101)
    with pytest.raises(InvalidInputError, match="steps"):
        ddim_timesteps(100, 0)


def test_ddim_with_a_perfect_noise_predictor_recovers_x0_from_any_start():
    alpha_bar = linear_alpha_bar(1000).tolist()
    seq = ddim_timesteps(1000, 20)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 6, 6, generator=gen, dtype=torch.float64) * 2 - 1
    noise = torch.randn(4, 1, 6, 6, generator=gen, dtype=torch.float64)

    def oracle(x: Tensor, t: int) -> Tensor:  # the noise that explains x at t given the known x0
        return (x - math.sqrt(alpha_bar[t]) * x0) / math.sqrt(1 - alpha_bar[t])

    a_T = alpha_bar[seq[-1]]
    x_T = math.sqrt(a_T) * x0 + math.sqrt(1 - a_T) * noise
    torch.testing.assert_close(ddim_decode(oracle, x_T, alpha_bar, seq), x0, rtol=0, atol=1e-10)
    inverted = ddim_invert(oracle, x0, alpha_bar, seq)
    torch.testing.assert_close(ddim_decode(oracle, inverted, alpha_bar, seq), x0, rtol=0, atol=1e-10)
    # clipping the denoised estimate changes nothing when x0 is in range, and bounds a wild prediction
    torch.testing.assert_close(ddim_decode(oracle, x_T, alpha_bar, seq, clip=True), x0, rtol=0, atol=1e-10)
    wild = ddim_decode(lambda x, t: 50 * torch.ones_like(x), x_T, alpha_bar, seq, clip=True)
    assert wild.abs().max() <= 1 + 1e-12
    # every intermediate state is on the trajectory sqrt(a) x0 + sqrt(1 - a) noise (Eq. 6.5)
    states: list[Tensor] = []
    ddim_decode(lambda x, t: states.append(x) or oracle(x, t), x_T, alpha_bar, seq)
    for x, t in zip(states, reversed(seq), strict=True):
        torch.testing.assert_close(x, math.sqrt(alpha_bar[t]) * x0 + math.sqrt(1 - alpha_bar[t]) * noise,
                                   rtol=0, atol=1e-10)


def test_ddim_inversion_undoes_decoding_when_the_prediction_depends_on_t_only():
    alpha_bar = linear_alpha_bar(100).tolist()
    seq = ddim_timesteps(100, 7)
    gen = torch.Generator().manual_seed(1)
    per_t = {t: torch.randn(3, 2, 5, 5, generator=gen, dtype=torch.float64) for t in seq}
    x_T = torch.randn(3, 2, 5, 5, generator=gen, dtype=torch.float64)

    def by_t(x: Tensor, t: int) -> Tensor:
        return per_t[t]

    x0 = ddim_decode(by_t, x_T, alpha_bar, seq)
    torch.testing.assert_close(ddim_invert(by_t, x0, alpha_bar, seq), x_T, rtol=0, atol=1e-10)
    assert not torch.allclose(x0, x_T)


def test_shapes_dtypes_and_the_latent_view():
    codec = _tiny()
    x = torch.rand(3, 1, 8, 8)
    z = codec.encode_semantic(x)
    assert z.shape == (3, 16) and z.dtype == torch.float32
    assert codec.latent_shape == (1, 16) and codec.group_names == ("semantic",)
    torch.testing.assert_close(codec.encode(x)[:, 0], z)
    x_T = codec.encode_stochastic(x)
    assert x_T.shape == (3, 1, 8, 8) and x_T.dtype == torch.float32 and not x_T.requires_grad
    out = codec.decode_semantic(z, x_T)
    assert out.shape == (3, 1, 8, 8) and out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1
    # decode of the LatentCodec view uses x_T = 0
    torch.testing.assert_close(codec.decode(z[:, None]), codec.decode_semantic(z, torch.zeros(3, 1, 8, 8)))
    # other step counts are accepted and change the result
    assert not torch.allclose(codec.decode_semantic(z, x_T, steps=2), out)
    # an odd size is padded inside and cropped back
    odd = DiffusionAutoencoder(image_shape=(3, 7, 9), **TINY).eval()
    assert odd.decode_semantic(odd.encode_semantic(torch.rand(2, 3, 7, 9)), torch.randn(2, 3, 7, 9)).shape == (
        2, 3, 7, 9)


def test_bad_inputs_are_refused_in_one_line():
    codec = _tiny()
    x = torch.rand(2, 1, 8, 8)
    z = codec.encode_semantic(x)
    cases = [
        (lambda: codec.encode_semantic(torch.rand(2, 1, 9, 9)), "expects images of shape"),
        (lambda: codec.encode_semantic(x + 2), "images"),
        (lambda: codec.encode_stochastic(x, z_sem=z[:1]), "1 codes for 2 images"),
        (lambda: codec.encode_stochastic(x, steps=0), "steps"),
        (lambda: codec.decode_semantic(z[:, :3], torch.zeros(2, 1, 8, 8)), r"shape \(N, 16\), got \(2, 3\)"),
        (lambda: codec.decode_semantic(z * math.inf, torch.zeros(2, 1, 8, 8)), "z_sem contains NaN"),
        (lambda: codec.decode_semantic(z, torch.zeros(3, 1, 8, 8)), "x_T must be"),
        (lambda: codec.decode_semantic(z, torch.full((2, 1, 8, 8), math.nan)), "x_T contains NaN"),
        (lambda: codec.decode_semantic(z, torch.zeros(2, 1, 8, 8), steps=101), "at most timesteps"),
        (lambda: codec.sample_semantic(4), "not fitted"),
        (lambda: DiffusionAutoencoder(image_shape=(2, 8, 8)), "1 or 3 channels"),
        (lambda: DiffusionAutoencoder(image_shape=(1, 8)), "image_shape"),
        (lambda: DiffusionAutoencoder(base=2), "base"),
        (lambda: DiffusionAutoencoder(steps=0), "steps"),
        (lambda: setattr(codec, "steps", 101), "at most timesteps"),
    ]
    for call, words in cases:
        with pytest.raises(InvalidInputError, match=words) as info:
            call()
        assert "\n" not in str(info.value)
    codec.steps = 7  # what a saved codec records
    assert codec.steps == 7 and codec.config["steps"] == 7


def test_outputs_do_not_depend_on_the_batch(device):
    codec = _tiny().to(device)
    x = torch.rand(5, 1, 8, 8, device=device)
    z, x_T = codec.encode_semantic(x), codec.encode_stochastic(x)
    together = codec.decode_semantic(z, x_T)
    for i in range(5):
        torch.testing.assert_close(codec.encode_semantic(x[i:i + 1]), z[i:i + 1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(codec.encode_stochastic(x[i:i + 1]), x_T[i:i + 1], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(codec.decode_semantic(z[i:i + 1], x_T[i:i + 1]), together[i:i + 1],
                                   rtol=1e-4, atol=1e-4)
    assert together.device.type == device.type


def test_training_is_seeded_fits_a_density_and_decoding_is_differentiable(images, trained):
    rng = torch.get_rng_state()
    again = train_codec(images, "diffae", epochs=1, batch_size=16, random_state=0, **TINY)
    other = train_codec(images, "diffae", epochs=1, batch_size=16, random_state=1, **TINY)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(p, q) for p, q in zip(trained.state_dict().values(), again.state_dict().values(),
                                                 strict=True))
    assert not torch.equal(trained.noise.inc.weight, other.noise.inc.weight)
    assert trained.has_density and trained.density.kind == "gaussian"
    assert not trained.training and not any(p.requires_grad for p in trained.parameters())
    # the density is the one of the training codes
    with torch.no_grad():
        codes = trained.encode_semantic(images)
    torch.testing.assert_close(trained.density.loc, codes.mean(0), rtol=1e-4, atol=1e-5)
    # gradients reach z_bar through every DDIM step
    z = trained.encode_semantic(images[:4]).requires_grad_(True)
    x_T = trained.encode_stochastic(images[:4])
    loss = trained.decode_semantic(z, x_T).sum()
    (grad,) = torch.autograd.grad(loss, z)
    assert grad.shape == z.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0
    quality = codec_quality(trained, images[:16])
    assert quality["reconstruction_ssim_mean"] > codec_quality(trained, images[:16], stochastic=False)[
        "reconstruction_ssim_mean"]


def test_gmm_density_option(images):
    codec = train_codec(images, "diffae", epochs=1, batch_size=16, random_state=0, density="gmm", **TINY)
    assert codec.density.kind == "gmm" and codec.density.weights.numel() == 10
    with pytest.raises(InvalidInputError, match="density kind"):
        train_codec(images, "diffae", epochs=1, random_state=0, density="flow", **TINY)


def test_codec_file_round_trip_is_bit_identical(trained, images, tmp_path):
    path = save_codec(trained, tmp_path / "diffae.pt", extra={"steps": 5})
    loaded = load_codec(path)
    assert isinstance(loaded, DiffusionAutoencoder) and loaded.extra == {"steps": 5} and loaded.has_density
    x = images[:6]
    z = loaded.encode_semantic(x)
    assert torch.equal(z, trained.encode_semantic(x))
    assert torch.equal(loaded.encode_stochastic(x), trained.encode_stochastic(x))
    assert torch.equal(loaded.decode_semantic(z, torch.ones(6, 1, 8, 8)), trained.decode_semantic(z, torch.ones(
        6, 1, 8, 8)))
    draws = [c.sample_semantic(7, torch.Generator().manual_seed(4)) for c in (loaded, trained)]
    assert torch.equal(draws[0], draws[1]) and draws[0].shape == (7, 16)
    fakes = loaded.sample_images(draws[0], torch.Generator().manual_seed(5))
    assert fakes.shape == (7, 1, 8, 8) and torch.equal(fakes, trained.sample_images(
        draws[1], torch.Generator().manual_seed(5)))


def test_torchscript_adapter_runs_an_exported_diffae(trained, images, tmp_path):
    encoder, noise = torch.jit.script(trained.encoder), torch.jit.script(trained.noise)
    adapter = TorchScriptDiffusionAutoencoder(encoder, noise, image_shape=(1, 8, 8), timesteps=100, steps=5)
    assert adapter.latent_shape == (1, 16)
    x = images[:5]
    z, x_T = adapter.encode_semantic(x), adapter.encode_stochastic(x)
    torch.testing.assert_close(z, trained.encode_semantic(x))
    torch.testing.assert_close(adapter.decode_semantic(z, x_T), trained.decode_semantic(z, x_T))
    adapter.fit_density(trained.encode_semantic(images), "gaussian")
    folder = save_codec(adapter, tmp_path / "exported")
    assert sorted(p.name for p in folder.iterdir()) == ["density.pt", "diffae.json", "noise_model.pt",
                                                        "semantic_encoder.pt"]
    loaded = load_codec(folder)
    assert isinstance(loaded, TorchScriptDiffusionAutoencoder) and loaded.steps == 5 and loaded.has_density
    torch.testing.assert_close(loaded.decode_semantic(z, x_T), adapter.decode_semantic(z, x_T))
    gen = [torch.Generator().manual_seed(2) for _ in range(2)]
    assert torch.equal(loaded.sample_semantic(3, gen[0]), adapter.sample_semantic(3, gen[1]))

    wrong = torch.jit.script(torch.nn.Flatten())  # returns (N, 64) codes but noise of the wrong shape
    with pytest.raises(InvalidInputError, match="noise model fails"):
        TorchScriptDiffusionAutoencoder(wrong, wrong, image_shape=(1, 8, 8))
    with pytest.raises(InvalidInputError, match="semantic encoder must return"):
        TorchScriptDiffusionAutoencoder(torch.jit.script(torch.nn.Identity()), noise, image_shape=(1, 8, 8))
    with pytest.raises(InvalidInputError, match="semantic encoder file not found"):
        TorchScriptDiffusionAutoencoder(tmp_path / "none.pt", noise, image_shape=(1, 8, 8))
    (folder / "diffae.json").write_text('{"image_shape": [1, 8, 8], "beta": 2}')
    with pytest.raises(InvalidInputError, match="unknown keys"):
        load_codec(folder)
