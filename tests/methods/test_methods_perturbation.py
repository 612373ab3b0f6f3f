"""Protective perturbation (protective-perturbation.md, Algorithm 1, Eq. 1-4)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import privis.methods.perturbation as perturbation_module
from privis import methods, metrics, models
from privis.errors import InvalidInputError
from privis.methods.base import NotFittedError
from privis.methods.perturbation import BF16_TOLERANCE, ProtectivePerturbation, transform_chunk_size
from privis.methods.perturbation_training import (
    aux_loss_term,
    crop_flip,
    evaluate_loss,
    perturbation_loss,
    ssim_loss_term,
    train_generator,
)
from privis.models.unet import UNetPerturbation


@pytest.fixture(scope="module")
def digits_aux(digits_train):
    """A second, differently seeded classifier on digits: the auxiliary model (on the CPU, as the tests'
    tensors)."""
    torch.manual_seed(1)
    model = models.create("lenet5", num_classes=10, in_channels=1, image_size=8)
    models.train(model, digits_train.images, digits_train.labels, epochs=4, seed=1, device="cpu")
    return model.eval()


N_FIT = 512  # images the generator tests fit on (digits, 8x8)


def _small(**kw):
    params = dict(width=4, epochs=2, batch_size=128, random_state=0)
    params.update(kw)
    return ProtectivePerturbation(**params)


# ------------------------------------------------------------------------------------------ loss terms


def test_signed_ssim_term_lowers_similarity_and_goes_negative_abs_does_not():
    """Eq. (3) as the paper writes it: minimising +SSIM lowers SSIM, past 0 towards an inverted image;
    minimising |SSIM| stops at 0 (the module docstring's check of the sign convention)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 16, 16, generator=gen)
    finals = {}
    for mode in ("signed", "abs"):
        xp = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1).requires_grad_(True)
        opt = torch.optim.Adam([xp], lr=0.08)
        for _ in range(80):
            loss = ssim_loss_term(x, xp, mode=mode).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        finals[mode] = float(metrics.ssim(xp.detach(), x, win_size=7).mean())
    assert finals["signed"] < -0.3  # kept falling below 0: an anti-correlated (inverted) structure
    assert abs(finals["abs"]) < 0.1  # |SSIM| minimised: near 0, not inverted


def test_aux_terms():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 2])
    ce = aux_loss_term(logits, y, "ce")
    torch.testing.assert_close(ce, -F.cross_entropy(logits, y, reduction="none"))
    comp = aux_loss_term(logits, y, "complement")
    p = torch.softmax(logits, 1)[torch.arange(2), y]
    torch.testing.assert_close(comp, -torch.log1p(-p))
    assert (comp >= 0).all() and (ce <= 0).all()
    # the complement term is bounded: a confidently wrong auxiliary model gives ~0, CE keeps falling
    wrong = torch.tensor([[-30.0, 30.0, 0.0]])
    assert float(aux_loss_term(wrong, torch.tensor([0]), "complement")) < 1e-6
    assert float(aux_loss_term(wrong, torch.tensor([0]), "ce")) < -50


def test_perturbation_loss_is_eq4(digits_train, digits_lenet, digits_aux):
    x = digits_train.images[:32]
    y = digits_train.labels[:32]
    xp = (x + 0.1 * torch.rand(x.shape)).clamp(0, 1)
    parts = perturbation_loss(x, xp, y, digits_lenet, digits_aux, target_weight=1.0, aux_weight=0.7, ssim_weight=0.5)
    ce_t = F.cross_entropy(digits_lenet(xp), y)
    ce_a = F.cross_entropy(digits_aux(xp), y)
    si = metrics.ssim(xp, x, win_size=7).mean()
    torch.testing.assert_close(parts.total, 1.0 * ce_t - 0.7 * ce_a + 0.5 * si)
    no_aux = perturbation_loss(x, xp, y, digits_lenet, None, ssim_weight=0.5)
    assert no_aux.aux_term is None
    torch.testing.assert_close(no_aux.total, ce_t + 0.5 * si)


