"""privis' own reader of dlib's serialisation format for deep networks (``dlib::serialize`` of a ``net_type``).

dlib (D. E. King, "Dlib-ml: A Machine Learning Toolkit", Journal of Machine Learning Research 10, 2009) writes a
network as its compile-time type nests: the loss layer first (``int`` version 1, the loss details, then the
sub-network); every ``add_layer`` writes its ``int`` version (2), then its sub-network recursively, then its
layer details and bookkeeping (three ``bool`` flags and the ``x_grad``, ``cached_output`` and ``params_grad``
tensors); tag and skip layers write only their version (1) and their sub-network; the bottom ``add_layer``
writes its version (2 or 3), the input layer, its details, the flags, three tensors and, from version 3, the
sample expansion factor. So the file holds the layer versions from the output down to the input, then the
layer details from the input up to the output.

Primitive encodings (``dlib/serialize.h``, ``dlib/float_details.h``, ``dlib/cuda/tensor.h``):

- integers: one control byte (low nibble: byte count 1..8, bit ``0x80``: negative), then the magnitude's
  bytes, little-endian;
- ``float``/``double``: a 64-bit integer mantissa and a 16-bit integer exponent, both as integers above,
  value ``mantissa * 2**exponent`` (exponent 32000, 32001, 32002: +inf, -inf, NaN);
- ``bool``: one ASCII byte ``'0'`` or ``'1'``; ``std::string``: its length (integer) then its bytes;
- tensors: version 2, the four dimensions ``(num_samples, k, nr, nc)`` as integers, then the values as
  little-endian IEEE float32; alias tensors (views into a layer's flat ``params``): version 1 and four
  dimensions.

:func:`read_dlib_net` returns the layers in input-to-output order, each with its parameters as torch tensors
in torch's conventions (convolution weights ``(out, in, kh, kw)``, linear weights ``(out, in)``). Tag and skip
layers carry no type id in the file (dlib knows them from the C++ type); they come back as ``"tag_or_skip"``
entries, and the caller that knows the architecture wires them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from privis.errors import ImageFileError

__all__ = ["DlibLayer", "read_dlib_net"]

#: A layer-name string in these files is never longer than this (guards against reading garbage as a length).
_MAX_NAME = 64
#: Tensor dimensions above this are not a network's (guards against garbage sizes).
_MAX_DIM = 1 << 24


@dataclass(frozen=True)
class DlibLayer:
    """One layer of a dlib network as stored in its file.

    Attributes:
        kind: ``"input_rgb_image_sized"``, ``"con"``, ``"fc"``, ``"affine"``, ``"relu"``, ``"max_pool"``,
            ``"avg_pool"``, ``"add_prev"``, ``"tag_or_skip"`` or ``"loss_metric"``.
        version: the version string the file gives the layer (e.g. ``"con_4"``); ``""`` for tag/skip layers.
        config: hyper-parameters (strides, paddings, window sizes, input means, loss margin ...).
        params: parameters as float32 tensors: ``weight`` and ``bias`` (``con``: ``(F, C, kh, kw)``, ``(F,)``;
            ``fc``: ``(out, in)``, ``(out,)``), ``gamma`` and ``beta`` (``affine``: ``(C,)`` each).
    """

    kind: str
    version: str
    config: dict[str, float | int | bool | str] = field(default_factory=dict)
    params: dict[str, Tensor] = field(default_factory=dict)


class _Reader:
    """A cursor over the file's bytes; every read failure is an :class:`ImageFileError` naming the offset."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path = path
        self.data = data
        self.pos = 0

    def fail(self, reason: str) -> ImageFileError:
        return ImageFileError(self.path, f"not a dlib network file: {reason} (at byte {self.pos})")

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ImageFileError(self.path, f"truncated dlib network file: ends at byte {len(self.data)} while "
                                            f"reading {what} (needs {self.pos + n - len(self.data)} more bytes)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def integer(self, what: str) -> int:
        control = self.take(1, what)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            self.pos -= 1
            raise self.fail(f"bad integer control byte 0x{control:02x} for {what}")
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def floating(self, what: str) -> float:
        mantissa = self.integer(what)
        exponent = self.integer(what)
        if exponent >= 32000:
            specials = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
            if exponent not in specials:
                raise self.fail(f"bad float exponent {exponent} for {what}")
            return specials[exponent]
        return math.ldexp(float(mantissa), exponent)

    def boolean(self, what: str) -> bool:
        byte = self.take(1, what)
        if byte not in (b"0", b"1"):
            self.pos -= 1
            raise self.fail(f"bad bool byte {byte!r} for {what}")
        return byte == b"1"

    def string(self, what: str) -> str:
        n = self.integer(what)
        if not 0 < n <= _MAX_NAME:
            raise self.fail(f"implausible string length {n} for {what}")
        raw = self.take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"non-ASCII {what}") from None

    def dims(self, what: str) -> tuple[int, int, int, int]:
        shape = tuple(self.integer(what) for _ in range(4))
        if any(d < 0 or d > _MAX_DIM for d in shape):
            raise self.fail(f"implausible shape {shape} for {what}")
        return shape  # type: ignore[return-value]

    def tensor(self, what: str) -> np.ndarray:
        version = self.integer(what)
        if version != 2:
            raise self.fail(f"tensor version {version} for {what} (expected 2)")
        shape = self.dims(what)
        count = int(np.prod(shape))
        raw = self.take(4 * count, what)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        version = self.integer(what)
        if version != 1:
            raise self.fail(f"alias tensor version {version} for {what} (expected 1)")
        return self.dims(what)


