"""Veil Privacy: Eq. (1) masks, Eq. (2)-(3) gradient iteration, the Protector contract."""

from __future__ import annotations

import pytest
import torch

from privis import methods, metrics, models
from privis.errors import InvalidInputError
from privis.methods import veil as veil_module
from privis.methods.base import NotFittedError
from privis.methods.veil import (
    Veil,
    flip_mask,
    gradient_iteration,
    random_pixel_flip,
    to_canonical,
    to_signed,
)
from privis.models import FeatureExtractor


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_flip_mask_fraction_matches_p(p):
    gen = torch.Generator().manual_seed(1)
    mask = flip_mask((64, 1, 28, 28), p, gen)
    assert set(mask.unique().tolist()) <= {-1.0, 1.0}
    frac = float((mask < 0).float().mean())
    # 50,176 Bernoulli(p) draws: standard error below 0.0023, so 0.01 is > 4 sigma.
    assert abs(frac - p) < 0.01


def test_rpf_keeps_magnitudes_in_signed_domain():
    gen = torch.Generator().manual_seed(0)
    x = to_signed(torch.rand(8, 3, 16, 16))
    flipped = random_pixel_flip(x, 0.5, gen)
    assert torch.equal(flipped.abs(), x.abs())
    assert not torch.equal(flipped, x)


def test_signed_round_trip():
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(to_canonical(to_signed(x)), x, atol=1e-7)


def _flipped(model, dataset, n, *, seed):
    """F = the model's logits, the first ``n`` images in [-1, 1] and their Eq. (1) flips."""
    x = to_signed(dataset.images[:n])
    return FeatureExtractor(model, "logits").eval(), x, random_pixel_flip(x, 0.5, torch.Generator().manual_seed(seed))


def test_gia_lowers_feature_distance(digits_lenet, digits_test):
    feats, x, start = _flipped(digits_lenet, digits_test, 64, seed=0)
    with torch.no_grad():
        target = feats(to_canonical(x.clone()))
        before = (feats(to_canonical(start.clone())) - target).abs().sum(1)
    out, stats = gradient_iteration(start, x, feats, alpha=0.999, beta=0.001, steps=100, stop_loss=0.3,
                                    step_size=0.02)
    with torch.no_grad():
        after = (feats(to_canonical(out.clone())) - target).abs().sum(1)
    assert after.mean() < 0.25 * before.mean()
    assert out.min() >= -1 and out.max() <= 1
    # every sample flagged as reached really satisfies L < xi
    assert (stats.final_loss[stats.reached] < 0.3).all()
    assert (stats.steps <= 100).all()


def test_gia_sample_trajectory_independent_of_batch(digits_lenet, digits_test):
    """Per-sample early stopping and element-wise Adam: a sample's result ignores its batch-mates."""
    feats, x, start = _flipped(digits_lenet, digits_test, 16, seed=3)
    kwargs = dict(alpha=0.999, beta=0.001, steps=60, stop_loss=0.3, step_size=0.02)
    batch, _ = gradient_iteration(start, x, feats, **kwargs)
    alone, _ = gradient_iteration(start[5:6], x[5:6], feats, **kwargs)
    assert torch.allclose(batch[5:6], alone, atol=1e-5)


