"""Latent anonymiser experiments: Table 6.1 (against blur, pixelate, noise, DP-Image and FSAP), Table 6.3 (IIS vs
IRS), image grids real | paired fake | anonymised, and the privacy-utility frontier over ``lambda_att``.

H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis,
University of Technology Sydney, 2023, Chapter 6 (Section 6.6, Tables 6.1 and 6.3). The thesis anonymises
CelebA-HQ / FFHQ with a pretrained conditional DDIM autoencoder, optimises against ArcFace, measures identity
anonymity with FaceNet trained on CASIA and on VGGFace2, image quality with FID (Inception v3), attribute
preservation with MobileNetV2 classifiers trained on the anonymised set and tested on original images, and face
detection with dlib and MTCNN. Here, on Fashion-MNIST (default) or digits:

- **identity = the individual image**: exemplar identity models
  (:func:`privis.identity.exemplar.train_exemplar_identity`; Dosovitskiy et al., NeurIPS 2014) trained on a
  slice of the training split *disjoint* from the protected images (the thesis' FaceNet never saw CelebA's
  people) and calibrated at the equal error rate on augmented copies of the original test images. The
  anonymiser optimises against a LeNet-5 exemplar model (``spr``); ``spr_heldout`` is a VGG-11 exemplar model
  of another seed that it never sees: the thesis' two FaceNet columns. ID anonymity is the protection success
  rate (:func:`privis.identity.protection_success_rate`): the share of anonymised images the model no longer
  matches to their source.
- **attribute = the class label**: a LeNet-5 trained on the original training slice is the attribute encoder
  ``E_I`` the anonymiser keeps (FaRL's role) and the reference classifier; ``attribute_acc`` is the accuracy on
  ORIGINAL test images of a LeNet-5 trained on the anonymised training slice with the original labels, beside
  ``attribute_acc_original`` (trained on the originals).
- **image quality**: ``fd_privis``, the Frechet distance between original and anonymised test images on the
  reference classifier's penultimate features (:func:`privis.metrics.fd_privis`). It is not FID and is
  comparable between rows of one run only.
- **detection rate**: n/a; no detector applies to Fashion-MNIST or digits.
- **codec**: a saved diffusion autoencoder (:class:`~privis.latent.diffae.DiffusionCodec`, ``codec=PATH``) or
  one trained on the owner's training slice (``codec_epochs``).

Every method protects the same training slice (the released dataset, on which a classifier is then trained)
and the same test slice, with the same seed. Experiments: ``anonymizer-table1``, ``anonymizer-table3``,
``anonymizer-frontier``; ``quick=True`` is a smoke run (digits, tiny codec, a few images and iterations).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from privis import data as pdata
from privis import methods, metrics, models
from privis.errors import InvalidInputError
from privis.experiments import register_experiment
from privis.experiments.evaluate import EvalConfig, load_train_test, train_classifier
from privis.experiments.fsap_tables import STRONG_RATES
from privis.identity import IdentityModel, protection_success_rate
from privis.identity.exemplar import train_exemplar_identity
from privis.latent import load_codec, train_codec
from privis.latent.diffae import DiffusionCodec
from privis.methods.base import Protector
from privis.methods.fsap import FSAP
from privis.methods.latent_anonymizer import LatentAnonymizer
from privis.report import image_grid_png, scatter_png
from privis.results import Figure, Result, file_label

#: The other methods of the Table 6.1 analogue, at their defaults (FSAP below, against the same identity model).
OTHER_METHODS = ("blur", "pixelate", "noise", "dp-image")
#: FSAP in pixel space at rates that de-identify (the leaderboard's), against the exemplar LeNet-5.
FSAP_PARAMS: dict[str, Any] = {"N": 15, "k": 2, "lambda_I": STRONG_RATES[0], "lambda_P": STRONG_RATES[1]}
#: Architectures of the optimised and the held-out exemplar identity model.
IDENTITY_ARCH, HELDOUT_ARCH = "lenet5", "vgg"
#: The tiny codec and anonymiser settings of ``quick=True`` (digits, 8x8).
QUICK_CODEC: dict[str, Any] = {"semantic_dim": 16, "base": 8, "timesteps": 100, "steps": 5}
QUICK_PARAMS: dict[str, Any] = {"iterations": 3, "decode_steps": 2}
#: Images the anonymiser optimises together in these experiments: back-propagating through 20 DDIM steps
#: (``decode_steps=None`` with a 20-step codec), a batch of 256 28x28 images peaks near 10 GB; 64 near 3 GB.
BATCH_SIZE = 64
#: Images per column of the grids.
GRID_ROWS = 8


@dataclass
class Setup:
    """Data, codec, the optimised and held-out identity models, the reference classifier and its accuracy."""

    train: pdata.Dataset
    test: pdata.Dataset
    cfg: EvalConfig
    codec: DiffusionCodec
    identity: IdentityModel
    heldout: IdentityModel
    reference: nn.Module
    reference_acc: float
    seed: int
    quick: bool
    config: dict[str, Any]


def _codec(path: str | None, train: pdata.Dataset, *, epochs: int, seed: int, quick: bool) -> DiffusionCodec:
    if path is None:
        codec = train_codec(train.images, kind="diffae", epochs=epochs, random_state=seed,
                            **(QUICK_CODEC if quick else {}))
    else:
        codec = load_codec(path)
    if not isinstance(codec, DiffusionCodec):
        raise InvalidInputError(f"codec {path!r} is a {type(codec).__name__}, not a diffusion autoencoder "
                                "(privis train-codec --kind diffae)")
    if tuple(codec.image_shape) != tuple(train.images.shape[1:]):
        raise InvalidInputError(f"codec {path!r} takes images of shape {tuple(codec.image_shape)}, the data are "
                                f"{tuple(train.images.shape[1:])}")
    return codec


def setup(*, data: str | None, seed: int, quick: bool, train_size: int, test_size: int, id_size: int,
          id_epochs: int, codec: str | None, codec_epochs: int, epochs: int | None) -> Setup:
    """Load the owner's training slice, a disjoint identity slice and the test slice; load or train the codec;
    train the exemplar identity models (on the identity slice, calibrated on the test images) and the reference
    classifier (on the training slice).

    Raises:
        InvalidInputError: the training split is too small for both slices, or a codec that is no diffusion
            autoencoder of the data's image shape.
    """
    data = data or ("digits" if quick or not pdata.fashion_mnist_available() else "fashion-mnist")
    if quick:
        train_size, test_size, id_size = min(train_size, 96), min(test_size, 32), min(id_size, 64)
        epochs, id_epochs, codec_epochs = 20, 2, 1
    cfg = EvalConfig(data=data, seed=seed, train_size=train_size + id_size, test_size=test_size, epochs=epochs)
    full, test = load_train_test(cfg)
    if len(full) < train_size + id_size:
        raise InvalidInputError(f"{data}: {len(full)} training images, fewer than train_size + id_size = "
                                f"{train_size + id_size}")
    train, ids = full.subset(slice(0, train_size)), full.subset(slice(train_size, train_size + id_size))
    t0 = time.perf_counter()
    the_codec = _codec(codec, train, epochs=codec_epochs, seed=seed, quick=quick)
    codec_seconds = time.perf_counter() - t0
    identity = train_exemplar_identity(ids.images, arch=IDENTITY_ARCH, epochs=id_epochs, random_state=seed,
                                       calibrate_on=test.images)
    heldout = train_exemplar_identity(ids.images, arch=HELDOUT_ARCH, epochs=id_epochs, random_state=seed + 1,
                                      calibrate_on=test.images)
    k = max(full.num_classes, int(full.labels.max()) + 1)
    reference = train_classifier(train.images, train.labels, k, cfg, desc="reference classifier").eval()
    reference_acc = models.evaluate(reference, test.images, test.labels)
    config = {"data": data, "train": train.name, "identity_slice": ids.name, "test": test.name, "seed": seed,
              "quick": quick, "train_size": len(train), "test_size": len(test), "id_size": len(ids),
              "id_epochs": id_epochs,
              "classifier": cfg.model, "classifier_epochs": cfg.epochs,
              "codec": file_label(codec) if codec else "trained on the train slice",
              "codec_seconds": codec_seconds, "codec_steps": the_codec.steps,
              "identity_model": identity.name, "identity_threshold": identity.threshold,
              "heldout_model": heldout.name, "heldout_threshold": heldout.threshold,
              "citation": LatentAnonymizer.citation}
    return Setup(train, test, cfg, the_codec, identity, heldout, reference, reference_acc, seed, quick, config)


@dataclass
class Release:
    """One method's anonymised training and test slices, the seconds its ``transform`` took, the grid images."""

    name: str
    train: Tensor
    test: Tensor
    seconds: float
    paired: Tensor | None = None


