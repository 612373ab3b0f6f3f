"""The protective perturbation protector (fit, transform, precision, chunks, registry); its losses and
training loop are tested in test_methods_perturbation_training.py."""

from __future__ import annotations

import copy

import pytest
import torch

import privis.methods.perturbation as perturbation_module
from privis import methods, metrics, models
from privis.errors import InvalidInputError
from privis.methods.base import NotFittedError
from privis.methods.perturbation import BF16_TOLERANCE, ProtectivePerturbation, transform_chunk_size
from privis.methods.perturbation_training import evaluate_loss

N_FIT = 512  # images the generator tests fit on (digits, 8x8)


def _small(**kw):
    params = dict(width=4, epochs=2, batch_size=128, random_state=0)
    params.update(kw)
    return ProtectivePerturbation(**params)


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
