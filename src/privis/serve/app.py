"""The service provider's side of protective perturbation: an HTTP server that runs an *unchanged*
classifier on the images it receives.

Ye, Tang, Phan, Xie, Yuan & Wei, "Visual Privacy Protection in Mobile Image Recognition Using Protective
Perturbation", ACM MMSys 2022, doi:10.1145/3524273.3528189, Sections 3.1, 3.4 and 5.

The paper's server (Sec. 3.4, Fig. 5) receives protected images over TCP and returns recognition results;
its point is that the target model needs no retraining. :func:`create_app` hosts any privis checkpoint or
TorchScript classifier behind a small JSON API (FastAPI):

- ``POST /v1/predict``: ``multipart/form-data`` with one or more image files (any field name; ``images``
  by convention) -> per image: class index, class name and the softmax confidences;
- ``GET /v1/health``: liveness;
- ``GET /v1/model``: the expected input (height, width, channels), the classes and the server's limits;
- ``GET /openapi.json``: the OpenAPI description (FastAPI's);
- with ``client_generator`` only (``privis serve --client``): ``GET /`` the browser client (a static page
  that protects images *in the browser* with the exported generator, ONNX Runtime Web, and sends only the
  protected image to ``/v1/predict``), ``GET /static/...`` its script, style and vendored runtime, and
  ``GET /client/generator.onnx`` the generator file. Without it none of these routes exist.

``request_log`` appends one JSON line per received upload: time, file name, byte count, SHA-256 of the
bytes and, when the image decodes, its size, channels and the SHA-256 of its 8-bit pixels (``C, H, W``
order), or the rejection code. No image is ever stored: the log lets a test or an auditor check which images
reached the server (e.g. that no original did) without keeping them.

The server never dies on input and never answers a bad request with a 5xx. Every rejection is a 4xx with
the body ``{"error": {"code": ..., "message": ...}}`` naming the problem:

======================  ======  ======================================================================
code                    status  cause
======================  ======  ======================================================================
``upload_too_large``    413     body above ``max_upload_bytes`` (by ``Content-Length`` before reading, or
                                counted while streaming when there is none)
``too_many_files``      413     more than ``max_files`` images in one request
``image_too_large``     413     the header declares more than ``max_pixels`` pixels (checked with
                                ``Image.open(...).size`` *before* any pixel is decoded; Pillow's own
                                ``DecompressionBombError`` is caught too)
``unsupported_media``   415     the request is not ``multipart/form-data``
``bad_request``         400     malformed multipart body, bad ``Content-Length``
``no_image``            400     no file in the form
``empty_file``          400     a zero-byte file
``undecodable_image``   400     not an image in an accepted format (PNG, JPEG, BMP, GIF, TIFF, WebP, PPM)
``truncated_image``     400     the pixel data is cut short or corrupt, or a PNG/JPEG lacks its end
                                marker (IEND / EOI)
``wrong_mode``          422     alpha channel, multi-frame, unsupported pixel mode, or a channel count the
                                model does not take
``wrong_size``          422     height x width differ from the model's input size
======================  ======  ======================================================================

Limits bound the work a request can cause: the body size bounds memory, ``max_pixels`` bounds decoding,
``max_files`` the batch. Pillow's process-wide ``Image.MAX_IMAGE_PIXELS`` is left alone (other parts of
privis read images in the same process); the server's own, stricter ``max_pixels`` check runs first and
Pillow's bomb error is mapped to the same 413. Only a fixed list of decoders is allowed (``formats=`` of
``Image.open``), so no request reaches a decoder that shells out (EPS) or is rarely exercised. Inference
runs under a lock, one batch at a time, in a worker thread: the model's intra-op threads are not
oversubscribed and the event loop stays free to answer health checks.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from privis.data import read_image
from privis.data.checks import check_int
from privis.errors import ImageFileError, InvalidInputError
from privis.models import freeze, load_checkpoint, require_kind

#: Default limits of :func:`create_app`.
DEFAULT_MAX_UPLOAD_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096
DEFAULT_MAX_FILES = 256
#: Decoders a request may reach (Pillow format names).
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
#: The browser client's files (``privis serve --client``) and the runtime vendored by ``scripts/vendor-web.sh``.
STATIC_DIR = Path(__file__).parent / "static"
VENDOR_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm",
                "ort.webgpu.min.js", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
#: Pixel modes whose meaning is unambiguous without alpha (as :func:`privis.data.read_image` accepts).
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ApiError(Exception):
    """A rejected request: HTTP ``status``, a stable ``code`` and a human-readable ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


# ------------------------------------------------------------------------------------------ the model


