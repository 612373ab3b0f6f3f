"""What a figure is called, in which unit, which way is better, and when the figures of a run may mislead.

One glossary serves every place a :class:`~privis.results.Result` is shown to a person: the terminal summary
(``privis.cli.summary``) and the HTML report (``privis.report.html``). Each summary key (its last dotted part:
``veil.filters.ssim_mean`` is a ``ssim_mean``) has a :class:`Term`: a readable label, a unit, a direction
(↑ higher is better, ↓ lower is better, none: context or both ways matter) and the report section it belongs
to. :func:`term` looks a key up, falls back on patterns (``*_seconds``, ``epsilon*``, ``ssim*``, ...), and
shows an unknown key as it is. :func:`fmt` writes a value for people and :func:`cautions` says why a run's
figures may mislead (a quick run, few images, a model that learned almost nothing).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from privis.results import Result

UTILITY, PRIVACY, SPEED, RUN, OTHER = "Utility", "Privacy and leakage", "Speed and memory", "Run", "Other figures"
#: Report sections in the order they are shown.
GROUPS = (UTILITY, PRIVACY, SPEED, RUN, OTHER)
ARROWS = {"higher": "↑", "lower": "↓", "": ""}

#: Fewer training or test images than this makes a run "small" (cautioned, with the accuracy's standard error).
SMALL_RUN = 1000
#: An accuracy at most this far (absolute) above chance, ``1 / classes``, is "near chance"; the margin widens to
#: two standard errors of a guessing model's accuracy when the test set is smaller than that makes certain.
NEAR_CHANCE = 0.05
#: The class count assumed when a run does not record ``num_classes`` (the bundled data sets have 10).
DEFAULT_CLASSES = 10


@dataclass(frozen=True)
class Term:
    """How a summary key or table column is shown.

    Attributes:
        label: readable name.
        unit: appended to values (``"dB"``, ``"images/s"``); ``"%"`` shows fractions in [0, 1] (accuracies,
            rates) as percent.
        better: the direction: ``"higher"``, ``"lower"`` or ``""`` (no direction: context, or both ways matter).
        group: the report section (:data:`GROUPS`).
    """

    label: str
    unit: str = ""
    better: str = ""
    group: str = OTHER

    @property
    def arrow(self) -> str:
        """``"↑"``, ``"↓"`` or ``""`` for :attr:`better`."""
        return ARROWS[self.better]


def _acc(label: str, better: str = "higher", group: str = UTILITY) -> Term:
    return Term(label, "%", better, group)


#: The known keys (exact names; the last part of a dotted key is looked up), in the order a summary lists them.
#: Keys absent here fall back on :func:`term`'s patterns, then show as they are.
GLOSSARY: dict[str, Term] = {
    "utility": _acc("Utility: service-model accuracy in the method's deployment"),
    "baseline_acc_original": _acc("Accuracy, trained on originals, tested on originals (baseline)"),
    "baseline_acc_protected": _acc("Accuracy, trained on originals, tested on protected", ""),
    "protected_acc_original": _acc("Accuracy, trained on protected, tested on originals"),
    "protected_acc_protected": _acc("Accuracy, trained on protected, tested on protected"),
    "target_acc_original": _acc("Target model's accuracy on originals"),
    "target_acc_protected": _acc("Target model's accuracy on protected", "lower", PRIVACY),
    "acc_on_original": _acc("Accuracy on original images"),
    "fd_privis": Term("Fréchet distance on privis' features (closer to the originals' distribution)", "", "lower",
                      UTILITY),
    "ssim_mean": Term("Mean |SSIM| to the originals (1 = identical)", "", "lower", PRIVACY),
    "ssim_abs_mean": Term("Mean |SSIM| to the originals (1 = identical)", "", "lower", PRIVACY),
    "ssim_protected": Term("Mean |SSIM| of the protected images, unattacked", "", "lower", PRIVACY),
    "psnr_mean": Term("Mean PSNR to the originals", "dB", "lower", PRIVACY),
    "psnr_protected": Term("Mean PSNR of the protected images, unattacked", "dB", "lower", PRIVACY),
    "reconstruction_ssim_mean": Term("Codec reconstruction: mean |SSIM| to the originals", "", "higher", UTILITY),
    "reconstruction_psnr_mean": Term("Codec reconstruction: mean PSNR to the originals", "dB", "higher", UTILITY),
    "semantic_ssim_mean": Term("Diffusion codec, semantic code alone: mean |SSIM| to the originals", "", "higher",
                               UTILITY),
    "semantic_psnr_mean": Term("Diffusion codec, semantic code alone: mean PSNR to the originals", "dB", "higher",
                               UTILITY),
    "map50": _acc("Detector mAP at IoU 0.5 on held-out scenes"),
    "aux_acc": _acc("Classifier trained on originals, on the attack's output", "lower", PRIVACY),
    "aux_acc_original": _acc("Auxiliary classifier on originals", "", PRIVACY),
    "aux_acc_protected": _acc("Auxiliary classifier on protected", "lower", PRIVACY),
    "leakage_aux_acc": _acc("Leakage: best auxiliary accuracy over attacks", "lower", PRIVACY),
    "adaptive_acc": _acc("Recogniser trained on protected data, on protected", "", PRIVACY),
    "leakage_ssim": Term("Leakage: worst mean |SSIM| of a recovery", "", "lower", PRIVACY),
    "model_inversion_ssim": Term("Model inversion |SSIM| to class means", "", "lower", PRIVACY),
    "ssim_aux_class_means": Term("|SSIM| of the attacker's own class means", "", "", PRIVACY),
    "auc": Term("Membership inference AUC (0.5 = guessing)", "", "lower", PRIVACY),
    "mia_auc": Term("Membership inference AUC (0.5 = guessing)", "", "lower", PRIVACY),
    "tpr_at_1fpr": _acc("Membership inference true positives at 1 % false positives", "lower", PRIVACY),
    "mia_tpr_at_1fpr": _acc("Membership inference true positives at 1 % false positives", "lower", PRIVACY),
    "iss_mean": Term("Identity similarity score to the originals (ISS)", "", "lower", PRIVACY),
    "fppsr": _acc("Face privacy protection success rate (FPPSR)", "higher", PRIVACY),
    "spr": _acc("Identity protection success rate (SPR) under the optimised identity model", "higher", PRIVACY),
    "spr_heldout": _acc("SPR under a held-out identity model (transfer)", "higher", PRIVACY),
    "spr_dlib": _acc("SPR under dlib's face recogniser (distance 0.6)", "higher", PRIVACY),
    "spr_port": _acc("SPR under privis' torch port of dlib's recogniser (0.6)", "higher", PRIVACY),
    "sdr_hog": _acc("Face detection rate after protection, dlib HOG (SDR)", "", PRIVACY),
    "sdr_mmod": _acc("Face detection rate after protection, dlib MMOD (SDR)", "", PRIVACY),
    "face_match_protected": _acc("Faces dlib still matches to the original, protected", "lower", PRIVACY),
    "face_match_recovered": _acc("Faces dlib still matches to the original, after the filter attack", "lower",
                                 PRIVACY),
    "mse_mean": Term("Mean squared error to the originals", "", "", PRIVACY),
    "hide_ratio": _acc("Private objects hidden from the detector (r_p)", "higher", PRIVACY),
    "keep_ratio": _acc("Other objects still detected (r_a)", "higher", UTILITY),
    "hiding_score": Term("Hiding score R = r_p + 0.5 r_a", "", "higher", PRIVACY),
    "l2_mean": Term("Mean L2 norm of the change", "", "lower", UTILITY),
    "ald_inf": Term("ALD∞: largest change relative to the largest pixel", "", "lower", UTILITY),
    "ald_inf_mean": Term("ALD∞: largest change relative to the largest pixel", "", "lower", UTILITY),
    "max_abs_diff": Term("Largest descriptor difference, torch port vs dlib", "", "lower"),
    "decisions_agree": _acc("Same-person decisions identical, torch port vs dlib"),
    "min_threshold_margin": Term("Closest pair distance to the 0.6 threshold"),
    "faces": Term("Faces", "images", "", RUN),
    "vfe_original_mean": Term("Visual feature entropy of the originals", "", "", PRIVACY),
    "vfe_protected_mean": Term("Visual feature entropy of the protected images", "", "", PRIVACY),
    "keyspace_bits_mean": Term("Keyspace of the secret per image", "bits", "higher", PRIVACY),
    "keyspace_bits": Term("Keyspace of the secret", "bits", "higher", PRIVACY),
    "bits_mean": Term("Keyspace of the secret", "bits", "higher", PRIVACY),
    "epsilon": Term("ε (differential privacy)", "", "lower", PRIVACY),
    "epsilon_claimed": Term("ε (claimed, needs a contractive codec)", "", "lower", PRIVACY),
    "epsilon_claimed_tight": Term("ε (claimed, needs a contractive codec; tight accounting)", "", "lower", PRIVACY),
    "epsilon_post_processing": Term("ε (post-processing, holds for any codec)", "", "lower", PRIVACY),
    "epsilon_post_processing_tight": Term("ε (post-processing, holds for any codec; tight accounting)", "", "lower",
                                          PRIVACY),
    "epsilon_lower_bound": Term("ε lower bound measured by an audit", "", "lower", PRIVACY),
    "delta": Term("δ (differential privacy)", "", "lower", PRIVACY),
    "images_per_second": Term("Protection speed", "images/s", "higher", SPEED),
    "peak_rss_mb": Term("Peak memory (resident)", "MiB", "lower", SPEED),
    "seconds": Term("Wall time", "s", "lower", SPEED),
    "fit_seconds": Term("Fitting time", "s", "lower", SPEED),
    "protect_seconds": Term("Protection time", "s", "lower", SPEED),
    "attack_seconds": Term("Attack time", "s", "lower", SPEED),
    "stop_reached_fraction": Term("Images whose optimisation reached the stop loss", "%"),
    "gia_steps_mean": Term("Optimisation steps per image (mean)"),
    "gia_final_loss_mean": Term("Final optimisation loss (mean)"),
    "train_size": Term("Training images", "images", "", RUN),
    "test_size": Term("Test images", "images", "", RUN),
    "fit_size": Term("Images the method was fitted on", "images", "", RUN),
    "aux_size": Term("Attacker's auxiliary images", "images", "", RUN),
    "attack_size": Term("Attacked images", "images", "", RUN),
    "methods": Term("Methods", group=RUN),
    "method": Term("Method", group=RUN),
    "attack": Term("Attack", group=RUN),
    "attacks": Term("Attacks", group=RUN),
    "deployment": Term("Deployment: test data the service sees", group=RUN),
}

#: Accuracies that must be high for a run to mean anything: models trained and tested on originals, and the
#: service model in the method's deployment (``utility``; a run without one: the better of
#: ``protected_acc_original`` and ``protected_acc_protected``). A model trained on originals that fails on
#: protected images is the protection working, and an attack that fails is the method working: not checked.
MUST_BE_HIGH = ("baseline_acc_original", "target_acc_original", "aux_acc_original", "utility")


def term(key: str) -> Term:
    """The :class:`Term` of ``key`` (its last dotted part): :data:`GLOSSARY`, else a pattern, else the name.

    Examples:
        >>> term("veil.filters.psnr_mean").unit, term("veil.filters.psnr_mean").arrow
        ('dB', '↓')
        >>> term("fetch_seconds").label, term("something_new").label
        ('Fetch time', 'something_new')
    """
    name = key.rsplit(".", 1)[-1]
    if name in GLOSSARY:
        return GLOSSARY[name]
    if name.endswith("_attack"):
        return Term(f"{term(name[:-len('_attack')]).label}: by which attack", group=PRIVACY)
    if name.startswith("epsilon"):
        return Term(f"ε (differential privacy){name[len('epsilon'):].replace('_', ' ')}", "", "lower", PRIVACY)
    if name.endswith("_seconds"):
        return Term(f"{name[:-len('_seconds')].replace('_', ' ').capitalize()} time", "s", "lower", SPEED)
    if name.startswith("ssim"):
        return Term(name.replace("_", " ").replace("ssim", "|SSIM|", 1), "", "lower", PRIVACY)
    if name.startswith("psnr"):
        return Term(name.replace("_", " ").replace("psnr", "PSNR", 1), "dB", "lower", PRIVACY)
    if name.startswith("aux_acc") or name.startswith("leakage"):
        return _acc(name.replace("_", " ").capitalize(), "lower", PRIVACY)
    if "acc" in name.split("_"):
        return _acc(name.replace("_", " ").capitalize())
    if name.endswith("_bits") or name.endswith("bits_mean"):
        return Term(name.replace("_", " ").capitalize(), "bits", "higher", PRIVACY)
    return Term(name)


def label(key: str) -> str:
    """The words for ``key``: its dotted prefix kept, then its :class:`Term`'s label and arrow; an unknown key as
    it is.

    Examples:
        >>> label("veil.filters.ssim_mean"), label("no-such-key")
        ('veil · filters · Mean |SSIM| to the originals (1 = identical) ↓', 'no-such-key')
    """
    *prefix, name = key.split(".")
    t = term(key)
    if t.label == name:
        return key
    return " · ".join([*prefix, f"{t.label} {t.arrow}".strip()])


def fmt(value: object, unit: str = "") -> str:
    """``value`` as people read it: thousands separated, 4 decimals below 10 (scientific below 0.0001), 2 up to
    1000, none above; ``%`` shows a fraction in [0, 1] as percent; the unit after the number; ``—`` when
    missing. Text and flags are shown as they are.

    Examples:
        >>> fmt(152421.52, "images/s"), fmt(0.12345), fmt(9.5632, "dB"), fmt(None), fmt(7, "images")
        ('152,422 images/s', '0.1235', '9.5632 dB', '—', '7 images')
        >>> fmt(0.8532, "%"), fmt(3e-6, "s"), fmt(float("nan"))
        ('85.3 %', '3.00e-06 s', 'nan')
    """
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if unit == "%" and 0 <= value <= 1:
        return f"{100 * value:.1f} %"
    if isinstance(value, int):
        text = f"{value:,}"
    elif abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.2f}"
    elif value == 0 or abs(value) >= 1e-4:
        text = f"{value:.4f}"
    else:
        text = f"{value:.2e}"
    return f"{text} {unit}" if unit and unit != "%" else text


def run_config(result: Result) -> Mapping[str, Any]:
    """``result``'s settings, those ``evaluate`` nests under ``config["protocol"]`` included."""
    config = result.config
    protocol = config.get("protocol")
    return {**protocol, **config} if isinstance(protocol, Mapping) else config