def _release(s: Setup, name: str, protector: Protector) -> Release:
    protector.fit(s.train.images, s.train.labels)
    t0 = time.perf_counter()
    train_out = protector.transform(s.train.images, s.train.labels)
    test_out = protector.transform(s.test.images, s.test.labels)
    seconds = time.perf_counter() - t0
    paired = protector.paired_fakes() if isinstance(protector, LatentAnonymizer) else None
    return Release(name, train_out, test_out, seconds, paired)


@torch.no_grad()
def reconstruct(codec: DiffusionCodec, images: Tensor, *, batch_size: int = 256) -> Tensor:
    """``decode_semantic(encode_semantic(x), encode_stochastic(x))``: the codec's reconstruction from
    ``(z_bar, x_T)`` of ``images`` ``(N, C, H, W)`` in ``[0, 1]``, at the codec's default steps."""
    out = []
    for x in images.split(batch_size):
        z = codec.encode_semantic(x)
        out.append(codec.decode_semantic(z, codec.encode_stochastic(x, z)))
    return torch.cat(out)


def anonymizer(s: Setup, *, scheme: str = "iis", **params: Any) -> LatentAnonymizer:
    """The latent anonymiser on the setup's codec, against its LeNet-5 exemplar identity model, keeping its
    reference classifier's features (``E_I``), :data:`BATCH_SIZE` images at a time; ``params`` override the
    method's defaults."""
    return LatentAnonymizer(codec=s.codec, identity_model=s.identity, attribute_model=s.reference, scheme=scheme,
                            random_state=s.seed,
                            **{"batch_size": BATCH_SIZE, **(QUICK_PARAMS if s.quick else {}), **params})


