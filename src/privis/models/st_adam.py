"""ST-Adam, "Stable Adaptive Moment Estimation".

Li, Zhang, Ren, Li & Zhang, "You Can Use But Cannot Recognize: Preserving Visual Privacy in Deep
Neural Networks", NDSS 2024, arXiv:2404.04098, Section IV-E.

Update rule, per parameter tensor ``w`` with gradient ``g_t``:

* weight decay (coupled, L2): ``g_t <- g_t + lambda * w_t`` ("we added weight decay", Sec. IV-E);
* ``m_t = beta * m_{t-1} + (1 - beta) * g_t`` and ``v_t = gamma * v_{t-1} + (1 - gamma) * g_t^2``;
* ``u_t = m_t / (sqrt(v_t) + eps)`` -- Adam's step *without* the bias corrections of Eq. 21
  (``m_t / (1 - beta^t)``, ``v_t / (1 - gamma^t)``), which is the whole difference to Adam;
* momentum term ("and momentum terms"): heavy-ball accumulation of the steps,
  ``b_t = mu * b_{t-1} + u_t`` (``b_t = u_t`` when ``mu = 0``);
* ``w_{t+1} = w_t - eta * b_t``.

The paper writes the denominator both as ``sqrt(v_t) + eps`` (the update rule) and ``sqrt(v_t + eps)``
(Eq. 20); ``eps_inside_sqrt`` selects the second. With ``momentum=0``, ``weight_decay=0`` and ``eps`` placed
as in Adam, one ST-Adam step equals the Adam step times ``(1 - beta^t) / sqrt(1 - gamma^t)`` exactly when
``eps = 0`` -- the test suite checks that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from privis.errors import InvalidInputError
from privis.models.optim import register_optimizer


class STAdam(torch.optim.Optimizer):
    """ST-Adam (Sec. IV-E) as a ``torch.optim.Optimizer``.

    Args:
        params: parameters or parameter groups.
        lr: ``eta``.
        betas: ``(beta, gamma)``, the decay of the first and second moments (Adam's defaults).
        eps: the smoothing term.
        weight_decay: L2 coefficient added to the gradient.
        momentum: ``mu`` of the heavy-ball accumulation of steps (0 disables it).
        eps_inside_sqrt: use ``sqrt(v_t + eps)`` (Eq. 20) instead of ``sqrt(v_t) + eps``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 eps_inside_sqrt: bool = False) -> None:
        if not 0.0 <= lr < float("inf"):
            raise InvalidInputError(f"lr must be a finite number >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise InvalidInputError(f"betas must lie in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0 or not 0.0 <= momentum < 1.0:
            raise InvalidInputError("eps and weight_decay must be >= 0 and momentum in [0, 1)")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "momentum": momentum, "eps_inside_sqrt": eps_inside_sqrt}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update of every parameter with a gradient (see the module notes)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta, gamma = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise InvalidInputError("ST-Adam does not support sparse gradients")
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["momentum"]:
                        state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta).add_(grad, alpha=1.0 - beta)
                v.mul_(gamma).addcmul_(grad, grad, value=1.0 - gamma)
                denom = (v + group["eps"]).sqrt_() if group["eps_inside_sqrt"] else v.sqrt().add_(group["eps"])
                update = m / denom
                if group["momentum"]:
                    buf = state.setdefault("momentum_buffer", torch.zeros_like(p))
                    buf.mul_(group["momentum"]).add_(update)
                    update = buf
                p.add_(update, alpha=-group["lr"])
        return loss


@register_optimizer("st-adam")
def _st_adam(params: Any, *, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    """ST-Adam; like the registry's Adam, ``momentum`` is the first-moment decay ``beta`` (0.9 by default)."""
    return STAdam(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)


__all__ = ["STAdam"]