def _slice(flat: np.ndarray, start: int, shape: tuple[int, ...], r: _Reader, what: str) -> Tensor:
    n = int(np.prod(shape))
    if start + n > flat.size:
        raise r.fail(f"{what} needs {start + n} parameters, the layer stores {flat.size}")
    return torch.from_numpy(flat[start:start + n].reshape(shape).copy())


def _con(r: _Reader, version: str) -> DlibLayer:
    flat = r.tensor("con params").reshape(-1)
    num_filters = r.integer("con num_filters")
    nr, nc = r.integer("con nr"), r.integer("con nc")
    stride_y, stride_x = r.integer("con stride_y"), r.integer("con stride_x")
    pad_y, pad_x = r.integer("con padding_y"), r.integer("con padding_x")
    filters = r.alias("con filters")
    biases = r.alias("con biases")
    for name in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        r.floating(f"con {name} multiplier")
    use_bias = r.boolean("con use_bias") if version in ("con_5", "con_6") else True
    use_relu = r.boolean("con use_relu") if version == "con_6" else False
    if filters[0] != num_filters or filters[2:] != (nr, nc):
        raise r.fail(f"con filters {filters} disagree with num_filters={num_filters}, {nr}x{nc}")
    params = {"weight": _slice(flat, 0, filters, r, "con weight")}
    if use_bias and int(np.prod(biases)):
        params["bias"] = _slice(flat, int(np.prod(filters)), (num_filters,), r, "con bias")
    config: dict[str, float | int | bool | str] = {
        "num_filters": num_filters, "nr": nr, "nc": nc, "stride_y": stride_y, "stride_x": stride_x,
        "padding_y": pad_y, "padding_x": pad_x, "use_relu": use_relu}
    return DlibLayer("con", version, config, params)


def _fc(r: _Reader, version: str) -> DlibLayer:
    num_outputs, num_inputs = r.integer("fc num_outputs"), r.integer("fc num_inputs")
    flat = r.tensor("fc params").reshape(-1)
    weights = r.alias("fc weights")
    biases = r.alias("fc biases")
    bias_mode = r.integer("fc bias_mode")
    for name in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        r.floating(f"fc {name} multiplier")
    use_bias = r.boolean("fc use_bias") if version == "fc_3" else True
    if weights[:2] != (num_inputs, num_outputs):
        raise r.fail(f"fc weights {weights} disagree with {num_inputs} inputs and {num_outputs} outputs")
    params = {"weight": _slice(flat, 0, (num_inputs, num_outputs), r, "fc weight").T.contiguous()}
    if bias_mode == 0 and use_bias and int(np.prod(biases)):
        params["bias"] = _slice(flat, num_inputs * num_outputs, (num_outputs,), r, "fc bias")
    return DlibLayer("fc", version, {"num_outputs": num_outputs, "num_inputs": num_inputs}, params)


def _affine(r: _Reader, version: str) -> DlibLayer:
    flat = r.tensor("affine params").reshape(-1)
    gamma, beta = r.alias("affine gamma"), r.alias("affine beta")
    mode = r.integer("affine mode")
    disabled = r.boolean("affine disabled") if version == "affine_2" else False
    n = int(np.prod(gamma))
    if int(np.prod(beta)) != n:
        raise r.fail(f"affine gamma {gamma} and beta {beta} differ in size")
    params = {"gamma": _slice(flat, 0, (n,), r, "affine gamma"), "beta": _slice(flat, n, (n,), r, "affine beta")}
    return DlibLayer("affine", version, {"mode": "conv" if mode == 0 else "fc", "disabled": disabled}, params)