@dataclass
class ServedModel:
    """A frozen classifier and what clients must know to call it.

    Attributes:
        model: the network (eval mode, no gradients), taking canonical ``(N, C, H, W)`` images.
        channels: ``C``.
        image_size: ``(H, W)`` every image must have.
        class_names: one name per output.
        arch: architecture name (None for a TorchScript file without metadata).
        source: the checkpoint file.
    """

    model: torch.nn.Module
    channels: int
    image_size: tuple[int, int]
    class_names: list[str]
    arch: str | None
    source: str

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Softmax confidences ``(N, K)`` for canonical ``images`` ``(N, C, H, W)``, one batch at a time."""
        with self._lock, torch.inference_mode():
            return torch.softmax(self.model(images).float(), dim=1)


def load_served_model(path: str | Path, *, class_names: list[str] | None = None) -> ServedModel:
    """Load a classifier checkpoint (privis or TorchScript with privis metadata) for serving.

    The input size and channels come from the checkpoint's ``arch_kwargs``; class names from its
    ``extra["class_names"]`` (written by ``privis train``), else ``class_names``, else ``"0"``, ``"1"`` ...

    Raises:
        InvalidInputError: unreadable checkpoint, one that does not say its input size and channels, or one
            that is not a classifier (a perturbation generator belongs on the user's side: ``privis client
            --generator``), by its recorded architecture or by its output (not ``(N, num_classes)`` logits).
    """
    model, info = load_checkpoint(path)
    require_kind(info, "classifier", path, hint="serve the classifier the generator was trained against, and "
                 "give the generator to `privis client --generator`")
    kwargs = info.get("arch_kwargs") or {}
    size = kwargs.get("image_size")
    channels = kwargs.get("in_channels")
    if isinstance(size, int):
        size = (size, size)
    if not (isinstance(channels, int) and isinstance(size, (list, tuple)) and len(size) == 2):
        raise InvalidInputError(f"{path}: the checkpoint does not record its input size and channels "
                                "(arch_kwargs image_size / in_channels); save it with privis")
    freeze(model)
    h, w = int(size[0]), int(size[1])
    with torch.inference_mode():
        logits = model(torch.zeros(1, channels, h, w))
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != 1:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InvalidInputError(f"{path}: not a classifier: it maps a (1, {channels}, {h}, {w}) image to {shape}, "
                                "not to (1, num_classes) logits")
    k = int(logits.shape[1])
    names = (info.get("extra") or {}).get("class_names") or class_names or [str(i) for i in range(k)]
    names = [str(n) for n in names]
    if len(names) != k:
        raise InvalidInputError(f"{path}: {len(names)} class names for a model with {k} outputs")
    return ServedModel(model=model, channels=int(channels), image_size=(h, w), class_names=names,
                       arch=info.get("arch"), source=str(path))


# ------------------------------------------------------------------------------------------ decoding


#: The last bytes of a complete PNG: the IEND chunk (length 0, type, CRC).
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


def check_trailer(name: str, fmt: str | None, data: bytes) -> None:
    """Reject a PNG that does not end with its IEND chunk and a JPEG that does not end with the EOI marker.

    A PNG cut after its last IDAT chunk, or a JPEG cut before EOI, can still decode (Pillow fills or stops
    quietly); the server refuses them anyway, because a file cut short is not the file that was meant.

    Raises:
        ApiError: 400 ``truncated_image``.
    """
    if fmt == "PNG" and not data.endswith(_PNG_END):
        raise ApiError(400, "truncated_image", f"{name}: PNG does not end with its IEND chunk (truncated)")
    if fmt == "JPEG" and not data.rstrip(b"\x00").endswith(_JPEG_END):
        raise ApiError(400, "truncated_image", f"{name}: JPEG does not end with the EOI marker (truncated)")


def decode_image(name: str, data: bytes, *, max_pixels: int, channels: int, size: tuple[int, int]) -> np.ndarray:
    """Validate and decode one uploaded image to a float32 ``(C, H, W)`` array in ``[0, 1]``.

    Order matters: the header is read and its declared size checked before any pixel is decoded.

    Raises:
        ApiError: 400/413/422 with the codes of the module docstring.
    """
    if not data:
        raise ApiError(400, "empty_file", f"{name}: empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
            width, height = img.size
            mode = img.mode
            frames = getattr(img, "n_frames", 1)
            fmt = img.format
    except Image.DecompressionBombError as exc:
        raise ApiError(413, "image_too_large", f"{name}: image declares too many pixels ({exc})") from None
    except UnidentifiedImageError:
        raise ApiError(400, "undecodable_image",
                       f"{name}: not an image in an accepted format ({', '.join(ALLOWED_FORMATS)})") from None
    except Exception as exc:  # a damaged header can raise anything from a plugin
        raise ApiError(400, "undecodable_image", f"{name}: unreadable image header ({exc})") from None
    check_trailer(name, fmt, data)
    if width * height > max_pixels:
        raise ApiError(413, "image_too_large",
                       f"{name}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}")
    if width < 1 or height < 1:
        raise ApiError(400, "undecodable_image", f"{name}: image declares size {width}x{height}")
    if mode in _ALPHA_MODES:
        raise ApiError(422, "wrong_mode", f"{name}: image mode {mode} has an alpha channel; send L or RGB")
    if frames != 1:
        raise ApiError(422, "wrong_mode", f"{name}: image has {frames} frames; send a single frame")
    if (height, width) != size:
        raise ApiError(422, "wrong_size", f"{name}: image is {height}x{width} (HxW), the model takes "
                                          f"{size[0]}x{size[1]}")
    try:
        array, scale = read_image(name, data)
    except ImageFileError as exc:
        reason = exc.reason
        if "mode" in reason or "alpha" in reason or "palette" in reason or "frames" in reason:
            raise ApiError(422, "wrong_mode", f"{name}: {reason}") from None
        if "too large" in reason:
            raise ApiError(413, "image_too_large", f"{name}: {reason}") from None
        raise ApiError(400, "truncated_image", f"{name}: {reason}") from None
    pixels = np.asarray(array, dtype=np.float32) / np.float32(scale)
    pixels = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)
    if pixels.shape[0] != channels:
        raise ApiError(422, "wrong_mode", f"{name}: image has {pixels.shape[0]} channel(s), the model takes "
                                          f"{channels} ({'grey L' if channels == 1 else 'RGB'})")
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
        raise ApiError(422, "wrong_mode", f"{name}: pixel values outside the image's range")
    return np.ascontiguousarray(pixels)


# ------------------------------------------------------------------------------------------ body limit


class _BodyTooLargeError(Exception):
    """Raised inside the app's ``receive`` when the streamed body passes the limit."""


