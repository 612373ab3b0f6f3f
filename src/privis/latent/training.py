"""Train, evaluate, save and load privis codecs.

- :func:`train_codec`: fit a :class:`~privis.latent.autoencoder.ConvAutoencoder` (``kind="autoencoder"``), a
  :class:`~privis.latent.contractive.ContractiveCodec` (``kind="contractive"``) or a
  :class:`~privis.latent.diffae.DiffusionAutoencoder` (``kind="diffae"``: its own denoising loss, then a density
  of its training codes) to canonical images, seeded (weights, batch order, noise), the caller's global RNG
  untouched, with a progress bar;
- :func:`train_codec_on`: the above on a dataset spec, scored on held-out images, as a :class:`~privis.results.Result`
  (what ``privis train-codec`` runs);
- :func:`codec_quality`: mean |SSIM| and PSNR of ``decode(encode(x))`` against ``x`` (:mod:`privis.metrics`; for a
  diffusion codec, of its decoding of ``(z_bar, x_T)``);
- :func:`save_codec` / :func:`load_codec`: one file of plain data (``kind``, constructor ``config``, state dict,
  ``extra``) written atomically and read with ``torch.load(weights_only=True)``, so opening a codec never
  runs pickled code (as :mod:`privis.models.checkpoint`); a TorchScript encoder/decoder pair is a directory
  holding ``encoder.pt``, ``decoder.pt`` and ``codec.json`` (see :mod:`privis.latent.torchscript`).
"""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import privis
from privis.data import load
from privis.data.checks import check_images
from privis.data.spec import BUILTIN_DATASETS, SPLIT_SIZES, parse_spec
from privis.errors import InvalidInputError
from privis.fsutil import atomic_write_bytes
from privis.latent.autoencoder import ConvAutoencoder
from privis.latent.base import LatentCodec
from privis.latent.contractive import ContractiveCodec
from privis.latent.diffae import (
    DIFFAE_CONFIG_FILE,
    DiffusionAutoencoder,
    DiffusionCodec,
    TorchScriptDiffusionAutoencoder,
    load_torchscript_diffae,
    save_torchscript_diffae,
)
from privis.latent.lipschitz import measure_lipschitz
from privis.latent.torchscript import TorchScriptCodec, load_torchscript_codec, save_torchscript_codec
from privis.metrics import abs_ssim, psnr, ssim, ssim_window
from privis.models.build import seeded_rng
from privis.progress import progress
from privis.random import resolve_seed
from privis.results import Result

__all__ = ["CODECS", "codec_quality", "load_codec", "save_codec", "train_codec", "train_codec_on"]

#: Trainable codec classes by kind.
CODECS: dict[str, type[LatentCodec]] = {"autoencoder": ConvAutoencoder, "contractive": ContractiveCodec,
                                         "diffae": DiffusionAutoencoder}
#: Weight of ``1 - SSIM`` next to the mean squared error in the reconstruction loss.
SSIM_WEIGHT = 0.1
_FORMAT = "privis-codec"


def _reconstruction_loss(images: Tensor, recon: Tensor) -> Tensor:
    win = ssim_window(images.shape[-2], images.shape[-1])
    return F.mse_loss(recon, images) + SSIM_WEIGHT * (1.0 - ssim(recon, images, win_size=win).mean())


def _training_loss(codec: LatentCodec, images: Tensor, generator: torch.Generator) -> Tensor:
    """The loss :func:`train_codec` minimises: a diffusion codec's own, else the reconstruction loss."""
    if isinstance(codec, DiffusionAutoencoder):
        return codec.training_loss(images, generator)
    return _reconstruction_loss(images, codec._decode(codec._encode(images)))


