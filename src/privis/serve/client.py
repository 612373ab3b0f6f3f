"""The user's side of protective perturbation: protect locally, send only protected images.

Ye, Tang, Phan, Xie, Yuan & Wei, "Visual Privacy Protection in Mobile Image Recognition Using Protective
Perturbation", ACM MMSys 2022, doi:10.1145/3524273.3528189, Sections 3.1 and 3.4.

Fig. 2/5 of the paper: the perturbation generator runs on the user's device and only ``x' = clamp(x + U(x))``
leaves it; the server classifies ``x'`` with its unchanged model. :func:`run_client` does exactly that:

1. reads each image file (:func:`privis.data.read_image`, so the same modes are accepted as everywhere),
2. protects it with the generator, batched per image size (a privis checkpoint or TorchScript file run by
   PyTorch, or an ``.onnx`` file run by ONNX Runtime, the on-device formats of :mod:`privis.models.export`),
3. encodes the protected image as 8-bit PNG (the canonical form quantised to ``k / 255``, lossless after
   that) and POSTs the PNGs to ``/v1/predict`` with httpx,
4. returns the server's predictions, one per file, in order.

The original bytes are never put in a request. Before sending, the server's ``/v1/model`` is read and the
images are checked against its input size and channels, so a mismatch is reported locally, by file name.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from privis.data import read_image
from privis.errors import InvalidInputError, PrivisError

Generator = Callable[[Tensor], Tensor]


class ServerError(PrivisError):
    """The server answered with an error (the message carries its status, code and message) or not at all."""


def load_generator(path: str | Path) -> Generator:
    """A callable mapping canonical ``(N, C, H, W)`` images to protected images of the same shape.

    ``.onnx`` files run with ONNX Runtime; anything else is loaded with :func:`privis.models.load_checkpoint`
    (privis checkpoint or TorchScript) and run by PyTorch without gradients.

    Raises:
        InvalidInputError: missing or unloadable file, or a checkpoint of a classifier (by its recorded
            architecture; :func:`protect_images` also refuses a model whose output is not an image batch).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: generator file not found")
    if path.suffix.lower() == ".onnx":
        from privis.models.export import onnx_session, run_onnx

        session = onnx_session(path)
        return lambda images: run_onnx(session, images).clamp(0.0, 1.0)
    from privis.models import load_checkpoint, require_kind

    model, info = load_checkpoint(path)
    require_kind(info, "generator", path, hint="the client protects images with a perturbation generator "
                 "(privis train-generator); the classifier belongs on the server (privis serve --model)")
    model.eval()
    if not isinstance(model, torch.jit.ScriptModule):
        # faster CPU convolutions, same outputs; torch's stub of Module.to omits memory_format (torch docs)
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def run(images: Tensor) -> Tensor:
        with torch.inference_mode():
            return model(images.contiguous(memory_format=torch.channels_last)).float().clamp(0.0, 1.0)

    return run


def image_tensor(path: str | Path) -> Tensor:
    """Read one image file as a canonical ``(C, H, W)`` float32 tensor in ``[0, 1]`` (C = 1 or 3)."""
    array, scale = read_image(path)
    pixels = np.asarray(array, dtype=np.float32) / np.float32(scale)
    pixels = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)
    return torch.from_numpy(np.ascontiguousarray(pixels))


def png_bytes(image: Tensor) -> bytes:
    """Encode a canonical ``(C, H, W)`` image (C = 1 or 3) as an 8-bit PNG (values rounded to ``k / 255``)."""
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise InvalidInputError(f"png_bytes expects (1|3, H, W), got {tuple(image.shape)}")
    array = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
    # uint8 (H, W) -> mode L, uint8 (H, W, 3) -> mode RGB
    pil = Image.fromarray(array[0] if array.shape[0] == 1 else np.ascontiguousarray(np.moveaxis(array, 0, -1)))
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