def row(s: Setup, r: Release) -> dict[str, Any]:
    """The Table 6.1 columns of one release: SPR (optimised, held-out; on the test slice and on the released
    training slice), ``fd_privis``, mean |SSIM|, and ``attribute_acc`` of a classifier trained on the release."""
    x = s.test.images
    win = metrics.ssim_window(*x.shape[-2:])
    if r.train is s.train.images:
        attribute_acc = s.reference_acc
    else:
        k = max(s.train.num_classes, int(s.train.labels.max()) + 1)
        model = train_classifier(r.train, s.train.labels, k, s.cfg, desc=f"{r.name}: attribute classifier")
        attribute_acc = models.evaluate(model, x, s.test.labels)
    return {
        "method": r.name,
        "spr": protection_success_rate(s.identity, x, r.test),
        "spr_heldout": protection_success_rate(s.heldout, x, r.test),
        "spr_train": protection_success_rate(s.identity, s.train.images, r.train),
        "fd_privis": metrics.fd_privis(s.reference, x, r.test),
        "ssim": float(cast(Tensor, metrics.ssim(r.test, x, win_size=win)).abs().mean()),
        "attribute_acc": attribute_acc,
        "detection": "n/a",
        "seconds": r.seconds,
    }


def _grid(s: Setup, releases: Sequence[Release]) -> Figure:
    columns = {"real": s.test.images[:GRID_ROWS]}
    for r in releases:
        if r.paired is not None:
            columns[f"paired fake ({r.name})"] = r.paired[-s.test.images.shape[0]:][:GRID_ROWS]
        columns[r.name] = r.test[:GRID_ROWS]
    return Figure("Fig. 6.4 analogue: " + " | ".join(columns), image_grid_png(columns, max_rows=GRID_ROWS),
                  "test images; a paired fake is the fake image of the pool nearest to the real one in the "
                  "attribute encoder's feature space, where the anonymised image's optimisation starts")


def _notes(s: Setup) -> list[str]:
    return [
        f"spr / spr_heldout: share of anonymised test images that the optimised exemplar identity model "
        f"({s.identity.name}, the one the anonymiser and FSAP optimise against) / the held-out one "
        f"({s.heldout.name}, another architecture and seed, never optimised against) no longer matches to "
        "their source (the thesis' ID Anon columns); spr_train: the optimised model on the released training "
        "slice. Both exemplar models were trained on a training slice disjoint from the protected images.",
        f"attribute_acc: accuracy on original test images of a {s.cfg.model} trained on the anonymised training "
        f"slice with the original labels; {s.reference_acc:.3f} when trained on the originals "
        "(attribute_acc_original).",
        "fd_privis: Frechet distance on the reference classifier's penultimate features, not FID; comparable "
        "between rows of this run only.",
        "detection: n/a (no detector applies to Fashion-MNIST or digits; the thesis' dlib / MTCNN columns).",
    ]


