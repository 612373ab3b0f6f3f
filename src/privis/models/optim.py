"""Optimizers by name, behind a registry, so training code and configs say ``optimizer="adam"``.

Built in: ``"sgd"`` (with momentum), ``"adam"``, ``"adamw"``. Other modules add theirs (e.g. ST-Adam)
with :func:`register_optimizer`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from privis.errors import InvalidInputError
from privis.registry import Registry

#: Adam's moment decay rates and epsilon (Kingma and Ba's defaults, as ``torch.optim.Adam``'s).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

#: ``fn(params, *, lr, weight_decay, momentum) -> Optimizer``; builders ignore what they do not use.
OptimizerBuilder = Callable[..., torch.optim.Optimizer]

#: The registry of optimizer builders (:class:`privis.registry.Registry`).
REGISTRY: Registry[OptimizerBuilder] = Registry("optimizer", ("privis.models.st_adam",))


def register_optimizer(name: str) -> Callable[[OptimizerBuilder], OptimizerBuilder]:
    """Decorator registering ``fn(params, *, lr, weight_decay, momentum) -> Optimizer`` under ``name``.

    Raises:
        InvalidInputError: an empty name; :class:`~privis.registry.DuplicateNameError` (one) when the decorator
            meets a name another builder has.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"optimizer name must be a non-empty string, got {name!r}")
    return REGISTRY.register(name)


def available_optimizers() -> list[str]:
    """Names of every registered optimizer, sorted."""
    return REGISTRY.list()


def make_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """Build the optimizer registered as ``name`` over ``params``.

    Raises:
        InvalidInputError: unknown name (the message lists the available ones), or a negative or
            non-finite ``lr``/``weight_decay``, or ``momentum`` outside ``[0, 1)``.
    """
    REGISTRY.get(name)  # an unknown name first
    for value, what in ((lr, "lr"), (weight_decay, "weight_decay")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise InvalidInputError(f"{what} must be a finite number >= 0, got {value!r}")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise InvalidInputError(f"momentum must be in [0, 1), got {momentum!r}")
    optimizer: torch.optim.Optimizer = REGISTRY.create(name, params, lr=float(lr), weight_decay=float(weight_decay),
                                                       momentum=float(momentum))
    return optimizer


@register_optimizer("sgd")
def _sgd(params: Any, *, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    """SGD with (heavy-ball) momentum."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@register_optimizer("adam")
def _adam(params: Any, *, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba, 2015); ``momentum`` is used as beta1, which is 0.9 by default as in the paper."""
    return torch.optim.Adam(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)


@register_optimizer("adamw")
def _adamw(params: Any, *, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay, Loshchilov & Hutter, 2019); ``momentum`` is beta1."""
    return torch.optim.AdamW(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)


def adam_update(m: torch.Tensor, v: torch.Tensor, grad: torch.Tensor, t: int, lr: float | torch.Tensor, *,
                betas: tuple[float, float] = ADAM_BETAS, eps: float = ADAM_EPS) -> torch.Tensor:
    """One element-wise Adam step (D. P. Kingma and J. Ba, "Adam: A Method for Stochastic Optimization", ICLR
    2015, Algorithm 1) on tensors, for per-sample iterations that stop samples by masking or compaction.

    Updates the first and second moments ``m`` and ``v`` in place with ``grad`` (all of one shape) and returns
    the step ``lr * m_hat / (sqrt(v_hat) + eps)`` (to subtract), ``t >= 1`` the step number; ``lr`` may be a
    tensor broadcasting against ``m`` (a per-coordinate step size).
    """
    b1, b2 = betas
    m.mul_(b1).add_(grad.mul(1 - b1))
    v.mul_(b2).add_(grad.square().mul_(1 - b2))
    return m.div(1 - b1**t).mul_(lr).div_(v.div(1 - b2**t).sqrt_().add_(eps))