def _pool(kind: str) -> object:
    def read(r: _Reader, version: str) -> DlibLayer:
        names = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        return DlibLayer(kind, version, {n: r.integer(f"{kind} {n}") for n in names})
    return read


def _relu(r: _Reader, version: str) -> DlibLayer:
    return DlibLayer("relu", version, {"disabled": r.boolean("relu disabled") if version == "relu_2" else False})


def _add_prev(r: _Reader, version: str) -> DlibLayer:
    return DlibLayer("add_prev", version)


def _input_rgb(r: _Reader, version: str) -> DlibLayer:
    config: dict[str, float | int | bool | str] = {f"avg_{c}": r.floating(f"input avg_{c}")
                                                   for c in ("red", "green", "blue")}
    config.update(nr=r.integer("input nr"), nc=r.integer("input nc"))
    return DlibLayer("input_rgb_image_sized", version, config)


def _loss_metric(r: _Reader, version: str) -> DlibLayer:
    if version == "loss_metric_2":
        margin, dist_thresh = r.floating("loss margin"), r.floating("loss dist_thresh")
    else:  # dlib's defaults for files written before the two were stored
        margin, dist_thresh = 0.1, 0.6
    return DlibLayer("loss_metric", version, {"margin": margin, "dist_thresh": dist_thresh})


#: Layer version strings privis reads, and their readers.
_LAYERS = {
    "con_4": _con, "con_5": _con, "con_6": _con,
    "fc_2": _fc, "fc_3": _fc,
    "affine_": _affine, "affine_2": _affine,
    "max_pool_2": _pool("max_pool"), "avg_pool_2": _pool("avg_pool"),
    "relu_": _relu, "relu_2": _relu,
    "add_prev_": _add_prev,
    "input_rgb_image_sized": _input_rgb,
}
_LOSSES = {"loss_metric_": _loss_metric, "loss_metric_2": _loss_metric}


def _details(r: _Reader, table: dict, what: str) -> DlibLayer:
    start = r.pos
    version = r.string(f"{what} name")
    reader = table.get(version)
    if reader is None:
        r.pos = start
        raise r.fail(f"unsupported {what} {version!r} (privis reads {', '.join(sorted(table))})")
    layer: DlibLayer = reader(r, version)
    return layer


def _bookkeeping(r: _Reader, header: int, bottom: bool) -> None:
    """Skip what ``add_layer`` stores besides the details: 3 flags and the training-time tensors."""
    for flag in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        r.boolean(flag)
    r.tensor("x_grad")
    r.tensor("cached_output")
    if bottom:
        r.tensor("grad_final")
        if header >= 3:
            r.integer("sample_expansion_factor")
    elif header == 2:
        r.tensor("params_grad")


def read_dlib_net(path: str | Path) -> list[DlibLayer]:
    """Parse a dlib network file (e.g. ``dlib_face_recognition_resnet_model_v1.dat``) into its layers.

    Reads networks built from the layers dlib's face recogniser uses (``input_rgb_image_sized``, ``con``,
    ``fc``, ``affine``, ``relu``, ``max_pool``, ``avg_pool``, ``add_prev``, tags and skips) under a
    ``loss_metric`` loss. Nothing of dlib is imported.

    Args:
        path: the ``.dat`` file.

    Returns:
        The layers from the input layer (first) to the loss layer (last); tag and skip layers are
        ``"tag_or_skip"`` entries at their positions.

    Raises:
        ImageFileError: the file is missing, unreadable, truncated, has trailing bytes, or holds something
            other than such a network (the message names the byte offset and what was expected).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageFileError(path, f"cannot read dlib network file: {exc.strerror or exc}") from None
    r = _Reader(path, data)
    if r.integer("loss layer version") != 1:
        r.pos = 0
        raise r.fail("loss layer version is not 1")
    loss = _details(r, _LOSSES, "loss layer")
    # Layer versions from the output down: add_layer writes 2 (or 3 at the bottom), tag and skip layers 1. The
    # input layer's name (a string, length > 3) ends the run.
    headers: list[int] = []
    while True:
        start = r.pos
        value = r.integer("layer version")
        if value > 3:
            r.pos = start
            break
        headers.append(value)
    if not headers or headers[-1] not in (2, 3):
        raise r.fail("no add_layer above the input layer")
    layers = [_details(r, {"input_rgb_image_sized": _input_rgb}, "input layer")]
    for depth, header in enumerate(reversed(headers)):
        if header == 1:
            layers.append(DlibLayer("tag_or_skip", ""))
            continue
        layers.append(_details(r, _LAYERS, "layer"))
        _bookkeeping(r, header, bottom=depth == 0)
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unexpected bytes after the network")
    return [*layers, loss]