def _verdict(rows: Sequence[dict[str, Any]], reference_acc: float) -> tuple[float, str]:
    """Whether a latent-anonymiser row reaches SPR >= 0.9 with attribute accuracy within 10 points of the
    originals', and a sentence saying so."""
    hits = [r for r in rows if r["spr"] >= 0.9 and r["attribute_acc"] >= reference_acc - 0.10]
    best = max(rows, key=lambda r: (r["spr"] >= 0.9, r["attribute_acc"] if r["spr"] >= 0.9 else r["spr"]))
    text = (f"acceptance (SPR >= 0.9 with attribute accuracy within 10 points of {reference_acc:.3f}): "
            + ("met by " + ", ".join(str(r["method"]) for r in hits) if hits else
               f"not met; closest {best['method']}: SPR {best['spr']:.3f}, attribute accuracy "
               f"{best['attribute_acc']:.3f}"))
    return float(bool(hits)), text


_KEYS = ("spr", "spr_heldout", "spr_train", "fd_privis", "ssim", "attribute_acc")


def _summary(rows: Sequence[dict[str, Any]], s: Setup) -> dict[str, float]:
    summary = {f"{r['method']}.{k}": r[k] for r in rows for k in _KEYS}
    summary["attribute_acc_original"] = s.reference_acc
    return summary


# ----------------------------------------------------------------------------------------------- table 6.1


@register_experiment("anonymizer-table1", "Latent anonymiser Table 6.1 analogue: SPR under the optimised and a "
                     "held-out exemplar identity model, fd_privis, attribute accuracy of a classifier trained on "
                     "the release, vs codec reconstruction, blur, pixelate, noise, DP-Image and FSAP.")
def anonymizer_table1(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 1000,
                      test_size: int = 200, id_size: int = 500, id_epochs: int = 10, codec: str | None = None,
                      codec_epochs: int = 5,
                      epochs: int | None = None, params: dict[str, Any] | None = None) -> Result:
    """Args beyond ``data``/``seed``/``quick``: ``train_size`` (the protected training slice), ``test_size``,
    ``id_size`` and ``id_epochs`` (the exemplar identity models' disjoint slice and their training epochs),
    ``codec`` (a diffusion autoencoder file; None: trained on the training slice for ``codec_epochs``),
    ``epochs`` (every classifier's; None: auto), ``params`` (the anonymiser's parameters)."""
    t_start = time.perf_counter()
    s = setup(data=data, seed=seed, quick=quick, train_size=train_size, test_size=test_size, id_size=id_size,
              id_epochs=id_epochs, codec=codec, codec_epochs=codec_epochs, epochs=epochs)
    t0 = time.perf_counter()
    recon = reconstruct(s.codec, s.train.images), reconstruct(s.codec, s.test.images)
    releases = [Release("original", s.train.images, s.test.images, 0.0),
                Release("codec reconstruction", *recon, time.perf_counter() - t0)]
    for name in OTHER_METHODS:
        extra = {"codec_epochs": 1} if s.quick and name == "dp-image" else {}
        releases.append(_release(s, name, methods.create(name, random_state=seed, **extra)))
    fsap_params = {**FSAP_PARAMS, **({"N": 2} if s.quick else {})}
    releases.append(_release(s, "fsap", FSAP(identity_model=s.identity, random_state=seed, **fsap_params)))
    anon = anonymizer(s, **(params or {}))
    releases.append(_release(s, "latent-anonymizer (IIS)", anon))
    rows = [row(s, r) for r in releases]
    met, verdict = _verdict([r for r in rows if r["method"].startswith("latent-anonymizer")], s.reference_acc)
    summary = {**_summary(rows, s), "acceptance_met": met}
    return Result("anonymizer-table1", summary=summary, tables={"Table 6.1 analogue": rows},
                  config={**s.config, "other_methods": list(OTHER_METHODS), "fsap_params": fsap_params,
                          "anonymizer_params": _public(anon)},
                  notes=[verdict, *_notes(s),
                         "codec reconstruction: decode(z_bar, x_T) of the original's own codes, the sanity row "
                         "(it should NOT be anonymous).",
                         f"FSAP optimises in pixel space against the same exemplar LeNet-5 ({fsap_params}); the "
                         "other methods run at their defaults."],
                  figures=[_grid(s, [releases[1], *releases[-2:]])], seconds=time.perf_counter() - t_start)


def _public(protector: Protector) -> dict[str, Any]:
    return {k: v for k, v in protector.get_params().items()
            if not isinstance(v, nn.Module | Path) and k not in ("random_state", "codec")}


# ----------------------------------------------------------------------------------------------- table 6.3


@register_experiment("anonymizer-table3", "Latent anonymiser Table 6.3 analogue: IIS (Eq. 6.7) vs IRS (Eq. 6.9) on "
                     "the same data, codec, identity models and seed; the Table 6.1 columns.")
