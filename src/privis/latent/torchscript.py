"""A codec from a pair of TorchScript files: plug in a real pSp encoder and StyleGAN2 generator, or any
autoencoder exported with ``torch.jit.script`` / ``torch.jit.trace``.

pSp (E. Richardson et al., "Encoding in Style: a StyleGAN Encoder for Image-to-Image Translation", CVPR
2021, arXiv:2008.00951) maps a ``[-1, 1]`` image to 18 style vectors of 512 for StyleGAN2's W+ space, and
the generator maps them back to a ``[-1, 1]`` image; ``value_range="signed"`` converts privis' ``[0, 1]``
images on the way in and out. The adapter probes the pair once, on construction, with a dummy batch of two
mid-grey images: the encoder must return ``(2, G, D)`` (the declared ``latent_shape`` when one is given), the
decoder must turn that back into ``(2, C, H, W)`` of the declared ``image_shape``; anything else is refused
with both shapes named. A directory holding ``encoder.pt``, ``decoder.pt`` and ``codec.json`` (the
constructor's shapes and options) is what :func:`privis.latent.save_codec` writes and
:func:`privis.latent.load_codec` reads.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from privis.errors import InvalidInputError
from privis.fsutil import atomic_write_bytes, atomic_write_text
from privis.latent.autoencoder import check_codec_shape
from privis.latent.base import LatentCodec
from privis.models.checkpoint import _quiet_torchscript

__all__ = ["TorchScriptCodec", "load_torchscript_codec", "save_torchscript_codec"]

_RANGES = ("unit", "signed")
ENCODER_FILE, DECODER_FILE, CONFIG_FILE = "encoder.pt", "decoder.pt", "codec.json"


def _load(path: Path, role: str, device: torch.device) -> torch.jit.ScriptModule:
    if not path.is_file():
        raise InvalidInputError(f"{path}: {role} file not found")
    try:
        with _quiet_torchscript():
            module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # torch raises RuntimeError and others for files that are no TorchScript
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidInputError(f"{path}: not a TorchScript {role} ({first})") from exc
    return module.eval()


def probe(call: Callable[[], Any], failure: str) -> Any:
    """``call()``; whatever it raises becomes an :class:`InvalidInputError` ``"{failure}: <first line>"``."""
    try:
        return call()
    except Exception as exc:  # whatever the scripted code raises on a wrong input
        raise InvalidInputError(f"{failure}: {(str(exc).strip().splitlines() or [''])[0]}") from exc


class TorchScriptCodec(LatentCodec):
    """A :class:`LatentCodec` over a TorchScript encoder and decoder, shapes probed once.

    Args:
        encoder: path of the encoder (``(N, C, H, W)`` -> ``(N, G, D)``), or a loaded ``ScriptModule``.
        decoder: path of the decoder (``(N, G, D)`` -> ``(N, C, H, W)``), or a loaded ``ScriptModule``.
        image_shape: ``(C, H, W)`` the encoder takes (``C`` 1 or 3).
        latent_shape: ``(G, D)`` the encoder must emit; None takes what the probe finds.
        group_names: ``G`` names, coarse to fine; None: ``"group-0" ...``.
        value_range: the pair's image range: ``"unit"`` (``[0, 1]``, privis' own) or ``"signed"``
            (``[-1, 1]``, pSp and StyleGAN2).
        device: where to load and run the modules (default: the CPU).

    Raises:
        InvalidInputError: a missing or non-TorchScript file, a bad declaration, or a probe that fails or
            returns other shapes than declared (both named).
    """

    def __init__(self, encoder: str | Path | torch.jit.ScriptModule, decoder: str | Path | torch.jit.ScriptModule,
                 *, image_shape: Sequence[int], latent_shape: Sequence[int] | None = None,
                 group_names: Sequence[str] | None = None, value_range: str = "unit",
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        device = torch.device(device or "cpu")
        if value_range not in _RANGES:
            raise InvalidInputError(f"value_range must be one of {', '.join(_RANGES)}, got {value_range!r}")
        if len(tuple(image_shape)) != 3:
            raise InvalidInputError(f"image_shape must be (C, H, W), got {tuple(image_shape)!r}")
        self.image_shape = check_codec_shape(*(int(v) for v in image_shape))
        self.value_range = value_range
        self.encoder = encoder if isinstance(encoder, torch.jit.ScriptModule) else _load(Path(encoder), "encoder",
                                                                                         device)
        self.decoder = decoder if isinstance(decoder, torch.jit.ScriptModule) else _load(Path(decoder), "decoder",
                                                                                         device)
        self.encoder.to(device)
        self.decoder.to(device)
        grey = torch.full((2, *self.image_shape), 0.5, device=device)
        with torch.inference_mode():
            latents = probe(lambda: self._encode(grey),
                            f"the encoder fails on a (2, {', '.join(map(str, self.image_shape))}) batch")
            if not isinstance(latents, Tensor) or latents.dim() != 3 or latents.shape[0] != 2:
                got = tuple(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__
                raise InvalidInputError(f"the encoder must return (N, G, D) latents, got {got} for N=2")
            found = (int(latents.shape[1]), int(latents.shape[2]))
            if latent_shape is not None and tuple(int(v) for v in latent_shape) != found:
                raise InvalidInputError(f"declared latent_shape {tuple(latent_shape)} but the encoder emits {found}")
            self.latent_shape = found
            images = probe(lambda: self._decode(latents),
                           f"the decoder fails on the encoder's (2, {found[0]}, {found[1]}) latents")
            if not isinstance(images, Tensor) or tuple(images.shape) != (2, *self.image_shape):
                got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
                raise InvalidInputError(f"the decoder must return (N, {', '.join(map(str, self.image_shape))}) "
                                        f"images, got {got} for N=2")
        names = tuple(group_names) if group_names is not None else tuple(f"group-{i}" for i in range(found[0]))
        if len(names) != found[0]:
            raise InvalidInputError(f"{len(names)} group_names for {found[0]} latent groups")
        self.group_names = names
        #: the declaration :func:`save_torchscript_codec` writes to ``codec.json``
        self.config: dict[str, Any] = {"image_shape": list(self.image_shape), "latent_shape": list(found),
                                       "group_names": list(names), "value_range": value_range}

    def _encode(self, images: Tensor) -> Tensor:
        x = images * 2.0 - 1.0 if self.value_range == "signed" else images
        return self.encoder(x).float()

    def _decode(self, latents: Tensor) -> Tensor:
        x = self.decoder(latents).float()
        return (x + 1.0) * 0.5 if self.value_range == "signed" else x


def save_scripted_folder(folder: str | Path, modules: dict[str, nn.Module], config_file: str,
                         config: dict[str, Any]) -> Path:
    """Write each TorchScript module under its file name and ``config`` as JSON into ``folder`` (created),
    each file atomically; return ``folder``."""
    folder = Path(folder)
    for name, module in modules.items():
        buffer = io.BytesIO()
        with _quiet_torchscript():
            torch.jit.save(module, buffer)
        atomic_write_bytes(folder / name, buffer.getvalue())
    atomic_write_text(folder / config_file, json.dumps(config, indent=2))
    return folder


def save_torchscript_codec(codec: TorchScriptCodec, folder: str | Path) -> Path:
    """Write ``encoder.pt``, ``decoder.pt`` and ``codec.json`` into ``folder`` (created), each atomically."""
    return save_scripted_folder(folder, {ENCODER_FILE: codec.encoder, DECODER_FILE: codec.decoder}, CONFIG_FILE,
                                codec.config)


def load_torchscript_codec(folder: str | Path, *, device: torch.device | str | None = None) -> TorchScriptCodec:
    """The codec in ``folder`` (``encoder.pt``, ``decoder.pt``, ``codec.json`` with at least ``image_shape``).

    Raises:
        InvalidInputError: a missing file, a ``codec.json`` that is not a JSON object with ``image_shape``, or
            the probe's errors (:class:`TorchScriptCodec`).
    """
    folder = Path(folder)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise InvalidInputError(f"{folder}: a TorchScript codec folder needs {CONFIG_FILE} (image_shape at least)")
    try:
        config = json.loads(config_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{config_path}: not JSON ({exc})") from exc
    if not isinstance(config, dict) or "image_shape" not in config:
        raise InvalidInputError(f"{config_path}: must be a JSON object with image_shape [C, H, W]")
    unknown = set(config) - {"image_shape", "latent_shape", "group_names", "value_range"}
    if unknown:
        raise InvalidInputError(f"{config_path}: unknown keys {sorted(unknown)}")
    codec = TorchScriptCodec(folder / ENCODER_FILE, folder / DECODER_FILE, device=device, **config)
    return codec.eval()
