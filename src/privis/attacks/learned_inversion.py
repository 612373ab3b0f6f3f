"""``learned-inversion``: learn the inverse of the public method on the attacker's own data, then apply it.

Threat model (Kerckhoffs; the "known-method" adversary of the VisualMixer paper's GAN-inversion and of
the restoration attacks in the Veil paper, Sec. 4.4): the attacker knows the method and its public
parameters (and any fitted state it publishes), and holds auxiliary images from the same distribution,
disjoint from the victim's. It protects its auxiliary images itself with fresh randomness
(:meth:`AttackContext.attacker_protector`), trains a U-Net from protected to original on those pairs, and
runs it on the victim's protected images. The defender's randomness is never used.

The network is privis's U-Net (:class:`privis.models.unet.UNetPerturbation`: four down/up levels with
skips, output ``clamp(x + delta)``), a residual restorer, at a small width for CPU budgets. Loss:
``L1 + (1 - SSIM)`` (SSIM of :mod:`privis.metrics`, differentiable), Adam.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from privis import metrics, models, references
from privis.attacks import register_attack
from privis.attacks.base import Attack, AttackContext, AttackOutcome
from privis.errors import InvalidInputError
from privis.methods.base import float_param, int_param
from privis.random import default_device, resolve_seed


def train_restorer(inputs: Tensor, targets: Tensor, *, width: int, epochs: int, batch_size: int, lr: float,
                   seed: int) -> nn.Module:
    """Train a U-Net ``inputs -> targets`` (both ``(N, C, H, W)`` in [0, 1]) with ``L1 + (1 - SSIM)``, on
    :func:`privis.random.default_device` (the data moves there one batch at a time)."""
    device = default_device()
    net = models.create_seeded("unet-perturbation", seed, num_classes=1, in_channels=inputs.shape[1],
                               image_size=(inputs.shape[-2], inputs.shape[-1]), width=width)
    net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    win = metrics.ssim_window(*inputs.shape[-2:])
    net.train()
    for _ in range(epochs):
        order = torch.randperm(inputs.shape[0], generator=gen)
        for start in range(0, inputs.shape[0], batch_size):
            idx = order[start:start + batch_size]
            if idx.numel() < 2:  # BatchNorm needs two samples
                continue
            x, y = inputs[idx].to(device), targets[idx].to(device)
            out = net(x)
            loss = F.l1_loss(out, y) + (1.0 - metrics.ssim(out, y, win_size=win).mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


def restore(net: nn.Module, images: Tensor, batch_size: int = 512) -> Tensor:
    """Run a trained restorer over ``images`` in batches (on the restorer's device), without gradients;
    the result is on the device of ``images``."""
    device = models.model_device(net)
    with torch.no_grad():
        return torch.cat([net(images[i:i + batch_size].to(device)).to(images.device)
                          for i in range(0, images.shape[0], batch_size)])


@register_attack
class LearnedInversion(Attack):
    """U-Net trained on (attacker-protected aux, aux) pairs restores the victim's protected images.

    Args:
        width: base width of the U-Net (the paper-size restorers are far larger; 8 suits 2 CPU cores).
        epochs, batch_size, lr: its training (Adam).
        max_aux: at most this many auxiliary images are used.
    """

    name = "learned-inversion"
    citation = references.KNOWN_METHOD_RESTORATION
    param_specs = {
        "width": int_param("base width of the inverting U-Net", ge=1, le=1024),
        "epochs": int_param("its training epochs", ge=1, le=10_000),
        "batch_size": int_param("its batch size", ge=2, le=65_536),
        "lr": float_param("its learning rate", gt=0, le=100),
        "max_aux": int_param("most auxiliary images used (none: all)", ge=1, le=10_000_000, optional=True),
    }

    def __init__(self, width: int = 8, epochs: int = 8, batch_size: int = 32, lr: float = 2e-3,
                 max_aux: int | None = 4000) -> None:
        self.width = width
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_aux = max_aux

    def attack(self, protected: Tensor, context: AttackContext) -> AttackOutcome:
        """Protect the auxiliary images with fresh randomness, learn the inverse, restore ``protected``."""
        if self.epochs < 1 or self.width < 1 or self.batch_size < 2:
            raise InvalidInputError("learned-inversion needs epochs >= 1, width >= 1 and batch_size >= 2")
        aux_protected, aux, _ = context.attacker_protected_aux(self.name, self.max_aux)
        if aux.shape[1:] != protected.shape[1:]:
            raise InvalidInputError(f"auxiliary images {tuple(aux.shape[1:])} and protected images "
                                    f"{tuple(protected.shape[1:])} differ in shape")
        net = train_restorer(aux_protected, aux, width=self.width, epochs=self.epochs, batch_size=self.batch_size,
                             lr=self.lr, seed=resolve_seed(context.seed))
        recovered = restore(net, protected)
        return AttackOutcome(self.name, context.method, recovered=recovered, variant="u-net",
                             scores={"aux_pairs": float(aux.shape[0])},
                             notes=[f"U-Net (width {self.width}) trained {self.epochs} epochs on {aux.shape[0]} "
                                    "auxiliary images protected by the attacker with fresh randomness"])
