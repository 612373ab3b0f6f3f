"""Roofline bounds: FLOP counts against closed forms, the bound formula on hand numbers, measured rates."""

from __future__ import annotations

import math

import pytest
import torch

from privis.errors import InvalidInputError
from privis.experiments.bounds import (
    DeviceRates,
    count_flops,
    measure_conv_rate,
    measure_copy_bandwidth,
    measure_matmul_rate,
    min_bytes_per_image,
    roofline_images_per_second,
)


def test_linear_flops_forward_and_backward_match_the_closed_form(device):
    """Forward: 2 N I O. The gradient taken with autograd.grad on a leaf input (as gradient-iteration methods
    take theirs; on CUDA the backward runs on autograd's device thread) adds 2 N I O for the input and
    2 N I O for the weight."""
    n, i, o = 5, 12, 7
    layer = torch.nn.Linear(i, o).to(device)
    x = torch.rand(n, i, device=device, requires_grad=True)
    assert count_flops(layer, x)[1] == 2 * n * i * o

    def forward_backward() -> tuple[torch.Tensor, ...]:
        return torch.autograd.grad(layer(x).square().sum(), (x, layer.weight))

    grads, flops = count_flops(forward_backward)
    assert flops == 3 * 2 * n * i * o
    assert grads[0].shape == x.shape  # the function's result comes back


def test_conv_flops_match_the_closed_form_and_elementwise_work_counts_zero():
    n, cin, cout, k, h, w = 2, 3, 4, 3, 10, 9
    conv = torch.nn.Conv2d(cin, cout, k, padding=1, bias=False)
    x = torch.rand(n, cin, h, w)
    with torch.no_grad():
        assert count_flops(conv, x)[1] == 2 * n * cout * h * w * cin * k * k
        assert count_flops(lambda t: (t * 2 + 1).sigmoid().sort(dim=-1).values, x)[1] == 0


def test_the_bound_formula_on_hand_numbers():
    # compute-bound: 1e9 FLOP at 1e12 FLOP/s = 1 ms; 1e3 bytes at 1e9 B/s = 1 us -> 1,000 images/s
    assert roofline_images_per_second(1e9, 1e3, 1e12, 1e9) == pytest.approx(1000.0)
    # memory-bound: no FLOPs, 6,272 bytes (a 28 x 28 grey image in and out) at 6.272e9 B/s -> 1e6 images/s
    assert roofline_images_per_second(0, min_bytes_per_image(1, 28, 28), 1e12, 6.272e9) == pytest.approx(1e6)
    assert min_bytes_per_image(3, 224, 224) == 2 * 3 * 224 * 224 * 4
    rates = DeviceRates("cpu", 2, matmul_flops_per_second=3e10, conv_flops_per_second=5e10, copy_bytes_per_second=1e10)
    assert rates.flops_per_second == 5e10 and rates.as_dict()["flops_per_second"] == 5e10


@pytest.mark.parametrize("args", [(1.0, 0.0, 1.0, 1.0), (-1.0, 1.0, 1.0, 1.0), (1.0, 1.0, 0.0, 1.0),
                                  (1.0, 1.0, 1.0, math.inf), (math.nan, 1.0, 1.0, 1.0)])
def test_the_bound_refuses_counts_and_rates_it_cannot_use(args):
    with pytest.raises(InvalidInputError, match="roofline"):
        roofline_images_per_second(*args)


def test_measured_rates_are_positive_and_finite(device):
    for rate in (measure_matmul_rate(device, size=128, min_seconds=0.0),
                 measure_conv_rate(device, batch=1, min_seconds=0.0),
                 measure_copy_bandwidth(device, nbytes=2**22, min_seconds=0.0)):
        assert math.isfinite(rate) and rate > 0