def test_crop_flip_moves_and_mirrors_whole_images():
    x = torch.rand(64, 2, 8, 8)
    gen = torch.Generator().manual_seed(0)
    flipped_only = crop_flip(x, gen, pad=0)
    same = (flipped_only == x).flatten(1).all(1)
    mirrored = (flipped_only == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 64
    shifted = crop_flip(x, gen, pad=2)
    assert shifted.shape == x.shape
    assert float((shifted - x).abs().mean()) > 0


# ------------------------------------------------------------------------------------------ training


def test_ssim_only_training_lowers_similarity(digits_train):
    """Algorithm 1 with only Eq. (3) (w_target = 0, no auxiliary model): SSIM(x, x') falls from 1."""
    torch.manual_seed(0)
    g = UNetPerturbation(1, width=4)
    with torch.no_grad():  # start near the identity (exactly at it, SSIM's gradient is 0: a maximum)
        g.outc.weight.mul_(0.01)
        g.outc.bias.zero_()
    x, y = digits_train.images[:256], digits_train.labels[:256]
    dummy = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    before = evaluate_loss(g, x, y, dummy, None, target_weight=0.0, ssim_weight=1.0)["ssim_term"]
    train_generator(g, x, y, dummy, None, val=(x, y), epochs=6, batch_size=64, target_weight=0.0,
                    ssim_weight=1.0, augment=False)
    after = evaluate_loss(g, x, y, dummy, None, target_weight=0.0, ssim_weight=1.0)["ssim_term"]
    assert before > 0.95 and after < 0.6


def test_fit_transform_keeps_best_epoch_and_reports(digits_train, digits_test, digits_lenet, digits_aux):
    pp = _small(target_model=digits_lenet, aux_model=digits_aux, epochs=3)
    x, y = digits_train.images[:N_FIT], digits_train.labels[:N_FIT]
    pp.fit(x, y)
    h = pp.history_
    assert len(h.train) == len(h.val) == 3
    losses = [v["loss"] for v in h.val]
    assert h.best_epoch == losses.index(min(losses)) + 1 and h.best_val_loss == min(losses)
    # the generator kept is the best epoch's: recomputing its validation loss gives the recorded value
    order = torch.randperm(N_FIT, generator=torch.Generator().manual_seed(0))
    va = order[:round(0.1 * N_FIT)]
    again = evaluate_loss(pp.generator_, x[va], y[va], pp.target_model_, pp.aux_model_, ssim_weight=0.5,
                          ssim_term=pp.ssim_term, aux_loss=pp.aux_loss)
    assert again["loss"] == pytest.approx(h.best_val_loss, rel=1e-4, abs=1e-4)
    out = pp.transform(digits_test.images, digits_test.labels)
    assert out.shape == digits_test.images.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert float((out - digits_test.images).abs().mean()) > 1e-3
    diag = pp.diagnostics()
    for key in ("target_acc_original", "target_acc_protected", "aux_acc_original", "aux_acc_protected",
                "generator_best_epoch"):
        assert key in diag
    assert diag["target_acc_original"] == pytest.approx(models.evaluate(digits_lenet, digits_test.images,
                                                                        digits_test.labels))
    assert diag["aux_acc_protected"] == pytest.approx(models.evaluate(digits_aux, out, digits_test.labels))
    # the given models are not modified: fit works on frozen copies
    assert all(p.requires_grad for p in digits_aux.parameters())
    assert not any(p.requires_grad for p in pp.generator_.parameters())


def test_same_seed_same_generator_and_no_aux_variant(digits_train, digits_test, digits_lenet, digits_aux):
    x, y = digits_train.images[:N_FIT], digits_train.labels[:N_FIT]
    a = _small(target_model=digits_lenet, aux_model=digits_aux, use_aux=False, epochs=1).fit(x, y)
    b = _small(target_model=digits_lenet, aux_model=digits_aux, use_aux=False, epochs=1).fit(x, y)
    torch.testing.assert_close(a.transform(digits_test.images), b.transform(digits_test.images))
    assert "aux_term" not in a.history_.train[0]  # Eq. (2) is not in the loss
    a.transform(digits_test.images, digits_test.labels)
    assert "aux_acc_protected" in a.diagnostics()  # the auxiliary model still measures the result


def test_trains_its_own_classifiers_and_saves_the_generator(tmp_path, digits_train, digits_test):
    pp = _small(target_arch="lenet5", aux_arch="lenet5", classifier_epochs=2, epochs=1)
    pp.fit(digits_train.images[:N_FIT], digits_train.labels[:N_FIT])
    assert pp.target_model_.arch == "lenet5" and pp.aux_model_ is not None
    path = pp.save_generator(tmp_path / "gen.pt", extra={"data": "digits"})
    gen, info = models.load_checkpoint(path)
    assert info["extra"]["target_arch"] == "lenet5" and info["extra"]["data"] == "digits"
    with torch.no_grad():
        torch.testing.assert_close(gen(digits_test.images), pp.transform(digits_test.images))


@pytest.fixture(scope="module")
def one_epoch(digits_train, digits_lenet, digits_aux):
    """A generator trained for one epoch (fp32), shared by the transform tests that do not change it."""
    return _small(target_model=digits_lenet, aux_model=digits_aux, epochs=1).fit(digits_train.images[:N_FIT],
                                                                                 digits_train.labels[:N_FIT])


def test_transform_in_pixel_bounded_chunks_gives_the_same_images(monkeypatch, digits_test, one_epoch):
    pp = one_epoch
    whole = pp.transform(digits_test.images)
    monkeypatch.setattr(perturbation_module, "_CHUNK_PIXELS", 7 * 8 * 8)  # 7 digits per chunk: a ragged last chunk
    torch.testing.assert_close(pp.transform(digits_test.images), whole)


def test_bf16_transform_is_within_tolerance_of_fp32_and_fp32_is_unchanged(digits_test, one_epoch):
    """precision="bf16" (CPU autocast, the code path of CUDA's fp16/bf16): pixels within BF16_TOLERANCE of
    fp32, the same |SSIM| to the originals and the same target accuracy; fp32 is exactly the plain chunked
    float32 forward pass (no autocast)."""
    pp = copy.copy(one_epoch)  # a shallow copy shares the fitted models; its precision is its own
    x, y = digits_test.images, digits_test.labels
    fp32 = pp.transform(x, y)
    fp32_diag = pp.diagnostics()
    step = transform_chunk_size(x.shape, torch.device("cpu"), width=4, batch_size=pp.batch_size)
    with torch.no_grad():
        plain = torch.cat([pp.generator_(x[i:i + step].contiguous(memory_format=torch.channels_last))
                           for i in range(0, len(x), step)])
    assert torch.equal(fp32, plain)
    pp.set_params(precision="bf16")
    bf16 = pp.transform(x, y)
    assert bf16.dtype == torch.float32 and float(bf16.min()) >= 0 and float(bf16.max()) <= 1
    diff = float((bf16 - fp32).abs().max())
    assert 0 < diff <= BF16_TOLERANCE  # 0 would mean autocast did not engage
    assert float(metrics.ssim(bf16, fp32, win_size=7).mean()) > 0.999
    abs_ssim = [float(metrics.ssim(out, x, win_size=7).abs().mean()) for out in (fp32, bf16)]
    assert abs(abs_ssim[0] - abs_ssim[1]) < 0.01
    assert abs(pp.diagnostics()["target_acc_protected"] - fp32_diag["target_acc_protected"]) <= 0.01


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for generators off CUDA")
def test_fp16_needs_cuda(digits_train, digits_lenet, digits_aux):
    with pytest.raises(InvalidInputError, match="precision='fp16' needs the generator on a CUDA device"):
        _small(target_model=digits_lenet, aux_model=digits_aux, precision="fp16").fit(digits_train.images,
                                                                                      digits_train.labels)
    pp = _small(target_model=digits_lenet, aux_model=digits_aux, epochs=0).fit(digits_train.images[:8])
    pp.precision = "fp16"  # set after fitting: refused by transform too
    with pytest.raises(InvalidInputError, match="precision='fp16'"):
        pp.transform(digits_train.images[:4])
    pp.precision = "fp8"
    with pytest.raises(InvalidInputError, match="unknown precision 'fp8'"):
        pp.transform(digits_train.images[:4])


def test_cuda_chunks_fill_the_free_memory_and_cpu_chunks_are_pixel_bounded(monkeypatch):
    cuda = torch.device("cuda")  # only the device's type matters: the free memory is monkeypatched
    monkeypatch.setattr(perturbation_module, "available_memory_bytes", lambda device: 8 * 2**30)
    # 30 x 30 pads to 32 x 32: 1024 px x width 16 x 16 channels x 4 bytes = 1 MiB per image; half of 8 GiB
    assert transform_chunk_size((10**6, 3, 30, 30), cuda, width=16, batch_size=8) == 4096
    assert transform_chunk_size((10**6, 3, 30, 30), cuda, width=16, batch_size=8, dtype=torch.bfloat16) == 8192
    assert transform_chunk_size((100, 3, 30, 30), cuda, width=16, batch_size=8) == 100  # never past N
    assert transform_chunk_size((5, 3, 4096, 4096), cuda, width=64, batch_size=8) == 1  # at least one image
    cpu = torch.device("cpu")
    assert transform_chunk_size((10**6, 3, 32, 32), cpu, width=16, batch_size=8) == 256
    assert transform_chunk_size((10**6, 3, 224, 224), cpu, width=16, batch_size=512) == 20


def test_registry_errors_and_not_fitted(digits_train):
    assert isinstance(methods.create("perturbation"), ProtectivePerturbation)
    with pytest.raises(NotFittedError):
        ProtectivePerturbation().transform(digits_train.images[:2])
    with pytest.raises(InvalidInputError, match="use_aux=True needs an auxiliary model"):
        ProtectivePerturbation(aux_arch=None).fit(digits_train.images, digits_train.labels)
    with pytest.raises(InvalidInputError, match="ssim_term"):
        ProtectivePerturbation(ssim_term="negative").fit(digits_train.images, digits_train.labels)
    with pytest.raises(InvalidInputError, match="needs labels"):
        ProtectivePerturbation().fit(digits_train.images)
    with pytest.raises(InvalidInputError, match="val_fraction"):
        ProtectivePerturbation(val_fraction=1.5).fit(digits_train.images, digits_train.labels)
