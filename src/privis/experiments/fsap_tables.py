"""FSAP experiments: Table 5.1 (ablation), Table 5.2 (privacy vs other methods), Table 5.3 (utility), Fig. 5.4
(SPR and SDR vs lambda) and the real-face comparison under dlib.

H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis,
University of Technology Sydney, 2023, Chapter 5 (Algorithm 7, Section 5.5). The thesis runs pSp + StyleGAN2 on
FFHQ/CelebA faces with ArcFace as the optimised identity model, and measures SPR with dlib's face recogniser
(distance 0.6) and FaceNet, SDR with dlib's detector. Here:

- On Fashion-MNIST (default) or digits the class is the identity: FSAP optimises against a LeNet-5's
  penultimate layer (:class:`~privis.identity.ClassifierIdentity`, cosine, threshold calibrated at the equal
  error rate on original test images); ``spr_heldout`` is the SPR under a VGG-11 trained the same way (another
  architecture, never seen by FSAP), the thesis' transfer to a second recogniser. FSAP runs in pixel space
  (its default) unless ``codec`` is given.
- On real faces (scikit-image's LFW-subset crops upscaled for dlib, and the astronaut) FSAP optimises against
  privis' torch port of dlib's face ResNet (white-box); SPR is measured with dlib's own recogniser at 0.6
  (black-box) and with the port, SDR with dlib's HOG detector, landmark distances with dlib's 68-point model.

Experiments: ``fsap-table1``, ``fsap-table2``, ``fsap-table3``, ``fsap-lambda``, ``fsap-faces``.
``quick=True`` is a smoke run (digits, tiny sizes, few iterations).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from privis import data as pdata
from privis import methods, metrics, references
from privis.experiments import register_experiment
from privis.experiments.evaluate import EvalConfig, load_train_test, train_classifier
from privis.identity import AttributeModel, ClassifierIdentity, IdentityModel, protection_success_rate
from privis.latent import LatentCodec
from privis.methods.base import Protector
from privis.methods.fsap import FSAP
from privis.report import image_grid_png, line_plot_png
from privis.results import Figure, Result, file_label

#: The thesis' FSAP settings (Section 5.5.1.2) and a second setting whose attribute steps cannot undo an
#: identity step in pixel units (k * 3 * lambda_P < lambda_I).
THESIS_RATES = (0.02, 0.008)
STRONG_RATES = (0.05, 0.002)
#: The other methods of the Table 5.2 analogue, at their defaults.
OTHER_METHODS = ("blur", "pixelate", "noise", "dp-image", "visualmixer")
#: The other methods of the real-face comparison: every classification method but FSAP.
FACE_OTHER_METHODS = (*OTHER_METHODS, "veil", "perturbation", "instahide")
#: Parameters of other methods on real faces, where a default would train too long for a few faces: DP-Image's
#: stand-in codec trains on the faces being protected.
FACE_PARAMS: dict[str, dict[str, Any]] = {"dp-image": {"codec_epochs": 2}}
#: Architecture of the held-out identity model (FSAP optimises against a LeNet-5).
HELDOUT_ARCH = "vgg"


@dataclass
class Setup:
    """Data, the identity model FSAP optimises, the held-out one, and the configuration to record."""

    train: pdata.Dataset
    test: pdata.Dataset
    identity: ClassifierIdentity
    heldout: ClassifierIdentity
    seed: int
    quick: bool
    codec: LatentCodec | str | None
    config: dict[str, Any]


def _identity(arch: str, train: pdata.Dataset, test: pdata.Dataset, cfg: EvalConfig) -> ClassifierIdentity:
    k = max(train.num_classes, int(train.labels.max()) + 1)
    identity = ClassifierIdentity(train_classifier(train.images, train.labels, k, cfg, arch=arch,
                                                   desc=f"identity model ({arch})").eval())
    identity.calibrate(test.images, test.labels)
    return identity


def setup(*, data: str | None, seed: int, quick: bool, train_size: int, test_size: int,
          codec: LatentCodec | str | None = None) -> Setup:
    """Load the data and train the optimised (LeNet-5) and the held-out (VGG-11) identity models."""
    data = data or ("digits" if quick or not pdata.fashion_mnist_available() else "fashion-mnist")
    cfg = EvalConfig(data=data, seed=seed, train_size=train_size, test_size=test_size, epochs=2 if quick else 5)
    train, test = load_train_test(cfg)
    if quick:
        train, test = train.subset(slice(0, min(len(train), 300))), test.subset(slice(0, min(len(test), 24)))
    identity = _identity("lenet5", train, test, cfg)
    heldout = _identity(HELDOUT_ARCH, train, test, cfg)
    config = {"data": data, "train": train.name, "test": test.name, "seed": seed, "quick": quick,
              "identity_model": identity.name, "identity_threshold": identity.threshold,
              "heldout_model": heldout.name, "heldout_threshold": heldout.threshold, "epochs": cfg.epochs,
              "codec": file_label(codec) if isinstance(codec, str) else None if codec is None else type(codec).__name__,
              "citation": references.FSAP}
    return Setup(train, test, identity, heldout, seed, quick, codec, config)


def fsap(s: Setup, *, variant: str = "both", rates: tuple[float, float] = THESIS_RATES, N: int = 100,
         **params: Any) -> FSAP:
    """FSAP against the setup's identity model (pixel space unless the setup has a codec), fitted."""
    if s.quick:
        N = min(N, 10)
    return FSAP(codec=s.codec, identity_model=s.identity, variant=variant, lambda_I=rates[0], lambda_P=rates[1],
                N=N, random_state=s.seed, **params).fit(s.train.images, s.train.labels)


