"""Algorithm 1 of protective perturbation: the loss terms (Eq. 2-4), the augmentation and the training loop.

Ye, Tang, Phan, Xie, Yuan & Wei, "Visual Privacy Protection in Mobile Image Recognition Using Protective
Perturbation", ACM MMSys 2022.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from privis import metrics
from privis.methods.perturbation_training import (
    aux_loss_term,
    crop_flip,
    evaluate_loss,
    perturbation_loss,
    ssim_loss_term,
    train_generator,
)
from privis.models.unet import UNetPerturbation


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