def _per_sample_reference(start, target, feats, *, steps, xi, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Eq. (2) with Adam, one sample at a time, stopping with a Python ``break``: the loop that the batched,
    masked iteration must reproduce. Returns the iterates and the number of updates of each sample."""
    outs, taken = [], []
    for i in range(start.shape[0]):
        x, target_i = start[i:i + 1].clone(), target[i:i + 1]
        with torch.no_grad():
            target_features = feats(to_canonical(target_i.clone()))
        m, v, k = torch.zeros_like(x), torch.zeros_like(x), 0
        for t in range(1, steps + 1):
            xg = x.clone().requires_grad_(True)
            feat = feats(((xg + 1.0) * 0.5).contiguous(memory_format=torch.channels_last))
            loss = (0.999 * (feat - target_features).abs().sum()
                    - 0.001 * ((xg - target_i).square().sum() + 1e-12).sqrt())
            if loss < xi:
                break
            (g,) = torch.autograd.grad(loss, xg)
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g.square()
            x = (x - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)).clamp(-1.0, 1.0)
            k += 1
        outs.append(x)
        taken.append(k)
    return torch.cat(outs), torch.tensor(taken)


def test_masked_stopping_matches_the_per_sample_loop(digits_lenet, digits_test):
    """Stopped samples are masked (and the batch compacted now and then), never updated again: each
    sample ends exactly where a loop over that sample alone, breaking at ``L < xi``, ends."""
    feats, x, start = _flipped(digits_lenet, digits_test, 12, seed=4)
    kwargs = dict(alpha=0.999, beta=0.001, steps=30, step_size=0.05)
    # xi: the median loss after all T steps, so that some samples stop early and some never stop
    _, unstopped = gradient_iteration(start, x, feats, **kwargs, stop_loss=float("-inf"))
    xi = float(unstopped.final_loss.median())
    out, stats = gradient_iteration(start, x, feats, **kwargs, stop_loss=xi)
    ref, ref_taken = _per_sample_reference(start, x, feats, steps=30, xi=xi, lr=0.05)
    assert 0 < int((stats.steps < 30).sum()) < 12
    assert torch.equal(stats.steps, ref_taken)
    assert torch.allclose(out, ref, atol=1e-5)
    # the host looks at the mask every step on the CPU; looking less often (as on CUDA) changes nothing,
    # and compile is a CUDA-only option that leaves the CPU path as it is
    sparse, sparse_stats = gradient_iteration(start, x, feats, **kwargs, stop_loss=xi, check_every=7,
                                                   compile=True)
    assert torch.equal(sparse, out) and torch.equal(sparse_stats.steps, stats.steps)
    assert torch.equal(sparse_stats.reached, stats.reached)


def test_cpu_chunks_give_each_sample_its_own_result(digits_lenet, digits_test, monkeypatch):
    """On the CPU the batch runs in chunks (cache); samples are independent, so chunking changes nothing."""
    feats, x, start = _flipped(digits_lenet, digits_test, 10, seed=6)
    kwargs = dict(alpha=0.999, beta=0.001, steps=20, stop_loss=2.0, step_size=0.05)
    whole, whole_stats = gradient_iteration(start, x, feats, **kwargs)
    monkeypatch.setattr(veil_module, "CPU_CHUNK_ELEMENTS", 3 * x[0].numel())  # chunks of 3, 3, 3 and 1
    chunked, chunked_stats = gradient_iteration(start, x, feats, **kwargs)
    assert torch.allclose(chunked, whole, atol=1e-5)
    for name in ("steps", "reached"):
        assert torch.equal(getattr(chunked_stats, name), getattr(whole_stats, name))
    assert torch.allclose(chunked_stats.final_loss, whole_stats.final_loss, atol=1e-4)


def test_bf16_autocast_stays_within_the_documented_tolerance_of_fp32(digits_lenet, digits_test):
    """precision="bf16" (CPU autocast): the tolerance stated in gradient_iteration's docstring."""
    feats, x, start = _flipped(digits_lenet, digits_test, 64, seed=5)
    kwargs = dict(alpha=0.999, beta=0.001, steps=100, stop_loss=0.3, step_size=0.05)
    fp32, s32 = gradient_iteration(start, x, feats, **kwargs)
    bf16, s16 = gradient_iteration(start, x, feats, **kwargs, precision="bf16")
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)  # autocast really ran
    diff = (bf16 - fp32).abs()
    assert float(diff.mean()) < 0.1
    assert float(diff.flatten().quantile(0.99)) <= 1.0
    assert abs(float(s16.reached.float().mean()) - float(s32.reached.float().mean())) <= 0.05
    assert abs(float(s16.final_loss.mean()) / float(s32.final_loss.mean()) - 1) <= 0.02
    assert (s16.final_loss[s16.reached] < 0.3).all()


def test_precision_is_checked(digits_lenet, digits_test):
    feats = FeatureExtractor(digits_lenet, "logits").eval()
    x = to_signed(digits_test.images[:2])
    with pytest.raises(InvalidInputError, match="precision"):
        gradient_iteration(x, x, feats, alpha=1.0, beta=0.0, steps=1, stop_loss=0.0, step_size=0.1,
                           precision="fp8")
    with pytest.raises(InvalidInputError, match="precision"):
        Veil(local_model=digits_lenet, precision="int8").fit(digits_test.images)


def test_veil_output_follows_the_input_device(digits_lenet, digits_test, device):
    images = digits_test.images[:8].to(device)
    veil = Veil(local_model=digits_lenet, steps=3, random_state=0).fit(images)
    out = veil.transform(images)
    assert out.device == images.device and out.dtype == torch.float32
    feats = veil.features_
    start, stats = gradient_iteration(to_signed(images), to_signed(images), feats, alpha=1.0, beta=0.0,
                                      steps=2, stop_loss=-1.0, step_size=0.1)
    assert start.device == images.device and stats.steps.device == models.model_device(veil.local_model_)


def test_sgd_step_rule_is_eq3(digits_lenet, digits_test):
    """One SGD step equals x - lr * grad L exactly (Eq. 3)."""
    feats, x, start = _flipped(digits_lenet, digits_test, 4, seed=0)
    out, _ = gradient_iteration(start, x, feats, alpha=1.0, beta=0.0, steps=1, stop_loss=-1.0, step_size=0.01,
                                optimizer="sgd")
    xs = start.clone().requires_grad_(True)
    with torch.no_grad():
        tgt = feats(to_canonical(x.clone()))
    loss = (feats((xs + 1) * 0.5) - tgt).abs().sum()
    (g,) = torch.autograd.grad(loss, xs)
    assert torch.allclose(out, (start - 0.01 * g).clamp(-1, 1), atol=1e-6)


