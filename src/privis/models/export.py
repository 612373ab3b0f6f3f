"""Export of image-to-image models (the protective perturbation generator) to ONNX and TorchScript.

Section 3.4 of Ye et al., "Visual Privacy Protection in Mobile Image Recognition Using Protective
Perturbation" (ACM MMSys 2022, doi:10.1145/3524273.3528189) runs the generator on the phone (PyTorch Mobile) while the
target model stays on the server. privis exports the generator in the two portable formats and checks that
each exported file reproduces PyTorch's output before it is trusted:

- ONNX (:func:`export_onnx`), through torch's TorchScript-based exporter (the ``torch.export`` exporter
  needs ``onnxscript``, not a dependency), with batch, height and width left dynamic, so the file takes
  any image size as the U-Net does; run with ONNX Runtime (:func:`onnx_session`, :func:`run_onnx`), on
  its CUDA provider when the installed build has one (``onnxruntime-gpu``), else on the CPU.
- TorchScript (:func:`export_torchscript_module`): ``torch.jit.script`` (sizes stay dynamic), falling back
  to a trace (fixed to the example's image size) for models that cannot be scripted. The file carries the
  same JSON metadata as :func:`privis.models.export_torchscript`, so :func:`privis.models.load_checkpoint`
  reads it back.

:func:`check_parity` compares an exported file with the PyTorch model on given inputs and raises
:class:`ExportMismatchError` when the largest absolute difference exceeds ``atol``. :func:`export_generator`
exports and checks in one call, :func:`export_generator_checkpoint` for a generator checkpoint (``privis
export``). Every write is atomic.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from privis.data.checks import check_int
from privis.errors import InvalidInputError, PrivisError
from privis.fsutil import atomic_write_bytes
from privis.models.checkpoint import (
    _first_line,
    _quiet_torchscript,
    load_checkpoint,
    require_kind,
    save_torchscript_module,
)
from privis.models.training import model_device

#: Input and output names of exported graphs.
INPUT_NAME = "images"
OUTPUT_NAME = "output"
#: ONNX Runtime's execution providers privis picks between (:func:`onnx_providers`).
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
#: Default largest absolute difference tolerated between an export and PyTorch (outputs are in [0, 1]).
DEFAULT_ATOL = 1e-4


class ExportMismatchError(PrivisError):
    """An exported model does not reproduce the PyTorch model's output within tolerance."""


@contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the deprecation notice of torch's TorchScript-based ONNX exporter and tracer warnings."""
    with warnings.catch_warnings(), _quiet_torchscript():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx.*")
        yield


def _to_eval(model: nn.Module) -> bool:
    was_training = model.training
    model.eval()
    return was_training


def _check_example(example: Any) -> Tensor:
    if not isinstance(example, Tensor) or example.ndim != 4 or not example.is_floating_point():
        raise InvalidInputError("example must be a float tensor (N, C, H, W)")
    return example.detach().float().cpu()


def export_onnx(model: nn.Module, path: str | Path, example: Tensor, *, dynamic_size: bool = True,
                opset: int = 17) -> Path:
    """Export ``model`` (``(N, C, H, W)`` -> tensor) to ONNX at ``path``, atomically; return the path.

    Args:
        model: exported on the device it is on (``example`` is moved there), in eval mode (restored after).
        path: destination ``.onnx`` file.
        example: an input ``(N, C, H, W)``; only its shape and dtype matter, it is not stored.
        dynamic_size: leave height and width dynamic (for fully convolutional models) as well as the batch.
        opset: ONNX opset.

    Raises:
        InvalidInputError: bad example, or the exporter failed (the message names the cause).
    """
    example = _check_example(example)
    params = list(model.parameters())
    if params:
        example = example.to(params[0].device)
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
    buffer = io.BytesIO()
    was_training = _to_eval(model)
    try:
        with torch.no_grad(), _quiet_export():
            # torch's stub types ``f`` as a path only; the TorchScript exporter documents file-like objects too
            torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=[INPUT_NAME],  # type: ignore[arg-type]
                              output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                              opset_version=opset, do_constant_folding=True)
    except Exception as exc:
        raise InvalidInputError(f"cannot export {type(model).__name__} to ONNX: {_first_line(exc)}") from exc
    finally:
        model.train(was_training)
    return atomic_write_bytes(path, buffer.getvalue())