def release_row(s: Setup, originals: Tensor, protected: Tensor) -> dict[str, float]:
    """SPR under the optimised and the held-out identity model, MSE, PSNR, SSIM and privis' feature distance."""
    win = metrics.ssim_window(*originals.shape[-2:])
    attrs = AttributeModel(channels=originals.shape[1])
    with torch.no_grad():
        feature = float(attrs.feature_distance(originals, protected).mean())
    return {
        "spr": protection_success_rate(s.identity, originals, protected),
        "spr_heldout": protection_success_rate(s.heldout, originals, protected),
        "mse": float(cast(Tensor, metrics.mse(protected, originals)).mean()),
        "psnr": float(cast(Tensor, metrics.psnr(protected, originals)).clamp(max=100).mean()),
        "ssim": float(cast(Tensor, metrics.ssim(protected, originals, win_size=win)).mean()),
        "feature_distance": feature,
    }


def _timed(protector: Protector, images: Tensor) -> tuple[Tensor, float]:
    t0 = time.perf_counter()
    out = protector.transform(images)
    return out, time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------- table 5.1


@register_experiment("fsap-table1", "FSAP Table 5.1 analogue: identity loss only vs both losses (SPR, SPR held-out, "
                     "MSE) at the thesis' rates and at rates whose attribute steps cannot undo an identity step.")
