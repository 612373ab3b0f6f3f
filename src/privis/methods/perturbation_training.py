"""Algorithm 1 of protective perturbation: the losses (Eq. 1-5), the crop-and-flip augmentation and the
generator's training loop, behind :class:`privis.methods.perturbation.ProtectivePerturbation`.

Ye, Tang, Phan, Xie, Yuan & Wei, "Visual Privacy Protection in Mobile Image Recognition Using Protective
Perturbation", ACM MMSys 2022, doi:10.1145/3524273.3528189: Section 4 (Algorithm 1, Eq. 1-5).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from privis import metrics
from privis.models.training import index_batches
from privis.progress import progress

SsimTerm = Literal["signed", "abs"]
AuxLoss = Literal["ce", "complement"]


# ------------------------------------------------------------------------------------------ building blocks


def ssim_loss_term(original: Tensor, protected: Tensor, *, mode: SsimTerm = "signed", win_size: int = 7) -> Tensor:
    """``Loss_SI`` of Eq. (3) per image: ``SSIM(x, x')`` (``mode="signed"``, the paper) or ``|SSIM(x, x')|``.

    Args:
        original: ``(N, C, H, W)`` originals ``x``.
        protected: ``(N, C, H, W)`` protected images ``x'`` (differentiable).
        mode: ``"signed"`` or ``"abs"`` (see the module docstring).
        win_size: SSIM window (scikit-image conventions, :func:`privis.metrics.ssim`), shrunk to fit.

    Returns:
        ``(N,)`` tensor; gradients flow to ``protected``.
    """
    win = metrics.ssim_window(original.shape[-2], original.shape[-1], win_size)
    s = cast(Tensor, metrics.ssim(protected, original, win_size=win, use_sample_covariance=win > 1))
    return s.abs() if mode == "abs" else s


def aux_loss_term(logits: Tensor, labels: Tensor, mode: AuxLoss = "ce") -> Tensor:
    """``Loss_aux`` per image, the term Eq. (4) adds with weight ``w_aux``.

    Args:
        logits: ``(N, K)`` auxiliary logits ``F_aux(x')``.
        labels: ``(N,)`` true labels.
        mode: ``"ce"``: Eq. (2), ``-CE(F_aux(x'), y) = log p_aux(y | x')``, unbounded below (the generator
            can keep lowering it by making the auxiliary model ever more confident in a wrong class, at
            the target's expense); ``"complement"``: ``-log(1 - p_aux(y | x'))``, the cross-entropy of "not
            ``y``", which is >= 0 and reaches 0 once the auxiliary model gives ``y`` no probability, so the
            target term takes over (beyond the paper).

    Returns:
        ``(N,)`` tensor (differentiable).
    """
    if mode == "ce":
        return -F.cross_entropy(logits, labels, reduction="none")
    # log(1 - p_y) = logsumexp over k != y of the logits - logsumexp over all k (stable; no 1 - p)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return -(torch.logsumexp(others, dim=1) - torch.logsumexp(logits, dim=1))


@dataclass
class LossParts:
    """The terms of Eq. (4) for one batch (means over the batch), and the total."""

    total: Tensor
    target_ce: Tensor
    aux_term: Tensor | None
    ssim: Tensor

    def floats(self) -> dict[str, float]:
        out = {"loss": float(self.total.detach()), "target_ce": float(self.target_ce.detach()),
               "ssim_term": float(self.ssim.detach())}
        if self.aux_term is not None:
            out["aux_term"] = float(self.aux_term.detach())
        return out


def perturbation_loss(
    original: Tensor,
    protected: Tensor,
    labels: Tensor,
    target: nn.Module,
    aux: nn.Module | None,
    *,
    target_weight: float = 1.0,
    aux_weight: float = 1.0,
    ssim_weight: float = 0.5,
    ssim_term: SsimTerm = "signed",
    ssim_win_size: int = 7,
    aux_loss: AuxLoss = "ce",
) -> LossParts:
    """Eq. (4): ``w_t * CE(F_target(x'), y) - w_aux * CE(F_aux(x'), y) + w_SI * SSIM(x, x')``.

    Args:
        original: ``(N, C, H, W)`` originals ``x`` in ``[0, 1]``.
        protected: ``(N, C, H, W)`` ``x' = clamp(x + U(x))`` (Algorithm 1 lines 4-5), differentiable.
        labels: ``(N,)`` true labels ``y``.
        target: frozen ``F_target`` (Eq. 1).
        aux: frozen ``F_aux`` (Eq. 2), or None for the "no auxiliary model" variant (the term is dropped).
        target_weight, aux_weight, ssim_weight: ``w_target``, ``w_aux``, ``w_SI``.
        ssim_term: ``"signed"`` (Eq. 3) or ``"abs"``.
        ssim_win_size: SSIM window.
        aux_loss: ``"ce"`` (Eq. 2) or ``"complement"``, see :func:`aux_loss_term`.

    Returns:
        :class:`LossParts`; ``total`` is the scalar to minimise (Algorithm 1, "Update U to minimize Loss").
    """
    target_ce = F.cross_entropy(target(protected), labels)
    similarity = ssim_loss_term(original, protected, mode=ssim_term, win_size=ssim_win_size).mean()
    total = target_weight * target_ce + ssim_weight * similarity
    aux_term = None
    if aux is not None:
        aux_term = aux_loss_term(aux(protected), labels, aux_loss).mean()
        total = total + aux_weight * aux_term
    return LossParts(total=total, target_ce=target_ce, aux_term=aux_term, ssim=similarity)


def crop_flip(images: Tensor, generator: torch.Generator, pad: int | None = None) -> Tensor:
    """Sec. 3.2's preprocessing: random crop after edge padding, random horizontal flip, per image.

    Args:
        images: ``(N, C, H, W)``.
        generator: source of the per-image offsets and flips (CPU generator).
        pad: padding before cropping back to ``H x W``; default ``H // 8`` (4 px for 32 px images, the
            CIFAR-10 recipe the paper follows), at least 1.

    Returns:
        ``(N, C, H, W)``; each image shifted by its own ``(dy, dx)`` in ``[-pad, pad]`` and flipped with
        probability 1/2, with one gather for the whole batch (no loop over images).
    """
    n, c, h, w = images.shape
    pad = max(1, h // 8) if pad is None else pad
    padded = F.pad(images, [pad, pad, pad, pad], mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(images.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    cols = torch.arange(w, device=images.device)
    cols = torch.where(flip[:, None], w - 1 - cols[None, :], cols[None, :])  # (N, W)
    rows = dy[:, None] + torch.arange(h, device=images.device)[None, :]  # (N, H)
    cols = dx[:, None] + cols
    idx_n = torch.arange(n, device=images.device)[:, None, None, None]
    idx_c = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]


def classifier_epochs_for(n: int) -> int:
    """Epochs for a classifier trained on ``n`` images: ``clip(ceil(60000 / n), 10, 60)``.

    The rule ``privis evaluate`` uses for its baseline model (``experiments.evaluate.auto_epochs``; methods
    may not import experiments, so it is restated here), so the default target is that baseline.
    """
    return int(min(60, max(10, math.ceil(60000 / max(n, 1)))))


@dataclass
class GeneratorHistory:
    """Per-epoch record of Algorithm 1: mean training terms, validation loss, and the epoch kept."""

    train: list[dict[str, float]] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {"train": self.train, "val": self.val, "best_epoch": self.best_epoch,
                "best_val_loss": self.best_val_loss}


def train_generator(
    generator: nn.Module,
    images: Tensor,
    labels: Tensor,
    target: nn.Module,
    aux: nn.Module | None,
    *,
    val: tuple[Tensor, Tensor],
    epochs: int,
    lr: float = 5e-3,
    weight_decay: float = 5e-4,
    batch_size: int = 256,
    target_weight: float = 1.0,
    aux_weight: float = 1.0,
    ssim_weight: float = 0.5,
    ssim_term: SsimTerm = "signed",
    ssim_win_size: int = 7,
    aux_loss: AuxLoss = "ce",
    augment: bool = True,
    seed: int = 0,
) -> GeneratorHistory:
    """Algorithm 1: train ``U`` against frozen classifiers; keep the epoch with the lowest validation loss.

    Args:
        generator: ``U``, trained in place; on return it holds the best epoch's weights, in eval mode.
        images, labels: training data ``X, Y``.
        target, aux: frozen ``F_target`` and ``F_aux`` (None: no auxiliary term).
        val: ``(images, labels)`` for model selection (Fig. 4): the full Eq. (4) loss, no augmentation.
        epochs: ``max_epochs``.
        lr, weight_decay, batch_size: AdamW settings (Sec. 4.1.3).
        target_weight, aux_weight, ssim_weight, ssim_term, ssim_win_size, aux_loss: see
            :func:`perturbation_loss`.
        augment: apply :func:`crop_flip` to each training batch.
        seed: shuffling and augmentation.
    """
    weights: dict[str, Any] = {"target_weight": target_weight, "aux_weight": aux_weight, "ssim_weight": ssim_weight,
               "ssim_term": ssim_term, "ssim_win_size": ssim_win_size, "aux_loss": aux_loss}
    opt = torch.optim.AdamW(generator.parameters(), lr=lr, weight_decay=weight_decay)
    rng = torch.Generator().manual_seed(seed)
    device = next(generator.parameters()).device
    history = GeneratorHistory()
    best_state = copy.deepcopy(generator.state_dict())
    n = images.shape[0]
    for epoch in range(1, epochs + 1):
        generator.train()
        sums: dict[str, float] = {}
        batches = index_batches(n, batch_size, rng)
        for idx in progress(batches, total=len(batches), desc=f"perturbation generator {epoch}/{epochs}"):
            x = images[idx].to(device)
            y = labels[idx].to(device)
            if augment:
                x = crop_flip(x, rng)
            parts = perturbation_loss(x, generator(x), y, target, aux, **weights)
            if not torch.isfinite(parts.total):
                raise FloatingPointError(f"generator training diverged at epoch {epoch} "
                                         f"(loss {float(parts.total.detach())})")
            opt.zero_grad(set_to_none=True)
            parts.total.backward()
            opt.step()
            for key, value in parts.floats().items():
                sums[key] = sums.get(key, 0.0) + value * idx.numel()
        history.train.append({k: v / n for k, v in sums.items()})
        val_parts = evaluate_loss(generator, val[0], val[1], target, aux, batch_size=max(batch_size, 512), **weights)
        history.val.append(val_parts)
        if val_parts["loss"] < history.best_val_loss:
            history.best_val_loss = val_parts["loss"]
            history.best_epoch = epoch
            best_state = copy.deepcopy(generator.state_dict())
    generator.load_state_dict(best_state)
    generator.eval()
    return history


def evaluate_loss(generator: nn.Module, images: Tensor, labels: Tensor, target: nn.Module, aux: nn.Module | None,
                  *, batch_size: int = 512, **weights: Any) -> dict[str, float]:
    """Mean Eq. (4) terms of ``generator`` (eval mode, no gradients) over ``(images, labels)``, plus the
    target's (and auxiliary's) accuracy on the protected images (``target_acc``, ``aux_acc``)."""
    generator.eval()
    device = next(generator.parameters()).device
    sums: dict[str, float] = {}
    n = images.shape[0]
    with torch.no_grad():
        for start in range(0, n, batch_size):
            x = images[start:start + batch_size].to(device)
            y = labels[start:start + batch_size].to(device)
            protected = generator(x)
            parts = perturbation_loss(x, protected, y, target, aux, **weights)
            values = parts.floats()
            values["target_acc"] = float((target(protected).argmax(1) == y).float().mean())
            if aux is not None:
                values["aux_acc"] = float((aux(protected).argmax(1) == y).float().mean())
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value * y.numel()
    return {k: v / n for k, v in sums.items()}
