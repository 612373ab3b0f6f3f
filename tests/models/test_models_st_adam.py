"""ST-Adam (VisualMixer Sec. IV-E): Adam without bias corrections, plus weight decay and momentum."""

from __future__ import annotations

import pytest
import torch

from privis import models
from privis.errors import InvalidInputError
from privis.models.st_adam import STAdam


def _steps(opt_a: torch.optim.Optimizer, pa: torch.nn.Parameter, opt_b: torch.optim.Optimizer,
           pb: torch.nn.Parameter, grads: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Apply the same gradients to both optimizers; return each step's update of both parameters."""
    updates = []
    for g in grads:
        before_a, before_b = pa.detach().clone(), pb.detach().clone()
        pa.grad, pb.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
        updates.append((pa.detach() - before_a, pb.detach() - before_b))
    return updates


def test_differs_from_adam_exactly_by_the_bias_correction() -> None:
    torch.manual_seed(0)
    grads = [torch.randn(7, dtype=torch.float64) for _ in range(8)]
    pa = torch.nn.Parameter(torch.randn(7, dtype=torch.float64))
    pb = torch.nn.Parameter(pa.detach().clone())
    b1, b2 = 0.9, 0.999
    adam = torch.optim.Adam([pa], lr=0.01, betas=(b1, b2), eps=0.0)
    st = STAdam([pb], lr=0.01, betas=(b1, b2), eps=0.0)
    for t, (da, ds) in enumerate(_steps(adam, pa, st, pb, grads), start=1):
        # Adam: lr * m/(1-b1^t) / sqrt(v/(1-b2^t));  ST-Adam: lr * m / sqrt(v)  (Eq. 21 removed)
        torch.testing.assert_close(ds, da * (1 - b1**t) / (1 - b2**t) ** 0.5, rtol=1e-12, atol=1e-15)
    assert not torch.allclose(pa, pb)


def test_update_rule_with_weight_decay_and_momentum_by_hand() -> None:
    g1, g2 = torch.tensor([0.5, -2.0]), torch.tensor([1.0, 1.0])
    w0 = torch.tensor([1.0, 2.0])
    p = torch.nn.Parameter(w0.clone())
    lr, beta, gamma, eps, wd, mu = 0.1, 0.9, 0.99, 1e-8, 0.01, 0.5
    opt = STAdam([p], lr=lr, betas=(beta, gamma), eps=eps, weight_decay=wd, momentum=mu)
    m = torch.zeros(2)
    v = torch.zeros(2)
    buf = torch.zeros(2)
    w = w0.clone()
    for g in (g1, g2):
        p.grad = g.clone()
        opt.step()
        gd = g + wd * w
        m = beta * m + (1 - beta) * gd
        v = gamma * v + (1 - gamma) * gd * gd
        buf = mu * buf + m / (v.sqrt() + eps)
        w = w - lr * buf
        torch.testing.assert_close(p.detach(), w)


def test_eps_inside_sqrt_variant() -> None:
    p = torch.nn.Parameter(torch.tensor([0.0]))
    opt = STAdam([p], lr=1.0, betas=(0.0, 0.0), eps=0.25, eps_inside_sqrt=True)
    p.grad = torch.tensor([1.0])
    opt.step()
    # m = g = 1, v = g^2 = 1: step = 1 / sqrt(1 + 0.25)
    assert float(p.detach()) == pytest.approx(-1 / 1.25**0.5)


def test_registered_and_trains(digits_train) -> None:
    assert "st-adam" in models.available_optimizers()
    torch.manual_seed(0)
    model = models.create("lenet5", num_classes=10, in_channels=1, image_size=8)
    opt = models.make_optimizer("st-adam", model.parameters(), lr=1e-3)
    assert isinstance(opt, STAdam)
    hist = models.train(model, digits_train.images[:300], digits_train.labels[:300], epochs=3, optimizer="st-adam",
                        seed=0)
    assert hist.loss[-1] < hist.loss[0]


def test_bad_settings() -> None:
    p = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(InvalidInputError):
        STAdam(p, betas=(1.0, 0.9))
    with pytest.raises(InvalidInputError):
        STAdam(p, momentum=1.5)