class BodyLimitMiddleware:
    """ASGI middleware rejecting request bodies above ``max_bytes`` with a JSON 413.

    A declared ``Content-Length`` above the limit is rejected before the body is read; a body without one
    is counted as it streams and the request is aborted as soon as it passes the limit. The rest of an
    oversized body is read and discarded (up to ``drain_bytes``) before answering, so the client reads the
    413 instead of a connection reset.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int, drain_bytes: int = 64 * 1024 * 1024):
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes

    async def _reply(self, send: Send, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def _drain(self, receive: Receive, already: int) -> None:
        seen = already
        while seen <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for key, value in scope.get("headers", []):
            if key.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reply(send, 400, "bad_request", "Content-Length is not an integer")
                    return
                if declared < 0:
                    await self._reply(send, 400, "bad_request", "Content-Length is negative")
                    return
        limit_msg = f"request body exceeds the upload limit of {self.max_bytes} bytes"
        if declared is not None and declared > self.max_bytes:
            await self._drain(receive, 0)
            await self._reply(send, 413, "upload_too_large", f"{limit_msg} (Content-Length {declared})")
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLargeError:
            if not started:
                await self._drain(receive, received)
                await self._reply(send, 413, "upload_too_large", limit_msg)


# ------------------------------------------------------------------------------------------ request log


class RequestLog:
    """Append-only JSON-lines log of received uploads: hashes and sizes, never pixels.

    One line per file, written with a single ``write`` on a file opened in append mode (lines from
    concurrent requests do not interleave). Fields: ``time`` (Unix seconds), ``filename``, ``bytes``,
    ``sha256`` (of the uploaded bytes), then either ``channels``, ``height``, ``width`` and ``pixels_sha256``
    (SHA-256 of the decoded image quantised to 8 bits, ``uint8`` in ``(C, H, W)`` order) or ``error`` (the
    rejection code).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot write the request log ({exc.strerror or exc})") from None

    def record(self, name: str, data: bytes, pixels: np.ndarray | None, error: str | None) -> None:
        """Log one upload: ``pixels`` the decoded ``(C, H, W)`` image in ``[0, 1]``, or None with ``error``."""
        entry: dict[str, Any] = {"time": time.time(), "filename": name, "bytes": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest()}
        if pixels is not None:
            quantised = np.round(pixels * 255.0).astype(np.uint8)
            entry.update(channels=int(pixels.shape[0]), height=int(pixels.shape[1]), width=int(pixels.shape[2]),
                         pixels_sha256=pixels_sha256(quantised))
        else:
            entry["error"] = error
        line = (json.dumps(entry) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


def pixels_sha256(image: np.ndarray) -> str:
    """SHA-256 of an 8-bit image ``(C, H, W)`` ``uint8`` (C-contiguous bytes), as :class:`RequestLog` writes it."""
    if image.dtype != np.uint8 or image.ndim != 3:
        raise InvalidInputError(f"pixels_sha256 expects a uint8 (C, H, W) array, got {image.dtype} {image.shape}")
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


# ------------------------------------------------------------------------------------------ the client page


def check_client_generator(path: str | Path, served: ServedModel) -> Path:
    """Check the browser client can be served: the vendored runtime is installed and ``path`` is an ONNX
    generator mapping the served model's input ``(1, C, H, W)`` to an image of the same shape.

    Raises:
        InvalidInputError: missing runtime files (names ``scripts/vendor-web.sh``), a file that is not
            ``.onnx``, not loadable, or not an image-to-image generator for this model's input.
    """
    from privis.serve.client import load_generator, protect_images

    missing = [f for f in VENDOR_FILES if not (STATIC_DIR / "vendor" / f).is_file()]
    if missing:
        raise InvalidInputError(f"the browser client's runtime is not installed ({STATIC_DIR / 'vendor'} lacks "
                                f"{missing[0]}): run scripts/vendor-web.sh (needs npm) or scripts/setup.sh")
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise InvalidInputError(f"{path}: the browser client runs an ONNX generator; export one with "
                                "`privis export --generator GEN.pt --onnx GEN.onnx`")
    probe = torch.zeros(served.channels, *served.image_size)
    protect_images([probe], load_generator(path))
    return path


def add_client_routes(app: Any, generator: Path) -> None:
    """Serve the browser client at ``/``, its assets at ``/static`` and ``generator`` at
    ``/client/generator.onnx``."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        # cross-origin isolation lets ONNX Runtime Web use WebAssembly threads (SharedArrayBuffer)
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers={"Cross-Origin-Opener-Policy": "same-origin",
                                     "Cross-Origin-Embedder-Policy": "require-corp"})

    @app.get("/client/generator.onnx", include_in_schema=False)
    def generator_file() -> FileResponse:
        return FileResponse(generator, media_type="application/octet-stream",
                            headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


# ------------------------------------------------------------------------------------------ the app


class Prediction(BaseModel):
    """One image's result."""

    filename: str = Field(description="The uploaded file's name.")
    class_index: int = Field(description="Index of the most likely class.")
    class_name: str = Field(description="Name of the most likely class.")
    confidences: list[float] = Field(description="Softmax confidence of every class, by class index.")


class PredictResponse(BaseModel):
    """``POST /v1/predict``: one prediction per uploaded image, in upload order."""

    predictions: list[Prediction]
    model: str | None = Field(description="Architecture of the served model.")
    seconds: float = Field(description="Server-side decode + inference time.")


class ModelInfo(BaseModel):
    """``GET /v1/model``."""

    arch: str | None
    input_size: list[int] = Field(description="[height, width] every image must have.")
    channels: int = Field(description="1 (grey, mode L) or 3 (RGB).")
    num_classes: int
    class_names: list[str]
    max_upload_bytes: int
    max_pixels: int
    max_files: int
    accepted_formats: list[str]


class Health(BaseModel):
    """``GET /v1/health``."""

    status: str
    uptime_seconds: float


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """The body of every 4xx (and of a 5xx, which would be a bug)."""

    error: ErrorDetail


def create_app(
    model_path: str | Path,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_files: int = DEFAULT_MAX_FILES,
    class_names: list[str] | None = None,
    client_generator: str | Path | None = None,
    request_log: str | Path | None = None,
) -> Any:
    """Build the FastAPI application serving the classifier at ``model_path`` unchanged.

    Args:
        model_path: a privis checkpoint or TorchScript file of a classifier (loaded once, here).
        max_upload_bytes: largest request body accepted.
        max_pixels: largest ``width * height`` an image header may declare.
        max_files: most images per request.
        class_names: names for the outputs when the checkpoint has none.
        client_generator: an ONNX generator (``privis export --onnx``): also serve the browser client at
            ``/`` with this generator (see the module docstring); None serves the API only.
        request_log: append a :class:`RequestLog` line per received upload to this file.

    Returns:
        The ASGI app (FastAPI), ready for ``uvicorn.run``.

    Raises:
        InvalidInputError: bad limits, an unusable checkpoint, or an unusable client generator or runtime
            (:func:`check_client_generator`).
    """
    for value, what in ((max_upload_bytes, "max_upload_bytes"), (max_pixels, "max_pixels"),
                        (max_files, "max_files")):
        check_int(value, what)
    served = load_served_model(model_path, class_names=class_names)
    page_generator = None if client_generator is None else check_client_generator(client_generator, served)
    log = None if request_log is None else RequestLog(request_log)
    started_at = time.time()

    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorResponse, "description": text} for status, text in (
            (400, "Malformed request or image"), (413, "Upload, image or batch too large"),
            (415, "Not multipart/form-data"), (422, "Image of the wrong mode, channels or size"))}

    app = FastAPI(title="privis classifier server", version="1",
                  description="Runs an unchanged classifier on (protected) images; see privis.serve.app.")

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return JSONResponse({"error": {"code": codes.get(exc.status_code, "bad_request"), "message": str(exc.detail)}},
                            status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": {"code": "bad_request", "message": str(exc.errors())[:500]}}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug if reached
        return JSONResponse({"error": {"code": "internal_error", "message": type(exc).__name__}}, status_code=500)

    @app.get("/v1/health", response_model=Health)
    def health() -> Health:
        """Liveness: the model is loaded and the server answers."""
        return Health(status="ok", uptime_seconds=time.time() - started_at)

    @app.get("/v1/model", response_model=ModelInfo)
    def model_info() -> ModelInfo:
        """What the served model expects: input size, channels, classes, and the request limits."""
        return ModelInfo(arch=served.arch, input_size=list(served.image_size), channels=served.channels,
                         num_classes=len(served.class_names), class_names=served.class_names,
                         max_upload_bytes=max_upload_bytes, max_pixels=max_pixels, max_files=max_files,
                         accepted_formats=list(ALLOWED_FORMATS))

    def infer(names: list[str], blobs: list[bytes]) -> PredictResponse:
        t0 = time.perf_counter()
        arrays = []
        for n, b in zip(names, blobs, strict=True):
            try:
                arrays.append(decode_image(n, b, max_pixels=max_pixels, channels=served.channels,
                                           size=served.image_size))
            except ApiError as exc:
                if log is not None:
                    log.record(n, b, None, exc.code)
                raise
            if log is not None:
                log.record(n, b, arrays[-1], None)
        probs = served.probabilities(torch.from_numpy(np.stack(arrays)))
        top = probs.argmax(dim=1).tolist()
        preds = [Prediction(filename=n, class_index=int(k), class_name=served.class_names[k], confidences=p)
                 for n, k, p in zip(names, top, probs.tolist(), strict=True)]
        return PredictResponse(predictions=preds, model=served.arch, seconds=time.perf_counter() - t0)

    multipart_schema = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["images"],
        "properties": {"images": {"type": "array", "items": {"type": "string", "format": "binary"},
                                  "description": "One or more image files (PNG, JPEG, ...)."}}}}}}}

    @app.post("/v1/predict", response_model=PredictResponse, responses=errors, openapi_extra=multipart_schema)
    async def predict(request: Request) -> PredictResponse:
        """Classify one or more uploaded images with the unchanged model."""
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise ApiError(415, "unsupported_media", f"expected multipart/form-data, got {content_type or 'none'!r}")
        if "boundary=" not in content_type.lower():
            raise ApiError(400, "bad_request", "multipart/form-data without a boundary parameter")
        try:
            form = await request.form(max_files=max_files, max_fields=max_files)
        except _BodyTooLargeError:
            raise
        except StarletteHTTPException as exc:  # starlette's MultiPartException, e.g. too many files
            too_many = "Too many files" in str(exc.detail)
            raise ApiError(413 if too_many else 400, "too_many_files" if too_many else "bad_request",
                           f"{exc.detail}" + (f" (limit {max_files})" if too_many else "")) from None
        except Exception as exc:
            raise ApiError(400, "bad_request", f"malformed multipart body ({type(exc).__name__}: {exc})") from None
        try:
            uploads = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
            if not uploads:
                raise ApiError(400, "no_image", "the form holds no file; send images as multipart file fields")
            if len(uploads) > max_files:
                raise ApiError(413, "too_many_files", f"{len(uploads)} files; the limit is {max_files}")
            names = [u.filename or f"{k}[{i}]" for i, (k, u) in enumerate(uploads)]
            blobs = [await u.read() for _, u in uploads]
        finally:
            await form.close()
        return await run_in_threadpool(infer, names, blobs)

    if page_generator is not None:
        add_client_routes(app, page_generator)
    app.state.served = served
    app.state.limits = {"max_upload_bytes": max_upload_bytes, "max_pixels": max_pixels, "max_files": max_files}
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_upload_bytes)
    return app