def fsap_table1(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 3000,
                test_size: int = 200, rates: Sequence[tuple[float, float]] = (THESIS_RATES, STRONG_RATES),
                codec: LatentCodec | str | None = None) -> Result:
    t_start = time.perf_counter()
    s = setup(data=data, seed=seed, quick=quick, train_size=train_size, test_size=test_size, codec=codec)
    x = s.test.images
    rows: list[dict[str, Any]] = []
    grids = {"original": x[:8]}
    for lam_i, lam_p in rates:
        for variant in ("id-only", "both"):
            protector = fsap(s, variant=variant, rates=(lam_i, lam_p))
            out, seconds = _timed(protector, x)
            rows.append({"variant": variant, "lambda_I": lam_i, "lambda_P": lam_p, **release_row(s, x, out),
                         "iterations_mean": protector.diagnostics()["fsap_iterations_mean"], "seconds": seconds})
            grids[f"{variant} ({lam_i}, {lam_p})"] = out[:8]
    summary: dict[str, float] = {}
    verdicts = []
    for lam_i, lam_p in rates:
        pair = {r["variant"]: r for r in rows if (r["lambda_I"], r["lambda_P"]) == (lam_i, lam_p)}
        tag = f"{lam_i},{lam_p}"
        for variant, r in pair.items():
            summary.update({f"{variant}@{tag}.{k}": r[k] for k in ("spr", "spr_heldout", "mse")})
        both, only = pair["both"], pair["id-only"]
        equal = abs(both["spr"] - only["spr"]) <= 0.05
        lower = both["mse"] < only["mse"]
        summary[f"both_mse_lower_at_equal_spr@{tag}"] = float(equal and lower)
        verdicts.append(
            f"lambda_I={lam_i}, lambda_P={lam_p}: SPR both {both['spr']:.3f} vs ID-only {only['spr']:.3f}, MSE both "
            f"{both['mse']:.4g} vs ID-only {only['mse']:.4g}: "
            + ("Table 5.1's direction holds (equal SPR, lower MSE with both losses)" if equal and lower else
               "Table 5.1's direction does NOT hold here" + ("" if equal else " (the SPRs differ)")))
    return Result(
        "fsap-table1", summary=summary, tables={"Table 5.1 analogue": rows},
        config={**s.config, "rates": [list(r) for r in rates], "N": 10 if quick else 100, "k": 6, "tau": 0.8},
        notes=[*verdicts,
               "The attribute steps pull every coordinate back by up to k * 3 * lambda_P per iteration; in pixel "
               "units at the thesis' rates (6 * 3 * 0.008 = 0.144 > lambda_I = 0.02) they can undo each identity "
               "step, which the second rate pair avoids.",
               f"SPR: share judged another identity by the optimised model ({s.identity.name}); spr_heldout: by a "
               f"{HELDOUT_ARCH} trained the same way, never seen by FSAP."],
        figures=[Figure("Fig. 5.3 analogue: " + " | ".join(grids), image_grid_png(grids))],
        seconds=time.perf_counter() - t_start)


# ----------------------------------------------------------------------------------- tables 5.2 and 5.3


def method_releases(s: Setup, images: Tensor) -> list[tuple[str, Tensor, float]]:
    """``(name, release, seconds)`` of FSAP (thesis rates, and the stronger rates) and every other method at its
    defaults, each fitted on the training slice."""
    out: list[tuple[str, Tensor, float]] = []
    for label, rates in (("fsap", THESIS_RATES), (f"fsap (lambda_I={STRONG_RATES[0]}, lambda_P={STRONG_RATES[1]})",
                                                  STRONG_RATES)):
        protector = fsap(s, rates=rates)
        released, seconds = _timed(protector, images)
        out.append((label, released, seconds))
    fit_images = s.train.images[: 300 if s.quick else 1000]
    fit_labels = s.train.labels[: fit_images.shape[0]]
    for name in OTHER_METHODS:
        params = {"codec_epochs": 1} if s.quick and name == "dp-image" else {}
        other = methods.create(name, random_state=s.seed, **params).fit(fit_images, fit_labels)
        released, seconds = _timed(other, images)
        out.append((name, released, seconds))
    return out


@register_experiment("fsap-table2", "FSAP Table 5.2 analogue: SPR (optimised and held-out identity model), MSE and "
                     "SSIM of FSAP vs blur, pixelate, noise, DP-Image and VisualMixer at their defaults.")
def fsap_table2(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 3000,
                test_size: int = 200, codec: LatentCodec | str | None = None) -> Result:
    t_start = time.perf_counter()
    s = setup(data=data, seed=seed, quick=quick, train_size=train_size, test_size=test_size, codec=codec)
    x = s.test.images
    rows: list[dict[str, Any]] = []
    grids = {"original": x[:8]}
    for name, out, seconds in method_releases(s, x):
        r = release_row(s, x, out)
        rows.append({"method": name, "spr": r["spr"], "spr_heldout": r["spr_heldout"], "mse": r["mse"],
                     "ssim": r["ssim"], "seconds": seconds})
        grids[name] = out[:8]
    summary = {f"{r['method']}.{k}": r[k] for r in rows for k in ("spr", "spr_heldout", "mse", "ssim")}
    return Result("fsap-table2", summary=summary, tables={"Table 5.2 analogue (privacy)": rows},
                  config={**s.config, "other_methods": list(OTHER_METHODS), "rates": [THESIS_RATES, STRONG_RATES]},
                  notes=["Every other method runs at its defaults; none optimises against the identity model.",
                         f"spr_heldout: a {HELDOUT_ARCH} identity model FSAP never saw (the thesis' FaceNet column)."],
                  figures=[Figure(" | ".join(grids), image_grid_png(grids))],
                  seconds=time.perf_counter() - t_start)


