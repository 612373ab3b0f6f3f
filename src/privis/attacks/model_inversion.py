"""``model-inversion``: class representatives from the service model, by gradient ascent on its outputs.

Fredrikson, Jha & Ristenpart (CCS 2015) invert a classifier by maximising a class score over the input;
the Veil paper evaluates this attack on veiled models (Pang et al., ECCV 2024, Sec. 4.4) and VisualMixer a
GAN variant (Li et al., NDSS 2024, arXiv:2404.04098, Sec. V-C, Fig. 9). With a total-variation prior
(Mahendran & Vedaldi, CVPR 2015) the ascent yields a smooth image per class.

Threat model: white-box access to the service model trained on protected data (``context.service_model``);
no data. For every class ``y`` the attacker maximises
``logit_y(x) - tv_weight * TV(x) - l2_weight * ||x - 0.5||^2`` over ``x = sigmoid(z)`` (so ``x`` stays in
``[0, 1]``) with Adam, all classes in one batch. The representative of class ``y`` is compared by |SSIM| and
PSNR with the mean of that class's originals (``targets`` of the outcome), and the auxiliary classifier
checks whether it reads as class ``y``.

For reference, ``ssim_reference_model`` is the same inversion of a model trained on originals
(``context.reference_model``), and ``ssim_aux_class_means`` compares the attacker's *auxiliary* class means
with the victim's: what knowing the distribution gives without any model.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from privis import references
from privis.attacks import register_attack
from privis.attacks.base import Attack, AttackContext, AttackOutcome, class_means
from privis.errors import InvalidInputError
from privis.methods.base import float_param, int_param
from privis.random import resolve_seed


def total_variation(images: Tensor) -> Tensor:
    """Anisotropic total variation per image ``(N,)``: mean absolute difference of adjacent pixels."""
    dh = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).mean(1)
    dw = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def invert_classes(model: nn.Module, classes: Tensor, shape: tuple[int, int, int], *, steps: int, lr: float,
                   tv_weight: float, l2_weight: float, seed: int) -> Tensor:
    """One representative ``(len(classes), C, H, W)`` per class by regularised gradient ascent on the logits."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    z = (0.1 * torch.randn((classes.numel(), *shape), generator=gen)).to(device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    idx = torch.arange(classes.numel(), device=device)
    try:
        for _ in range(steps):
            x = torch.sigmoid(z)
            logits = model(x)
            objective = (logits[idx, classes.to(device)] - tv_weight * total_variation(x)
                         - l2_weight * (x - 0.5).square().flatten(1).mean(1))
            (z.grad,) = torch.autograd.grad(-objective.sum(), z)  # the model's own gradients stay untouched
            opt.step()
    finally:
        model.train(was_training)
    return torch.sigmoid(z).detach().cpu()


@register_attack
class ModelInversion(Attack):
    """Gradient ascent with a TV prior on the service model: one representative per class (see the module notes).

    Args:
        steps, lr: Adam ascent.
        tv_weight, l2_weight: weights of the total-variation and the pull-to-grey priors.
    """

    name = "model-inversion"
    citation = references.MODEL_INVERSION
    param_specs = {
        "steps": int_param("gradient steps per class", ge=1, le=100_000),
        "lr": float_param("their step size", gt=0, le=100),
        "tv_weight": float_param("weight of the total-variation prior", ge=0, le=1e6),
        "l2_weight": float_param("weight of the L2 prior", ge=0, le=1e6),
    }

    def __init__(self, steps: int = 300, lr: float = 0.1, tv_weight: float = 2.0, l2_weight: float = 0.5) -> None:
        self.steps = steps
        self.lr = lr
        self.tv_weight = tv_weight
        self.l2_weight = l2_weight

    def _invert(self, model: nn.Module, classes: Tensor, shape: tuple[int, int, int], seed: int) -> Tensor:
        return invert_classes(model, classes, shape, steps=self.steps, lr=self.lr, tv_weight=self.tv_weight,
                              l2_weight=self.l2_weight, seed=seed)

    def attack(self, protected: Tensor, context: AttackContext) -> AttackOutcome:
        """Invert the service model for every class in ``context.labels``; one representative per class."""
        if self.steps < 1:
            raise InvalidInputError(f"model-inversion steps must be >= 1, got {self.steps}")
        context.require("service_model", "labels", attack=self.name)
        service_model = cast(nn.Module, context.service_model)  # granted: require() raised otherwise
        classes = torch.unique(torch.as_tensor(context.labels).long())
        seed = resolve_seed(context.seed)
        shape = (protected.shape[1], protected.shape[2], protected.shape[3])
        references: dict[str, Tensor] = {}
        if context.reference_model is not None:
            references["reference_model"] = self._invert(context.reference_model, classes, shape, seed).to(
                protected.device)
        if context.aux_images is not None and context.aux_labels is not None:
            aux, aux_labels = context.aux(self.name)
            assert aux_labels is not None  # context.aux_labels was granted (checked above)
            if set(classes.tolist()) <= set(aux_labels.tolist()):
                references["aux_class_means"] = class_means(aux, aux_labels, classes).to(protected.device)
        recovered = self._invert(service_model, classes, shape, seed).to(protected.device)
        return AttackOutcome(self.name, context.method, recovered=recovered,
                             target_labels=classes, variant="tv-prior", references=references,
                             notes=[f"{self.steps} Adam steps per class, TV weight {self.tv_weight}; compared with "
                                    "each class's mean original"])