def export_torchscript_module(model: nn.Module, path: str | Path, example: Tensor | None = None) -> tuple[Path, str]:
    """Save ``model`` as TorchScript at ``path``: scripted when possible (dynamic sizes), else traced.

    Args:
        model: the model (eval mode is used; its mode is restored).
        path: destination file.
        example: input used for the trace fallback (not stored); required only if scripting fails.

    Returns:
        ``(path, how)`` with ``how`` ``"script"`` or ``"trace"``.

    Raises:
        InvalidInputError: neither scripting nor tracing works.
    """
    was_training = _to_eval(model)
    try:
        with _quiet_export():
            try:
                module = torch.jit.script(model)
                how = "script"
            except Exception as script_exc:
                if example is None:
                    raise InvalidInputError(
                        f"cannot script {type(model).__name__} ({_first_line(script_exc)}) and no example to trace"
                    ) from script_exc
                example = _check_example(example).to(model_device(model))
                with torch.no_grad():
                    module = torch.jit.trace(model, example, _store_inputs=False)
                how = "trace"
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError(f"cannot export {type(model).__name__} to TorchScript: {_first_line(exc)}") from exc
    finally:
        model.train(was_training)
    return save_torchscript_module(module, model, path, how=how), how


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise InvalidInputError("ONNX Runtime is not installed: pip install onnxruntime") from exc
    return ort


def onnx_providers(device: str | torch.device | None = None) -> list[Any]:
    """ONNX Runtime execution providers for ``device``, in ONNX Runtime's priority order.

    Args:
        device: ``"cuda"``/``"cuda:N"``: ``CUDAExecutionProvider`` on GPU ``N`` (0 by default) when
            ``onnxruntime.get_available_providers()`` lists it (the ``onnxruntime-gpu`` build), else the
            CPU with a ``RuntimeWarning``; ``"cpu"``: the CPU; None: CUDA when listed, else the CPU.
            ``CPUExecutionProvider`` always comes last, for the operators CUDA lacks.

    Returns:
        ``["CPUExecutionProvider"]`` or ``[("CUDAExecutionProvider", {"device_id": N}), "CPUExecutionProvider"]``
        (the ``providers`` argument of ``onnxruntime.InferenceSession``).

    Raises:
        InvalidInputError: a device other than CPU or CUDA, or onnxruntime missing.
    """
    dev = None if device is None else torch.device(device)
    if dev is not None and dev.type not in ("cpu", "cuda"):
        raise InvalidInputError(f"ONNX Runtime runs on cpu or cuda here, not {dev.type}")
    if dev is None or dev.type == "cuda":
        if CUDA_PROVIDER in _import_onnxruntime().get_available_providers():
            return [(CUDA_PROVIDER, {"device_id": 0 if dev is None or dev.index is None else dev.index}), CPU_PROVIDER]
        if dev is not None:
            warnings.warn(f"ONNX Runtime lists no {CUDA_PROVIDER} (it needs the onnxruntime-gpu build): the "
                          "model runs on the CPU", RuntimeWarning, stacklevel=2)
    return [CPU_PROVIDER]


def onnx_session(path: str | Path, *, threads: int | None = None, device: str | torch.device | None = None) -> Any:
    """An ONNX Runtime ``InferenceSession`` for ``path`` on the providers :func:`onnx_providers` picks for
    ``device`` (None: CUDA when ONNX Runtime has it, else the CPU; ``session.get_providers()`` tells which).

    Args:
        path: an ``.onnx`` file.
        threads: intra-op CPU threads, default ``torch.get_num_threads()``, so both runtimes use the same cores.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or None, see :func:`onnx_providers`.

    Raises:
        InvalidInputError: onnxruntime is missing, a bad device, or the file is not a loadable ONNX model.
    """
    ort = _import_onnxruntime()
    providers = onnx_providers(device)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: ONNX file not found")
    try:
        return ort.InferenceSession(os.fspath(path), sess_options=options, providers=providers)
    except Exception as exc:
        raise InvalidInputError(f"{path}: not a loadable ONNX model ({_first_line(exc)})") from exc


def run_onnx(session: Any, images: Tensor) -> Tensor:
    """Run an ONNX session on ``images`` ``(N, C, H, W)``; returns the first output as a CPU tensor."""
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)}
    return torch.from_numpy(session.run(None, feed)[0])


def check_parity(model: nn.Module, inputs: Sequence[Tensor], *, onnx_path: str | Path | None = None,
                 torchscript_path: str | Path | None = None, atol: float = DEFAULT_ATOL) -> dict[str, float]:
    """Largest absolute output difference between ``model`` and each exported file, over ``inputs``.

    Args:
        model: the PyTorch reference (run in eval mode, no gradients, on its own device).
        inputs: input batches ``(N, C, H, W)``, e.g. of several image sizes to exercise dynamic shapes.
        onnx_path, torchscript_path: the exported files to check (either may be None).
        atol: tolerance.

    Returns:
        ``{"onnx_max_abs_diff": ..., "torchscript_max_abs_diff": ...}`` for the files given.

    Raises:
        ExportMismatchError: a difference exceeds ``atol`` or an output shape differs (names the input shape).
    """
    was_training = _to_eval(model)
    try:
        with torch.no_grad():
            references = [model(x.to(model_device(model))).float().cpu() for x in inputs]
    finally:
        model.train(was_training)
    runners: dict[str, Any] = {}
    if onnx_path is not None:
        session = onnx_session(onnx_path, device="cpu")  # float32 on the CPU: CUDA kernels may round (TF32)
        runners["onnx"] = lambda x: run_onnx(session, x)
    if torchscript_path is not None:
        with _quiet_export():
            module = torch.jit.load(os.fspath(torchscript_path), map_location="cpu")
        module.eval()

        def run_ts(x: Tensor) -> Tensor:
            with torch.no_grad():
                return module(x.cpu()).float()

        runners["torchscript"] = run_ts
    report: dict[str, float] = {}
    for kind, run in runners.items():
        worst = 0.0
        for x, ref in zip(inputs, references, strict=True):
            try:
                out = run(x)
            except Exception as exc:
                raise ExportMismatchError(f"{kind} export fails on input {tuple(x.shape)}: {_first_line(exc)}") from exc
            if out.shape != ref.shape:
                raise ExportMismatchError(f"{kind} export gives shape {tuple(out.shape)} for input "
                                          f"{tuple(x.shape)}, PyTorch gives {tuple(ref.shape)}")
            worst = max(worst, float((out - ref).abs().max()))
        if not worst <= atol:
            raise ExportMismatchError(f"{kind} export differs from PyTorch by up to {worst:.3g} (> atol {atol:g})")
        report[f"{kind}_max_abs_diff"] = worst
    return report