@register_experiment("fsap-table3", "FSAP Table 5.3 analogue on Fashion-MNIST/digits: utility of the releases (MSE, "
                     "PSNR, SSIM, privis' feature distance) of FSAP and every other method at defaults.")
def fsap_table3(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 3000,
                test_size: int = 200, codec: LatentCodec | str | None = None) -> Result:
    t_start = time.perf_counter()
    s = setup(data=data, seed=seed, quick=quick, train_size=train_size, test_size=test_size, codec=codec)
    x = s.test.images
    rows: list[dict[str, Any]] = [{"method": "original", **release_row(s, x, x)}]
    rows += [{"method": name, **release_row(s, x, out)} for name, out, _ in method_releases(s, x)]
    keys = ("mse", "psnr", "ssim", "feature_distance")
    return Result("fsap-table3", summary={f"{r['method']}.{k}": r[k] for r in rows for k in keys},
                  tables={"Table 5.3 analogue (utility)": [{k: r[k] for k in ("method", *keys)} for r in rows]},
                  config=s.config,
                  notes=["Without faces, detection and landmarks do not apply; fsap-faces measures SDR and landmark "
                         "distances on real faces. The original row is the reference (MSE 0, SSIM 1)."],
                  seconds=time.perf_counter() - t_start)


# ---------------------------------------------------------------------------------------------- real faces


@dataclass
class Faces:
    """Real faces grouped by shape (LFW crops upscaled, the astronaut), dlib's models and its HOG and MMOD
    detectors."""

    groups: list[Tensor]
    port: IdentityModel
    dlib: IdentityModel
    detector: Any
    mmod: Any


def faces(count: int) -> Faces:
    """``count`` real faces (:func:`privis.identity.alignment.sample_faces`: the astronaut, then LFW crops),
    stacked per shape; the dlib recognisers (torch port and dlib itself) and dlib's HOG and MMOD detectors."""
    from privis.detectors import REGISTRY as DETECTORS
    from privis.identity.alignment import sample_faces
    from privis.identity.dlib_identity import DlibIdentity, DlibResNetIdentity

    found = sample_faces(count)
    by_shape: dict[tuple[int, ...], list[Tensor]] = {}
    for face in found:
        by_shape.setdefault(tuple(face.shape[1:]), []).append(face)
    return Faces([torch.cat(v) for v in by_shape.values()], DlibResNetIdentity().eval(), DlibIdentity(),
                 DETECTORS.create("dlib-hog"), DETECTORS.create("dlib-mmod"))


def face_total(groups: Sequence[Tensor]) -> float:
    """The number of faces in ``groups``."""
    return float(sum(x.shape[0] for x in groups))


