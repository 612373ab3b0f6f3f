"""The protective perturbation U-Net (Sec. 3.2) and its ONNX / TorchScript export."""

from __future__ import annotations

import pytest
import torch

from privis import models
from privis.errors import InvalidInputError
from privis.models.export import (
    ExportMismatchError,
    check_parity,
    export_generator,
    export_onnx,
    onnx_session,
    run_onnx,
)
from privis.models.unet import UNetPerturbation


def _random_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give BatchNorm layers non-trivial running statistics, so eval mode differs from identity scaling."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model.eval()


def test_paper_width_has_the_papers_parameter_count():
    # Sec. 4.3.1: "Our protective perturbation generator involves 7.766 M parameters".
    g = models.create("unet-perturbation", in_channels=3, width=32)
    assert sum(p.numel() for p in g.parameters()) == 7_766_051
    assert isinstance(g, UNetPerturbation) and g.arch == "unet-perturbation"


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 17, 45), (3, 1, 28, 28), (1, 3, 32, 32), (1, 1, 50, 7)])
def test_any_input_size_gives_same_shape_in_unit_range(shape):
    torch.manual_seed(0)
    g = _random_bn(UNetPerturbation(shape[1], width=4))
    x = torch.rand(shape)
    with torch.no_grad():
        y = g(x)
        delta = g.perturbation(x)
    assert y.shape == x.shape and delta.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    torch.testing.assert_close(y, (x + delta).clamp(0, 1))


def test_perturbation_of_an_image_does_not_depend_on_its_batch_neighbours():
    torch.manual_seed(1)
    g = _random_bn(UNetPerturbation(1, width=4))
    x = torch.rand(4, 1, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(g(x)[2:3], g(x[2:3]), atol=1e-5, rtol=0)


def test_zero_output_layer_is_the_identity():
    g = _random_bn(UNetPerturbation(3, width=4))
    torch.nn.init.zeros_(g.outc.weight)
    torch.nn.init.zeros_(g.outc.bias)
    x = torch.rand(2, 3, 19, 23)
    with torch.no_grad():
        torch.testing.assert_close(g(x), x)


def test_wrong_channels_is_a_clear_error():
    g = UNetPerturbation(3, width=4)
    with pytest.raises(InvalidInputError, match=r"\(N, 3, H, W\)"):
        g(torch.rand(1, 1, 16, 16))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(2)
    g = _random_bn(models.create("unet-perturbation", in_channels=1, width=4))
    models.save_checkpoint(g, tmp_path / "g.pt")
    loaded, info = models.load_checkpoint(tmp_path / "g.pt")
    assert info["arch"] == "unet-perturbation" and info["arch_kwargs"]["width"] == 4
    x = torch.rand(2, 1, 13, 13)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), g(x))


def test_export_onnx_and_torchscript_match_pytorch_at_several_sizes(tmp_path):
    torch.manual_seed(3)
    g = _random_bn(models.create("unet-perturbation", in_channels=3, width=4))
    report = export_generator(g, torch.rand(2, 3, 32, 32), onnx_path=tmp_path / "g.onnx",
                              torchscript_path=tmp_path / "g.ts")
    assert report["torchscript_method"] == "script"
    assert report["onnx_dynamic_size"] and report["torchscript_dynamic_size"]
    assert [2, 3, 37, 35] in report["onnx_checked_shapes"]  # a size that is not a multiple of 16
    assert report["onnx_max_abs_diff"] <= 1e-4 and report["torchscript_max_abs_diff"] <= 1e-4
    # the exported files take sizes never seen at export time
    x = torch.rand(3, 3, 9, 70)
    with torch.no_grad():
        ref = g(x)
    torch.testing.assert_close(run_onnx(onnx_session(tmp_path / "g.onnx"), x), ref, atol=1e-4, rtol=0)
    ts, info = models.load_checkpoint(tmp_path / "g.ts")
    assert info["format"] == "torchscript" and info["arch"] == "unet-perturbation"
    with torch.no_grad():
        torch.testing.assert_close(ts(x), ref, atol=1e-5, rtol=0)


def test_parity_check_detects_a_different_model(tmp_path):
    torch.manual_seed(4)
    g = _random_bn(UNetPerturbation(1, width=4))
    export_onnx(g, tmp_path / "g.onnx", torch.rand(1, 1, 16, 16))
    with torch.no_grad():
        g.outc.bias.add_(0.05)  # the PyTorch model moves away from the exported file
    with pytest.raises(ExportMismatchError, match="onnx export differs"):
        check_parity(g, [torch.rand(2, 1, 16, 16) * 0.5 + 0.25], onnx_path=tmp_path / "g.onnx")


def test_export_needs_a_destination_and_a_readable_onnx_file(tmp_path):
    g = UNetPerturbation(1, width=4)
    with pytest.raises(InvalidInputError, match="nothing to export"):
        export_generator(g, torch.rand(1, 1, 16, 16))
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(InvalidInputError, match="not a loadable ONNX model"):
        onnx_session(tmp_path / "bad.onnx")