def train_codec(images: Tensor, kind: str = "autoencoder", *, epochs: int = 5, batch_size: int = 64,
                lr: float = 2e-3, random_state: int | None = None, **options: Any) -> LatentCodec:
    """A codec of ``kind`` trained to reconstruct ``images`` (Adam, MSE + 0.1 (1 - SSIM), cosine schedule).

    A linear contractive codec (``hidden=()``, the default) starts from PCA (:meth:`ContractiveCodec.fit_pca`)
    and is fine-tuned at a tenth of ``lr``. A diffusion autoencoder minimises its denoising loss
    (:meth:`DiffusionAutoencoder.training_loss`) instead, and then fits the density of its training codes
    (:meth:`DiffusionAutoencoder.fit_density`, seeded with ``random_state``).

    Args:
        images: ``(N, C, H, W)`` float32 in ``[0, 1]`` (``C`` 1 or 3, ``H, W >= 4``); the codec is trained on
            their device.
        kind: ``"autoencoder"``, ``"contractive"`` or ``"diffae"`` (:data:`CODECS`).
        epochs: passes over ``images`` (``>= 1``).
        batch_size: images per step (``>= 1``).
        lr: Adam's initial learning rate (``> 0``), decayed to 0 by a cosine schedule.
        random_state: seed of the initial weights and the batch order; None draws from OS entropy.
        **options: constructor options of the codec class (``groups``, ``group_size``, ``base``, ``hidden``;
            ``semantic_dim``, ``base``, ``timesteps``, ``steps`` for ``"diffae"``, plus ``density``:
            ``"gaussian"`` (default) or ``"gmm"``).

    Returns:
        The codec in eval mode on the images' device, gradients off.

    Raises:
        InvalidInputError: bad images, an unknown kind, bad options or a non-finite loss (diverged).
    """
    images = check_images(images, channels=(1, 3))
    if kind not in CODECS:
        raise InvalidInputError(f"unknown codec kind {kind!r}; kinds: {', '.join(sorted(CODECS))}")
    for key, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidInputError(f"{key} must be an integer >= 1, got {value!r}")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise InvalidInputError(f"lr must be a finite number > 0, got {lr!r}")
    seed = resolve_seed(random_state)
    c, h, w = images.shape[1:]
    density = str(options.pop("density", "gaussian")) if kind == "diffae" else None
    with seeded_rng(seed):
        codec = CODECS[kind]((c, h, w), **options) if kind == "diffae" else CODECS[kind](c, h, w, **options)
    codec.to(images.device).train()
    if isinstance(codec, ContractiveCodec) and not codec.config["hidden"]:
        codec.fit_pca(images)  # the MSE optimum of a linear codec; Adam only fine-tunes it (for SSIM), gently
        lr = lr / 10
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(codec.parameters(), lr=lr)
    n = images.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    for _ in progress(range(epochs), total=epochs, desc=f"train {kind} codec", unit="epoch"):
        order = torch.randperm(n, generator=generator).to(images.device)
        for start in range(0, n, batch_size):
            batch = images[order[start:start + batch_size]]
            loss = _training_loss(codec, batch, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if not math.isfinite(float(loss.detach())):
            raise InvalidInputError(f"{kind} codec training diverged (loss {float(loss.detach())}); lower lr")
    codec.eval().requires_grad_(False)
    if isinstance(codec, DiffusionAutoencoder) and density is not None:
        with torch.inference_mode():
            codes = torch.cat([codec._encode(chunk)[:, 0] for chunk in images.split(512)])
        codec.fit_density(codes, density, random_state=seed)
    return codec


@torch.inference_mode()
def codec_quality(codec: LatentCodec, images: Tensor, *, batch_size: int = 512,
                  stochastic: bool = True) -> dict[str, float]:
    """Reconstruction quality of ``codec`` on ``images``: ``{"reconstruction_ssim_mean", "reconstruction_psnr_mean"}``
    (higher is better, unlike a protection's |SSIM| and PSNR to the originals).

    Args:
        codec: any :class:`LatentCodec`; run on its own device.
        images: ``(N, C, H, W)`` float32 in ``[0, 1]`` of the codec's image shape.
        batch_size: images per forward pass.
        stochastic: for a diffusion codec, reconstruct from ``(z_bar, x_T)`` (True) or from ``z_bar`` alone,
            ``decode(encode(x))`` with ``x_T = 0`` (False: how much of the image the semantic code holds).

    Returns:
        Mean |SSIM| (scikit-image's conventions, :func:`privis.metrics.ssim_window`) and mean PSNR in dB
        (identical reconstructions count as 100 dB rather than infinity) of ``decode(encode(x))`` against ``x``;
        for a :class:`~privis.latent.diffae.DiffusionCodec`, of ``decode_semantic(z_bar, x_T)`` with ``x_T`` from
        DDIM inversion (``encode_stochastic``) at the codec's ``steps``.

    Raises:
        InvalidInputError: images the codec refuses.
    """
    images = check_images(images, channels=None)
    device = next((p.device for p in codec.parameters()), images.device)
    win = ssim_window(images.shape[-2], images.shape[-1])
    ssims, psnrs = [], []
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].to(device)
        if isinstance(codec, DiffusionCodec) and stochastic:
            z_sem = codec.encode_semantic(x)
            r = codec.decode_semantic(z_sem, codec.encode_stochastic(x, z_sem))
        else:
            r = codec.decode(codec.encode(x))
        ssims.append(torch.as_tensor(abs_ssim(x, r, win_size=win)))
        psnrs.append(torch.as_tensor(psnr(x, r)).clamp(max=100.0))
    return {"reconstruction_ssim_mean": float(torch.cat(ssims).mean()),
            "reconstruction_psnr_mean": float(torch.cat(psnrs).mean())}