def parity_inputs(example: Tensor, *, dynamic_size: bool = True, seed: int = 0) -> list[Tensor]:
    """Inputs for :func:`check_parity`: random images of the example's shape, a batch of 1, and (when
    sizes are dynamic) one odd size that exercises the pad-and-crop path."""
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = example.shape
    shapes = [(max(n, 2), c, h, w), (1, c, h, w)]
    if dynamic_size:
        shapes.append((2, c, h + 5, w + 3))
    return [torch.rand(s, generator=gen) for s in shapes]


def export_generator(model: nn.Module, example: Tensor, *, onnx_path: str | Path | None = None,
                     torchscript_path: str | Path | None = None, atol: float = DEFAULT_ATOL,
                     check: bool = True) -> dict[str, Any]:
    """Export ``model`` to ONNX and/or TorchScript and verify each file against PyTorch.

    Returns:
        A report: the paths written, the TorchScript method (``script``/``trace``), whether sizes are
        dynamic, the checked input shapes and the largest absolute differences.

    Raises:
        InvalidInputError: nothing to export, or an export failed.
        ExportMismatchError: ``check`` and an export does not match (the bad file is removed).
    """
    if onnx_path is None and torchscript_path is None:
        raise InvalidInputError("nothing to export: give an ONNX path, a TorchScript path or both")
    example = _check_example(example)
    report: dict[str, Any] = {}
    exports: list[tuple[str, Path, bool]] = []  # (kind, path, dynamic size)
    if onnx_path is not None:
        exports.append(("onnx", export_onnx(model, onnx_path, example, dynamic_size=True), True))
        report["onnx"] = str(onnx_path)
    if torchscript_path is not None:
        path, how = export_torchscript_module(model, torchscript_path, example)
        exports.append(("torchscript", path, how == "script"))
        report["torchscript"] = str(path)
        report["torchscript_method"] = how
    for kind, path, dynamic in exports:
        report[f"{kind}_dynamic_size"] = dynamic
        if not check:
            continue
        inputs = parity_inputs(example, dynamic_size=dynamic)
        report[f"{kind}_checked_shapes"] = [list(x.shape) for x in inputs]
        try:
            report.update(check_parity(model, inputs, atol=atol, **{f"{kind}_path": path}))
        except ExportMismatchError:
            path.unlink(missing_ok=True)
            raise
    return report


def export_generator_checkpoint(checkpoint: str | Path, *, onnx_path: str | Path | None = None,
                                torchscript_path: str | Path | None = None, size: int = 32,
                                atol: float = DEFAULT_ATOL) -> dict[str, Any]:
    """Load a generator checkpoint and :func:`export_generator` it (``privis export``).

    Args:
        checkpoint: a privis checkpoint (``.pt``) of a generator (e.g. ``unet-perturbation``).
        onnx_path, torchscript_path: where to write each format (at least one).
        size: side of the square example image (pixels, ``>= 1``) used to export and to check.
        atol: the largest tolerated ``|exported - PyTorch|``.

    Returns:
        The report of :func:`export_generator`.

    Raises:
        InvalidInputError: nothing to export, a checkpoint that is not a generator or does not record its
            input channels, a bad ``size``, or an export that failed.
        ExportMismatchError: an exported file does not reproduce PyTorch's output (the file is removed).
    """
    size = check_int(size, "size")
    model, info = load_checkpoint(checkpoint)
    require_kind(info, "generator", checkpoint)
    channels = (info.get("arch_kwargs") or {}).get("in_channels") or getattr(model, "in_channels", None)
    if not isinstance(channels, int):
        raise InvalidInputError(f"{checkpoint}: cannot tell the generator's input channels")
    example = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(0))
    return export_generator(model, example, onnx_path=onnx_path, torchscript_path=torchscript_path, atol=atol)