def face_row(f: Faces, originals: Sequence[Tensor], protected: Sequence[Tensor], *,
             landmarks: bool = True) -> dict[str, float]:
    """SPR under dlib (0.6, black-box) and the torch port, SDR (HOG, MMOD), MSE and, optionally, landmark distances,
    over every group of faces (weighted by faces)."""
    from privis.identity.face_metrics import detected, landmark_distances

    n = sum(x.shape[0] for x in originals)
    row: dict[str, float] = {"spr_dlib": 0.0, "spr_port": 0.0, "sdr_hog": 0.0, "sdr_mmod": 0.0, "mse": 0.0}
    marks: dict[str, float] = {}
    for x, y in zip(originals, protected, strict=True):
        w = x.shape[0] / n
        for key, model in (("spr_dlib", f.dlib), ("spr_port", f.port)):
            model.locate(x)  # type: ignore[operator]  # the thesis' attacker: the original face's position
            row[key] += w * protection_success_rate(model, x, y)
        row["sdr_hog"] += w * float(detected(f.detector, y).float().mean())
        row["sdr_mmod"] += w * float(detected(f.mmod, y).float().mean())
        row["mse"] += w * float(cast(Tensor, metrics.mse(y, x)).mean())
        if landmarks:
            d = landmark_distances(x, y)
            for region in ("chin", "nose", "eyes", "mouth"):
                marks[region] = marks.get(region, 0.0) + d[region] * d["faces"]
            marks["faces"] = marks.get("faces", 0.0) + d["faces"]
    if landmarks:
        row.update({region: marks[region] / max(marks["faces"], 1.0) for region in ("chin", "nose", "eyes", "mouth")})
    return row


def face_fsap(f: Faces, x: Tensor, *, seed: int, **params: Any) -> Tensor:
    """FSAP in pixel space against the torch port of dlib's recogniser (white-box) on one group of faces."""
    return FSAP(identity_model=f.port, random_state=seed, **params).fit(x).transform(x)


def protect_faces(name: str, groups: Sequence[Tensor], *, seed: int,
                  params: dict[str, Any] | None = None) -> tuple[list[int], list[Tensor], str]:
    """Protect each group of faces with a fresh ``name`` protector fitted on that group, each face its own
    identity class (labels ``0 .. n-1``: the owner's task is telling the people apart, which Veil's local model
    and the perturbation generator's classifier train on; methods without labels ignore them).

    Returns:
        the indices of the groups the method protected, their protected images, and a note naming the groups it
        refused and why (``""`` when none was refused; e.g. a generator that needs two images per fit).

    Raises:
        PrivisError: the method refused every group (the message of the last refusal).
    """
    from privis.errors import PrivisError

    kept: list[int] = []
    out: list[Tensor] = []
    refused: list[str] = []
    last: PrivisError | None = None
    for i, x in enumerate(groups):
        try:
            labels = torch.arange(x.shape[0])
            out.append(methods.create(name, random_state=seed, **(params or {})).fit(x, labels).transform(x))
            kept.append(i)
        except PrivisError as exc:
            last = exc
            refused.append(f"{x.shape[0]} face(s) of {tuple(x.shape[1:])}: {exc}")
    if last is not None and not kept:
        raise last
    return kept, out, "; ".join(f"not protected: {r}" for r in refused)


@register_experiment("fsap-faces", "FSAP on real faces (LFW crops upscaled for dlib, astronaut): SPR under dlib at 0.6 "
                     "and the torch port, SDR (dlib HOG), landmark distances, MSE, for FSAP and every other method.")