def save_codec(codec: LatentCodec, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``codec`` atomically and return the path written.

    A :class:`ConvAutoencoder`, :class:`ContractiveCodec` or :class:`DiffusionAutoencoder` (with its fitted
    density) becomes one file (``kind``, ``config``, state dict, ``extra``: plain numbers and strings); a
    :class:`TorchScriptCodec` becomes the directory ``path`` holding ``encoder.pt``, ``decoder.pt`` and
    ``codec.json``, a :class:`TorchScriptDiffusionAutoencoder` the directory of
    :func:`~privis.latent.diffae.save_torchscript_diffae`.

    Raises:
        InvalidInputError: a codec of another class, or ``extra`` that is not JSON data.
    """
    path = Path(path)
    if isinstance(codec, TorchScriptCodec):
        return save_torchscript_codec(codec, path)
    if isinstance(codec, TorchScriptDiffusionAutoencoder):
        return save_torchscript_diffae(codec, path)
    kind = next((k for k, cls in CODECS.items() if type(codec) is cls), None)
    if kind is None:
        raise InvalidInputError(f"save_codec saves {', '.join(c.__name__ for c in CODECS.values())} or "
                                f"TorchScriptCodec, got {type(codec).__name__}")
    try:
        extra_json = json.dumps(dict(extra or {}))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"save_codec: extra must be JSON data ({exc})") from exc
    payload = {"format": _FORMAT, "kind": kind, "config": json.dumps(codec.config), "extra": extra_json,
               "state_dict": {k: v.detach().cpu() for k, v in codec.state_dict().items()},
               "privis_version": privis.__version__}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_codec(path: str | Path, device: torch.device | str | None = None) -> LatentCodec:
    """Load a codec written by :func:`save_codec` (a file) or a TorchScript pair (a directory).

    Args:
        path: a codec file, a directory with ``encoder.pt``, ``decoder.pt`` and ``codec.json``, or one with
            ``semantic_encoder.pt``, ``noise_model.pt`` and ``diffae.json`` (a TorchScript diffusion autoencoder).
        device: where to put it (default: the CPU).

    Returns:
        The codec in eval mode, gradients off; its ``extra`` dict in the attribute ``extra``.

    Raises:
        InvalidInputError: a missing, unreadable or foreign file, or weights that do not fit; the message names
            the path.
    """
    path = Path(path).expanduser()
    device = torch.device(device or "cpu")
    if path.is_dir() and (path / DIFFAE_CONFIG_FILE).is_file():
        return load_torchscript_diffae(path, device=device)
    if path.is_dir():
        return load_torchscript_codec(path, device=device)
    if not path.is_file():
        raise InvalidInputError(f"{path}: codec file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError ... for damaged files
        raise InvalidInputError(f"{path}: not a readable privis codec ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT or payload.get("kind") not in CODECS:
        raise InvalidInputError(f"{path}: not a privis codec file (train one with privis train-codec)")
    try:
        config = json.loads(payload["config"])
        if payload["kind"] == "autoencoder":
            config.setdefault("head_size", None)  # saved before the heads' cap existed: uncapped
        codec = CODECS[payload["kind"]](**config)
        codec.load_state_dict(payload["state_dict"])
    except (InvalidInputError, RuntimeError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{path}: the weights do not fit a {payload['kind']} codec "
                                f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
    codec.extra = json.loads(payload.get("extra") or "{}")
    return codec.to(device).eval().requires_grad_(False)


def train_codec_on(data: str, kind: str = "autoencoder", *, epochs: int = 5, seed: int | None = None,
                   test_size: int = 2000, **options: Any) -> tuple[LatentCodec, Result]:
    """Train a codec on the dataset ``data`` names and score it on held-out images.

    Held-out images: the first ``test_size`` (at most all) of the dataset's ``test`` split when ``data`` names a
    built-in dataset's train split (or none); otherwise the last 10% of ``data`` (at least one image), the rest
    training the codec.

    Args:
        data: a dataset spec (:func:`privis.data.load`), e.g. ``"fashion-mnist"``, ``"digits:train"``.
        kind, epochs, options: as :func:`train_codec`; seed: its ``random_state``.
        test_size: held-out images taken from a test split (``>= 1``).

    Returns:
        ``(codec, result)``: ``result.summary`` holds ``reconstruction_ssim_mean``,
        ``reconstruction_psnr_mean`` (held-out), ``train_seconds``, for a diffusion codec ``semantic_ssim_mean``
        and ``semantic_psnr_mean`` (from ``z_bar`` alone), the measured ``jacobian_max`` and
        ``pair_ratio_max`` of ``f(g(z))`` at held-out latents (:func:`measure_lipschitz`; not for a diffusion
        codec, whose decoding is many network passes) and, for a contractive codec, ``certified_bound``.

    Raises:
        InvalidInputError, DatasetError: a bad spec, missing data or bad options.
    """
    spec = parse_spec(data)
    dataset = load(data)
    if spec.kind == "builtin" and spec.default_split == "train" and "test" in BUILTIN_DATASETS[spec.name][0]:
        held_name = f"{spec.name}:test[:{min(test_size, SPLIT_SIZES[spec.name]['test'])}]"
        train_images, held = dataset.images, load(held_name).images
    else:
        cut = max(1, dataset.images.shape[0] // 10)
        if dataset.images.shape[0] < 2:
            raise InvalidInputError(f"{data}: at least 2 images are needed (one held out)")
        held_name = f"{data} (last {cut})"
        train_images, held = dataset.images[:-cut], dataset.images[-cut:]
    started = time.perf_counter()
    codec = train_codec(train_images, kind, epochs=epochs, random_state=seed, **options)
    seconds = time.perf_counter() - started
    quality = codec_quality(codec, held)
    summary = {**quality, "train_seconds": seconds}
    notes = []
    if isinstance(codec, DiffusionCodec):
        semantic = codec_quality(codec, held, stochastic=False)
        summary.update(semantic_ssim_mean=semantic["reconstruction_ssim_mean"],
                       semantic_psnr_mean=semantic["reconstruction_psnr_mean"])
        notes.append("semantic_ssim_mean and semantic_psnr_mean: reconstruction from z_bar alone (x_T = 0)")
        notes.append(f"reconstruction from (z_bar, x_T), x_T by DDIM inversion, {codec.steps} DDIM steps; no "
                     f"Lipschitz estimate (each decode is {codec.steps} network passes)")
    else:
        lipschitz = measure_lipschitz(codec, images=held[:512], samples=32, pairs=256, iterations=10,
                                      random_state=seed)
        summary.update(jacobian_max=lipschitz.jacobian_max, pair_ratio_max=lipschitz.pair_ratio_max)
        notes.append("jacobian_max and pair_ratio_max are lower bounds on the Lipschitz constant of f(g(z)) found "
                     "by sampling (32 held-out latents, 10 power iterations; 256 pairs), not proofs")
    if codec.lipschitz_bound is not None:
        summary["certified_bound"] = float(codec.lipschitz_bound)
    config = {"data": data, "held_out": held_name, "kind": kind, "epochs": epochs, "train_images":
              int(train_images.shape[0]), "held_out_images": int(held.shape[0]), "codec": codec.config,
              "latent_shape": list(codec.latent_shape), "torch_threads": torch.get_num_threads()}
    return codec, Result("train-codec", summary=summary, config=config, notes=notes, seconds=seconds)
