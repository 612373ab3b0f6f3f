"""ONNX Runtime provider selection of privis.models.export: CUDA when the build has it, else the CPU."""

from __future__ import annotations

import onnxruntime
import pytest
import torch

from privis.errors import InvalidInputError
from privis.models import export
from privis.models.export import CPU_PROVIDER, CUDA_PROVIDER, export_onnx, onnx_providers, onnx_session, run_onnx
from privis.models.unet import UNetPerturbation


@pytest.fixture
def gpu_build(monkeypatch):
    """ONNX Runtime as the onnxruntime-gpu build lists its providers (no GPU is needed to pick them)."""
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA_PROVIDER, CPU_PROVIDER])


def test_cuda_provider_by_default_and_on_request_when_the_build_has_it(gpu_build):
    assert onnx_providers() == [(CUDA_PROVIDER, {"device_id": 0}), CPU_PROVIDER]
    assert onnx_providers("cuda") == [(CUDA_PROVIDER, {"device_id": 0}), CPU_PROVIDER]
    assert onnx_providers(torch.device("cuda:1")) == [(CUDA_PROVIDER, {"device_id": 1}), CPU_PROVIDER]
    assert onnx_providers("cpu") == [CPU_PROVIDER]  # asked for the CPU: CUDA is not used


def test_cpu_provider_without_the_cuda_build(monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["AzureExecutionProvider", CPU_PROVIDER])
    assert onnx_providers() == [CPU_PROVIDER]
    with pytest.warns(RuntimeWarning, match="no CUDAExecutionProvider"):
        assert onnx_providers("cuda:0") == [CPU_PROVIDER]
    with pytest.raises(InvalidInputError, match="not mps"):
        onnx_providers("mps")


def test_session_gets_the_selected_providers(gpu_build, monkeypatch, tmp_path):
    seen = {}

    class Session:
        def __init__(self, path, *, sess_options, providers):
            seen.update(path=path, providers=providers, threads=sess_options.intra_op_num_threads)

    monkeypatch.setattr(onnxruntime, "InferenceSession", Session)
    (tmp_path / "g.onnx").write_bytes(b"")  # never read: the session is a stand-in
    onnx_session(tmp_path / "g.onnx", threads=3, device="cuda:2")
    assert seen["providers"] == [(CUDA_PROVIDER, {"device_id": 2}), CPU_PROVIDER] and seen["threads"] == 3
    onnx_session(tmp_path / "g.onnx", device="cpu")
    assert seen["providers"] == [CPU_PROVIDER]


def test_cpu_session_runs_the_generator(tmp_path):
    torch.manual_seed(0)
    g = UNetPerturbation(3, width=2).eval()
    x = torch.rand(2, 3, 20, 24)
    path = export_onnx(g, tmp_path / "g.onnx", x[:1])
    session = onnx_session(path, device="cpu")
    assert session.get_providers() == [CPU_PROVIDER]
    with torch.no_grad():
        torch.testing.assert_close(run_onnx(session, x), g(x), atol=1e-4, rtol=0)
    assert export.onnx_session(path).get_providers()[-1] == CPU_PROVIDER  # the default works without a GPU