def fsap_faces(*, data: str | None = None, seed: int = 0, quick: bool = False, faces_count: int = 20,
               N: int = 100, only: Sequence[str] | None = None) -> Result:
    """``only``: restrict to these methods (``fsap`` stands for both FSAP rows); default FSAP and
    :data:`FACE_OTHER_METHODS`."""
    t_start = time.perf_counter()
    if quick:
        faces_count, N = 2, 2
    f = faces(faces_count)
    xs = f.groups
    rows: list[dict[str, Any]] = [{"method": "original", **face_row(f, xs, xs), "faces": face_total(xs),
                                   "seconds": 0.0}]
    releases: dict[str, list[Tensor]] = {}
    chosen = list(only) if only else ["fsap", *FACE_OTHER_METHODS]
    if "fsap" in chosen:
        for label, rates in (("fsap", THESIS_RATES),
                             (f"fsap (lambda_I={STRONG_RATES[0]}, lambda_P={STRONG_RATES[1]})", STRONG_RATES)):
            t0 = time.perf_counter()
            releases[label] = [face_fsap(f, x, seed=seed, N=N, lambda_I=rates[0], lambda_P=rates[1]) for x in xs]
            rows.append({"method": label, **face_row(f, xs, releases[label]), "faces": face_total(xs),
                         "seconds": time.perf_counter() - t0})
    for name in (m for m in chosen if m != "fsap"):
        t0 = time.perf_counter()
        params = {"codec_epochs": 1} if quick and name == "dp-image" else FACE_PARAMS.get(name, {})
        kept, out, note = protect_faces(name, xs, seed=seed, params=params)
        originals = [xs[i] for i in kept]
        if kept[-1] == len(xs) - 1:  # the grid shows the last group
            releases[name] = out
        rows.append({"method": name, **face_row(f, originals, out), "faces": face_total(originals),
                     "seconds": time.perf_counter() - t0, **({"note": note} if note else {})})
    summary = {f"{r['method']}.{k}": r[k] for r in rows for k in ("spr_dlib", "spr_port", "sdr_hog", "sdr_mmod",
                                                                              "mse")}
    summary["faces"] = face_total(xs)
    first = xs[-1][:6]  # the LFW group (or the astronaut alone)
    grid = {"original": first, **{name: out[-1][:6] for name, out in releases.items()}}
    return Result(
        "fsap-faces", summary=summary, tables={"real faces (Tables 5.2-5.3 analogue)": rows},
        config={"faces": summary["faces"], "N": N, "seed": seed, "quick": quick,
                "identity_optimised": "dlib-resnet (torch port, white-box)", "spr_threshold": 0.6,
                "detectors": ["dlib-hog", "dlib-mmod"], "other_params": FACE_PARAMS, "citation": references.FSAP},
        notes=["FSAP runs in pixel space against privis' torch port of dlib's face ResNet (white-box); spr_dlib is "
               "measured by dlib itself (black-box), both at distance 0.6, at the landmarks found on the original.",
               "sdr_hog, sdr_mmod: share of protected images where dlib's HOG / MMOD detector finds a face "
               "(Eq. 5.12); landmark distances: mean pixel distance of dlib's 68 landmarks per region, fitted in "
               "the original's face box.",
               "The original row is the reference (SPR 0, SDR 1 by construction of the face sample)."],
        figures=[Figure(" | ".join(grid), image_grid_png(grid, max_rows=6))],
        seconds=time.perf_counter() - t_start)


@register_experiment("fsap-lambda", "FSAP Fig. 5.4 analogue on real faces: SPR (dlib, 0.6) and SDR (dlib HOG) vs "
                     "lambda_I = lambda_P, N = 30, tau = 0.8.")
def fsap_lambda(*, data: str | None = None, seed: int = 0, quick: bool = False, faces_count: int = 8,
                lambdas: Sequence[float] = (0.01, 0.02, 0.04, 0.06, 0.08, 0.1), N: int = 30) -> Result:
    t_start = time.perf_counter()
    if quick:
        faces_count, lambdas, N = 2, (0.02, 0.1), 2
    f = faces(faces_count)
    xs = f.groups
    rows = []
    for lam in lambdas:
        out = [face_fsap(f, x, seed=seed, N=N, lambda_I=lam, lambda_P=lam) for x in xs]
        rows.append({"lambda": lam, **face_row(f, xs, out, landmarks=False)})
    series = {"SPR (dlib, 0.6)": [r["spr_dlib"] for r in rows], "SDR (HOG)": [r["sdr_hog"] for r in rows]}
    return Result(
        "fsap-lambda", summary={f"{k}@{r['lambda']}": r[k] for r in rows for k in ("spr_dlib", "sdr_hog")},
        tables={"Fig. 5.4 analogue": rows},
        config={"faces": sum(x.shape[0] for x in xs), "N": N, "lambdas": list(lambdas), "seed": seed,
                "citation": references.FSAP},
        notes=["lambda_I = lambda_P = lambda as in Fig. 5.4; pixel-space FSAP against the torch port of dlib's "
               "recogniser, SPR measured by dlib itself."],
        figures=[Figure("SPR and SDR vs lambda", line_plot_png(series, x=list(lambdas), xlabel="lambda",
                                                               ylabel="rate"))],
        seconds=time.perf_counter() - t_start)