def protect_images(images: Sequence[Tensor], generator: Generator, *, batch_size: int = 64) -> list[Tensor]:
    """Apply ``generator`` to ``(C, H, W)`` images, batching those of equal shape; same order and shapes out.

    Raises:
        InvalidInputError: the generator does not return a batch of the input's shape (e.g. a classifier's
            logits).
    """
    out: list[Tensor | None] = [None] * len(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            batch = torch.stack([images[i] for i in chunk])
            protected = generator(batch)
            if tuple(protected.shape) != tuple(batch.shape):
                raise InvalidInputError(f"the generator maps images {tuple(batch.shape)} to {tuple(protected.shape)}"
                                        ", not to protected images of the same shape (a classifier?)")
            for i, image in zip(chunk, protected, strict=True):
                out[i] = image
    return [o for o in out if o is not None]


@dataclass
class ClientResult:
    """One file's outcome: the server's prediction and the PNG that was sent."""

    file: str
    class_index: int
    class_name: str
    confidence: float
    confidences: list[float]
    sent_png: bytes


def _raise_for(response: Any) -> None:
    if response.status_code < 400:
        return
    try:
        err = response.json()["error"]
        detail = f"{err['code']}: {err['message']}"
    except Exception:
        detail = response.text[:300]
    raise ServerError(f"server answered {response.status_code} ({detail})")


def run_client(
    generator: str | Path | Generator,
    server: str,
    files: Sequence[str | Path],
    *,
    batch_size: int = 64,
    timeout: float = 30.0,
    http: Any = None,
) -> list[ClientResult]:
    """Protect ``files`` locally with ``generator`` and classify the protected images on ``server``.

    Args:
        generator: a generator file (see :func:`load_generator`) or a callable.
        server: base URL, e.g. ``http://127.0.0.1:8000``.
        files: image files.
        batch_size: images per request (and per generator batch).
        timeout: seconds per HTTP request.
        http: an ``httpx.Client`` to use (tests pass one with a mock transport); a new one otherwise.

    Returns:
        One :class:`ClientResult` per file, in order.

    Raises:
        InvalidInputError: no files, unreadable image (``ImageFileError``), or images that do not fit the
            served model (named).
        ServerError: the server is unreachable or answered with an error.
    """
    import httpx

    if not files:
        raise InvalidInputError("no image files given")
    run = load_generator(generator) if isinstance(generator, (str, Path)) else generator
    originals = [image_tensor(f) for f in files]
    own = http is None
    client = httpx.Client(timeout=timeout) if own else http
    base = server.rstrip("/")
    try:
        try:
            info_response = client.get(f"{base}/v1/model")
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach {base}: {exc}") from exc
        _raise_for(info_response)
        info = info_response.json()
        want = (int(info["channels"]), *map(int, info["input_size"]))
        for f, image in zip(files, originals, strict=True):
            if tuple(image.shape) != want:
                raise InvalidInputError(f"{f}: image is {tuple(image.shape)} (C, H, W); the server's model takes "
                                        f"{want}")
        protected = protect_images(originals, run, batch_size=batch_size)
        pngs = [png_bytes(p) for p in protected]
        results: list[ClientResult] = []
        for start in range(0, len(pngs), batch_size):
            chunk = range(start, min(start + batch_size, len(pngs)))
            payload = [("images", (f"{Path(files[i]).stem}.png", pngs[i], "image/png")) for i in chunk]
            try:
                response = client.post(f"{base}/v1/predict", files=payload)
            except httpx.HTTPError as exc:
                raise ServerError(f"request to {base}/v1/predict failed: {exc}") from exc
            _raise_for(response)
            for i, pred in zip(chunk, response.json()["predictions"], strict=True):
                k = int(pred["class_index"])
                results.append(ClientResult(file=str(files[i]), class_index=k, class_name=pred["class_name"],
                                            confidence=float(pred["confidences"][k]),
                                            confidences=list(pred["confidences"]), sent_png=pngs[i]))
        return results
    finally:
        if own:
            client.close()