def test_veil_transform_contract(digits_lenet, digits_test):
    veil = Veil(local_model=digits_lenet, steps=50, random_state=0)
    assert veil.fit(digits_test.images) is veil
    out = veil.transform(digits_test.images[:32])
    assert out.shape == (32, 1, 8, 8) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert 0.0 <= veil.diagnostics()["stop_reached_fraction"] <= 1.0
    assert set(veil.diagnostics()) >= {"stop_reached_fraction", "gia_steps_mean"}
    # reproducible with a seed, different without one
    again = Veil(local_model=digits_lenet, steps=50, random_state=0).fit(digits_test.images)
    assert torch.equal(again.transform(digits_test.images[:32]), out)
    a = Veil(local_model=digits_lenet, steps=0).fit(digits_test.images).transform(digits_test.images[:32])
    b = Veil(local_model=digits_lenet, steps=0).fit(digits_test.images).transform(digits_test.images[:32])
    assert not torch.equal(a, b)


def test_veil_hides_structure(digits_lenet, digits_test):
    out = Veil(local_model=digits_lenet, steps=100, random_state=0).fit(digits_test.images).transform(
        digits_test.images[:64])
    s = metrics.ssim(out, digits_test.images[:64], win_size=7).abs().mean()
    assert s < 0.3  # |SSIM| of the flipped image is near 0; a plain copy would be 1


def test_veil_fit_trains_local_model(digits_train):
    veil = Veil(local_epochs=2, steps=5, random_state=0).fit(digits_train.images, digits_train.labels)
    assert veil.local_model_.arch == "lenet5"
    assert not any(p.requires_grad for p in veil.local_model_.parameters())


def test_veil_errors(digits_lenet, digits_test):
    with pytest.raises(NotFittedError):
        Veil().transform(digits_test.images[:2])
    with pytest.raises(InvalidInputError, match="flip_ratio"):
        Veil(flip_ratio=1.5, local_model=digits_lenet).fit(digits_test.images)
    with pytest.raises(InvalidInputError, match="labels"):
        Veil().fit(digits_test.images)
    with pytest.raises(InvalidInputError, match="NaN"):
        Veil(local_model=digits_lenet).fit(torch.full((2, 1, 8, 8), float("nan")))
    with pytest.raises(InvalidInputError, match="feature|layer"):
        Veil(local_model=digits_lenet, feature_layer="nope").fit(digits_test.images)


def test_sign_flip_augmentation(digits_lenet, digits_test):
    veil = Veil(local_model=digits_lenet, random_state=0)
    aug = veil.training_augmentation("sign-flip")
    x = digits_test.images[:8]
    y = aug(x)
    assert torch.allclose(to_signed(y).abs(), to_signed(x).abs(), atol=1e-6)
    assert veil.training_augmentation("none") is None
    with pytest.raises(InvalidInputError):
        veil.training_augmentation("mixup")


def test_registry_and_params():
    veil = methods.create("veil", steps=10)
    assert isinstance(veil, Veil)
    params = veil.get_params()
    assert params["steps"] == 10 and params["flip_ratio"] == 0.5 and params["alpha"] == 0.999
    with pytest.raises(InvalidInputError, match="unknown method"):
        methods.create("nope")


def _weights(veil: Veil) -> torch.Tensor:
    return torch.cat([p.detach().flatten().cpu() for p in veil.local_model_.parameters()])


def test_veil_fit_trains_its_local_model_from_os_entropy_without_a_seed(digits_train):
    """random_state=None means OS entropy (DESIGN.md), for the local model's training as for the masks."""
    x, y = digits_train.images[:200], digits_train.labels[:200]
    rng = torch.get_rng_state()
    a, b = (Veil(local_epochs=1, steps=0).fit(x, y) for _ in range(2))
    assert not torch.equal(_weights(a), _weights(b))
    c, d = (Veil(local_epochs=1, steps=0, random_state=3).fit(x, y) for _ in range(2))
    torch.testing.assert_close(_weights(c), _weights(d))
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's global RNG is left alone


def test_veil_leaves_the_callers_model_as_it_was(digits_test):
    torch.manual_seed(0)
    model = models.create("lenet5", num_classes=10, in_channels=1, image_size=8)  # train mode, gradients on
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    veil = Veil(local_model=model, steps=2).fit(digits_test.images)
    veil.transform(digits_test.images[:8])
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert not veil.local_model_.training and not any(p.requires_grad for p in veil.local_model_.parameters())