def cautions(result: Result) -> list[str]:
    """Why the figures of ``result`` may mislead, one sentence each: a quick run, a small run, accuracies near
    chance.

    A run is small with fewer than :data:`SMALL_RUN` training or test images (the sizes the summary records,
    else those of the config or its ``protocol``); the standard error of an accuracy on ``n`` test images is up
    to ``0.5 / sqrt(n)``. Chance is ``1 / num_classes`` (:data:`DEFAULT_CLASSES` when the run does not say);
    only the accuracies of :data:`MUST_BE_HIGH` (prefixed keys too, as the leaderboard's ``veil.utility``) are
    checked.

    Examples:
        >>> r = Result("x", summary={"baseline_acc_original": 0.12}, config={"train_size": 200,
        ...            "test_size": 100, "num_classes": 10, "quick": True})
        >>> for line in cautions(r): print(line[:60])
        Quick run: reduced sizes and budgets, a smoke test of the pi
        Small run: 200 training / 100 test images; an accuracy on 10
        Accuracy near chance (10.0 % for 10 classes): baseline_acc_o
    """
    config, summary = run_config(result), result.summary
    notes = []
    if config.get("quick"):
        notes.append("Quick run: reduced sizes and budgets, a smoke test of the pipeline; these figures are not "
                     "results.")
    train, test = (summary.get(k, config.get(k)) for k in ("train_size", "test_size"))
    sizes = [n for n in (train, test) if isinstance(n, int)]
    if sizes and min(sizes) < SMALL_RUN:
        error = f"; an accuracy on {fmt(test)} test images is uncertain by up to ±{50 / math.sqrt(test):.1f} " \
                "points (one standard error)" if isinstance(test, int) and test > 0 else ""
        notes.append(f"Small run: {fmt(train)} training / {fmt(test)} test images{error}.")
    classes = config.get("num_classes")
    count = classes if isinstance(classes, int) and classes > 1 else DEFAULT_CLASSES
    chance = 1 / count
    margin = NEAR_CHANCE
    if isinstance(test, int) and test > 0:
        margin = max(NEAR_CHANCE, 2 * math.sqrt(chance * (1 - chance) / test))
    low = [(key, value) for key, value in _must_be_high(summary) if value <= chance + margin]
    if low:
        shown = ", ".join(f"{k} {fmt(v, '%')}" for k, v in low[:4])
        more = f" and {len(low) - 4} more" if len(low) > 4 else ""
        assumed = "" if count == classes else ", assumed: the run does not record its classes"
        notes.append(f"Accuracy near chance ({fmt(chance, '%')} for {count} classes{assumed}): {shown}{more}; a "
                     "model this close to guessing learned almost nothing, so the figures say little about the "
                     "method (check the run's size).")
    return notes


def _must_be_high(summary: Mapping[str, Any]) -> Iterable[tuple[str, float]]:
    """The accuracies of :data:`MUST_BE_HIGH` in ``summary`` (prefixed keys too), and without a ``utility`` the
    better of the service model's two accuracies."""
    for key, value in summary.items():
        if key.rpartition(".")[2] in MUST_BE_HIGH and isinstance(value, int | float) and not isinstance(value, bool):
            yield key, float(value)
    served = [summary[k] for k in ("protected_acc_original", "protected_acc_protected")
              if isinstance(summary.get(k), int | float)]
    if "utility" not in summary and served:
        yield "protected_acc (the better of on originals and on protected)", float(max(served))


__all__ = ["DEFAULT_CLASSES", "GLOSSARY", "GROUPS", "MUST_BE_HIGH", "NEAR_CHANCE", "OTHER", "PRIVACY", "RUN",
           "SMALL_RUN", "SPEED", "UTILITY", "Term", "cautions", "fmt", "label", "run_config", "term"]
