"""Checkpoints: save and load models as architecture name + state dict, or as TorchScript.

A privis checkpoint is a ``torch.save`` file of plain data, ``{"arch", "arch_kwargs", "state_dict",
"extra", "privis_version"}``; loading rebuilds the network with :func:`privis.models.create` and loads
the weights with ``torch.load(weights_only=True)``, so opening a checkpoint never runs pickled code.
User-supplied networks (e.g. stand-ins for pretrained models) come as TorchScript files, which
:func:`load_checkpoint` also accepts. Every write is atomic.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import privis
from privis.errors import InvalidInputError
from privis.fsutil import atomic_write_bytes
from privis.models.registry import create, kind_of

#: Name of the JSON metadata stored inside TorchScript exports.
_TORCHSCRIPT_META = "privis.json"


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """Silence torch's deprecation notices for ``torch.jit`` (TorchScript is the interchange format the
    design names for user-supplied models) and tracer warnings about shapes taken as constants (a trace
    is specialised to the example's image size, as :func:`export_torchscript` documents)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _plain(value: Any, where: str) -> Any:
    """``value`` as data ``torch.load(weights_only=True)`` can read back: None, bool, int, float, str,
    tensors, and lists/tuples/str-keyed dicts of them (numpy scalars/arrays and paths are converted).
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{where} keys must be strings, got {key!r}")
            out[key] = _plain(item, f"{where}[{key!r}]")
        return out
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict(), where)
    raise InvalidInputError(
        f"{where} holds a {type(value).__name__}; checkpoints store only numbers, strings, tensors, "
        "lists and dicts"
    )


def save_checkpoint(model: nn.Module, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (built by :func:`privis.models.create`) to ``path`` atomically; return the path.

    Args:
        model: a model carrying ``arch`` and ``arch_kwargs``.
        path: destination file (parent folders are created).
        extra: optional metadata (training history, dataset spec, accuracy ...) of plain data.

    Raises:
        InvalidInputError: the model has no ``arch``/``arch_kwargs`` (export it with
            :func:`export_torchscript` instead) or ``extra`` holds something other than plain data.
    """
    arch = getattr(model, "arch", None)
    arch_kwargs = getattr(model, "arch_kwargs", None)
    if not isinstance(arch, str) or not isinstance(arch_kwargs, dict):
        raise InvalidInputError(
            f"{type(model).__name__} was not built by privis.models.create (no arch/arch_kwargs); "
            "use export_torchscript to save it"
        )
    payload = {
        "arch": arch,
        "arch_kwargs": _plain(arch_kwargs, "arch_kwargs"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": _plain(dict(extra or {}), "extra"),
        "privis_version": privis.__version__,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _is_torchscript(path: Path) -> bool:
    """True when ``path`` is a zip archive laid out as TorchScript (it has ``constants.pkl``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        return any(name == "constants.pkl" or name.endswith("/constants.pkl") for name in names)
    except (zipfile.BadZipFile, OSError):
        return False


def _load_torchscript(path: Path, map_location: Any) -> tuple[nn.Module, dict[str, Any]]:
    extra_files = {_TORCHSCRIPT_META: ""}
    try:
        with _quiet_torchscript():
            module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra_files)
    except Exception as exc:  # torch raises RuntimeError and others for damaged archives
        raise InvalidInputError(f"{path}: not a loadable TorchScript file ({_first_line(exc)})") from exc
    meta: dict[str, Any] = {}
    if extra_files[_TORCHSCRIPT_META]:
        try:
            meta = json.loads(extra_files[_TORCHSCRIPT_META])
        except (ValueError, UnicodeDecodeError):
            meta = {}
    info = {
        "format": "torchscript",
        "arch": meta.get("arch"),
        "arch_kwargs": meta.get("arch_kwargs"),
        "extra": meta.get("extra", {}),
        "privis_version": meta.get("privis_version"),
    }
    module.eval()
    return module, info


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_checkpoint(path: str | Path, *, map_location: Any = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a model saved by :func:`save_checkpoint`, or a TorchScript file.

    Returns:
        ``(model, info)``: the model in eval mode on ``map_location``, and ``info`` with keys ``format``
        (``"checkpoint"`` or ``"torchscript"``), ``arch``, ``arch_kwargs``, ``extra`` (the dict given to
        ``save_checkpoint``) and ``privis_version`` (None/empty where a TorchScript file lacks them).

    Raises:
        InvalidInputError: the file is missing, unreadable, corrupt, not a checkpoint, names an unknown
            architecture or holds weights that do not fit it; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: checkpoint file not found")
    if _is_torchscript(path):
        return _load_torchscript(path, map_location)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError ... for damaged files
        raise InvalidInputError(f"{path}: not a readable privis checkpoint ({_first_line(exc)})") from exc
    if not isinstance(payload, dict) or not {"arch", "arch_kwargs", "state_dict"} <= payload.keys():
        raise InvalidInputError(f"{path}: not a privis checkpoint (needs arch, arch_kwargs and state_dict)")
    arch, arch_kwargs = payload["arch"], payload["arch_kwargs"]
    if not isinstance(arch_kwargs, dict):
        raise InvalidInputError(f"{path}: arch_kwargs must be a dict, got {type(arch_kwargs).__name__}")
    try:
        model = create(arch, **arch_kwargs)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path}: {exc}") from exc
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise InvalidInputError(f"{path}: weights do not fit {arch!r} ({_first_line(exc)})") from exc
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    model.eval()
    info = {
        "format": "checkpoint",
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs),
        "extra": payload.get("extra") or {},
        "privis_version": payload.get("privis_version"),
    }
    return model, info


def require_kind(info: Mapping[str, Any], kind: str, path: str | Path, *, hint: str = "") -> None:
    """Refuse a checkpoint whose recorded architecture is of another kind than ``kind``.

    Args:
        info: the ``info`` of :func:`load_checkpoint` (its ``arch`` names the architecture).
        kind: ``"classifier"`` or ``"generator"`` (:data:`privis.models.registry.KINDS`).
        path: the checkpoint file, named in the message.
        hint: what to do instead, appended to the message.

    A file whose architecture is unknown (a TorchScript file without privis metadata) passes: callers check
    what such a model computes (its output shape) where that matters.

    Raises:
        InvalidInputError: the recorded architecture is of another kind, e.g. a perturbation generator
            given where a classifier is expected.
    """
    found = kind_of(info.get("arch"))
    if found is not None and found != kind:
        raise InvalidInputError(f"{path}: a {found} checkpoint ({info.get('arch')}), not a {kind}"
                                + (f"; {hint}" if hint else ""))


def export_torchscript(model: nn.Module, path: str | Path, example: Tensor) -> Path:
    """Trace ``model`` on ``example`` (in eval mode) and save the TorchScript module atomically.

    A trace records the operations run on ``example``: the exported module is meant for inputs of the
    example's image size (the ViT's padding and position embedding are fixed then); the batch size may
    vary. Load it with :func:`load_checkpoint` or ``torch.jit.load``.
    The example input is not stored in the file (it may be private data); the model's ``arch``,
    ``arch_kwargs`` and the privis version are, as JSON metadata read back by :func:`load_checkpoint`.
    The model's train/eval mode is restored afterwards. Returns ``path``.

    Raises:
        InvalidInputError: ``example`` is not a tensor, or the model cannot be traced on it.
    """
    if not isinstance(example, Tensor):
        raise InvalidInputError(f"example must be a torch.Tensor, got {type(example).__name__}")
    params = list(model.parameters())
    example = example.to(params[0].device) if params else example
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _quiet_torchscript():
            traced = torch.jit.trace(model, example, _store_inputs=False)
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError(f"cannot trace {type(model).__name__}: {_first_line(exc)}") from exc
    finally:
        model.train(was_training)
    return save_torchscript_module(traced, model, path, how="trace")


def save_torchscript_module(module: Any, model: nn.Module, path: str | Path, *, how: str) -> Path:
    """Save a scripted or traced ``module`` atomically, with ``model``'s ``arch``/``arch_kwargs``, the privis
    version and ``how`` it was made (``"script"`` or ``"trace"``) as the JSON metadata that
    :func:`load_checkpoint` reads back. Returns ``path``."""
    meta = {
        "arch": getattr(model, "arch", None),
        "arch_kwargs": _plain(getattr(model, "arch_kwargs", None), "arch_kwargs"),
        "privis_version": privis.__version__,
        "export": how,
    }
    buffer = io.BytesIO()
    with _quiet_torchscript():
        torch.jit.save(module, buffer, _extra_files={_TORCHSCRIPT_META: json.dumps(meta)})
    return atomic_write_bytes(path, buffer.getvalue())