def anonymizer_table3(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 1000,
                      test_size: int = 200, id_size: int = 500, id_epochs: int = 10, codec: str | None = None,
                      codec_epochs: int = 5,
                      epochs: int | None = None, params: dict[str, Any] | None = None) -> Result:
    """Options as :func:`anonymizer_table1`."""
    t_start = time.perf_counter()
    s = setup(data=data, seed=seed, quick=quick, train_size=train_size, test_size=test_size, id_size=id_size,
              id_epochs=id_epochs, codec=codec, codec_epochs=codec_epochs, epochs=epochs)
    releases = [Release("original", s.train.images, s.test.images, 0.0)]
    used: dict[str, dict[str, Any]] = {}
    for scheme in ("irs", "iis"):
        anon = anonymizer(s, scheme=scheme, **(params or {}))
        releases.append(_release(s, f"latent-anonymizer ({scheme.upper()})", anon))
        used[scheme] = {**_public(anon), **anon.diagnostics()}
    rows = [row(s, r) for r in releases]
    met, verdict = _verdict(rows[1:], s.reference_acc)
    irs, iis = rows[1], rows[2]
    direction = (f"IIS SPR {iis['spr']:.3f} vs IRS {irs['spr']:.3f} (thesis: IIS higher); fd_privis IIS "
                 f"{iis['fd_privis']:.3g} vs IRS {irs['fd_privis']:.3g} (thesis: IRS lower, better quality)")
    summary = {**_summary(rows, s), "acceptance_met": met,
               "iis_spr_higher": float(iis["spr"] > irs["spr"]),
               "irs_fd_lower": float(irs["fd_privis"] < iis["fd_privis"])}
    return Result("anonymizer-table3", summary=summary, tables={"Table 6.3 analogue": rows},
                  config={**s.config, "anonymizer": used},
                  notes=[direction, verdict, *_notes(s)],
                  figures=[_grid(s, releases[1:])], seconds=time.perf_counter() - t_start)


# ------------------------------------------------------------------------------------------------ frontier


@register_experiment("anonymizer-frontier", "Latent anonymiser privacy-utility frontier: SPR (optimised, held-out) "
                     "and attribute accuracy over lambda_att (the attribute loss weight), IIS.")
def anonymizer_frontier(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 1000,
                        test_size: int = 200, id_size: int = 500, id_epochs: int = 10, codec: str | None = None,
                        codec_epochs: int = 5,
                        epochs: int | None = None, lambdas: Sequence[float] | None = None, scheme: str = "iis",
                        params: dict[str, Any] | None = None) -> Result:
    """``lambdas``: the ``lambda_att`` values (default: 0 and the method's default times 1/10, 1/3 and 1); other
    options as :func:`anonymizer_table1`."""
    t_start = time.perf_counter()
    s = setup(data=data, seed=seed, quick=quick, train_size=train_size, test_size=test_size, id_size=id_size,
              id_epochs=id_epochs, codec=codec, codec_epochs=codec_epochs, epochs=epochs)
    default = float(LatentAnonymizer().lambda_att)
    values = list(lambdas) if lambdas is not None else [0.0, default / 10, default / 3, default]
    rows = []
    for lam in values:
        anon = anonymizer(s, scheme=scheme, **{**(params or {}), "lambda_att": lam})
        r = row(s, _release(s, f"lambda_att={lam:g}", anon))
        rows.append({"lambda_att": lam, **r, **anon.diagnostics()})
    met, verdict = _verdict(rows, s.reference_acc)
    points = [{"label": f"{r['lambda_att']:g}", "spr": r["spr"], "attribute_acc": r["attribute_acc"]} for r in rows]
    figure = Figure("privacy-utility frontier: SPR vs attribute accuracy over lambda_att",
                    scatter_png(points, x="spr", y="attribute_acc", label="label",
                                hlines={"originals": s.reference_acc, "originals - 10 points": s.reference_acc - 0.1},
                                vlines={"SPR 0.9": 0.9}, xlabel="SPR (optimised exemplar identity model)",
                                ylabel="attribute accuracy (trained on the release)"),
                    "each point one lambda_att; the acceptance region is right of SPR 0.9 and above the lower line")
    summary = {f"lambda_att={r['lambda_att']:g}.{k}": r[k] for r in rows for k in _KEYS}
    summary.update({"attribute_acc_original": s.reference_acc, "acceptance_met": met})
    return Result("anonymizer-frontier", summary=summary, tables={"frontier": rows},
                  config={**s.config, "scheme": scheme, "lambdas": values, "params": params or {}},
                  notes=[verdict, *_notes(s)], figures=[figure], seconds=time.perf_counter() - t_start)
