"""The short summary a command prints after producing figures: readable names with units, caveats, verdicts.

A :class:`~privis.results.Result` can hold hundreds of figures (the leaderboard: one per method, attack and
score). The terminal gets at most :data:`MAX_ROWS` of them, named in words with their unit
(:data:`GLOSSARY`); all of them go to ``--json`` / ``--report``, and the summary says so. Below the figures:

- a ``warning:`` line when they come from a quick run (``config["quick"]``), from few images (fewer than
  :data:`SMALL_RUN` training or test images: the standard error of an accuracy on ``n`` test images is up to
  ``0.5 / sqrt(n)``), or when a model's accuracy is near chance (``1 / classes``; the models did not learn,
  and the figures say nothing about the method);
- for an attack, a ``verdict:`` line comparing what it recovered with what the attacker had without it: the
  protected image itself (|SSIM| to the original), guessing (membership AUC 0.5), or the attacker's own class
  means (model inversion). The attack "recovers structure" when it beats that baseline by more than
  :data:`BEAT_MARGIN`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from privis.results import Result

#: Most figure rows printed (the leaderboard prints one row per method instead).
MAX_ROWS = 16
#: Fewer training or test images than this makes a run "small" (warned).
SMALL_RUN = 1000
#: Margin by which an attack must beat its baseline (|SSIM| or AUC) to count as a success.
BEAT_MARGIN = 0.05

#: Summary key (its last dotted part) -> (readable name, unit). A unit "" is a plain number.
GLOSSARY: dict[str, tuple[str, str]] = {
    "utility": ("utility: service model in the method's deployment", "accuracy"),
    "baseline_acc_original": ("model trained on originals, tested on originals", "accuracy"),
    "baseline_acc_protected": ("model trained on originals, tested on protected", "accuracy"),
    "protected_acc_original": ("model trained on protected, tested on originals", "accuracy"),
    "protected_acc_protected": ("model trained on protected, tested on protected", "accuracy"),
    "target_acc_original": ("target model on originals", "accuracy"),
    "target_acc_protected": ("target model on protected", "accuracy"),
    "aux_acc_original": ("auxiliary model on originals", "accuracy"),
    "aux_acc_protected": ("auxiliary model on protected", "accuracy"),
    "ssim_mean": ("mean |SSIM| to the originals (1 = identical)", ""),
    "ssim_protected": ("mean |SSIM| of the protected images to the originals", ""),
    "psnr_mean": ("mean PSNR to the originals", "dB"),
    "psnr_protected": ("mean PSNR of the protected images", "dB"),
    "aux_acc": ("classifier trained on originals, on the attack's output", "accuracy"),
    "adaptive_acc": ("recogniser trained on protected data, on protected", "accuracy"),
    "auc": ("membership inference AUC (0.5 = guessing)", ""),
    "tpr_at_1fpr": ("membership inference true positives at 1% false", "rate"),
    "ssim_aux_class_means": ("|SSIM| of the attacker's own class means", ""),
    "vfe_original_mean": ("visual feature entropy of originals", ""),
    "vfe_protected_mean": ("visual feature entropy of protected", ""),
    "keyspace_bits_mean": ("keyspace per image", "bits"),
    "stop_reached_fraction": ("images reaching the stop loss", "fraction"),
    "images_per_second": ("protection speed", "images/s"),
    "peak_rss_mb": ("peak memory", "MiB"),
    "fit_seconds": ("fitting time", "s"),
    "protect_seconds": ("protection time", "s"),
    "attack_seconds": ("attack time", "s"),
    "train_size": ("training images", "images"),
    "test_size": ("test images", "images"),
    "fit_size": ("images fitted on", "images"),
}

#: Keys whose value is a model accuracy that must clear chance for the run to mean anything: the model trained
#: and tested on originals, and the service model in the method's deployment (``utility``; an evaluation
#: without one: the better of ``protected_acc_original`` and ``protected_acc_protected``).
#: (A model trained on originals and tested on protected images *should* be near chance for some methods: that
#: is protection working, so it is not checked.)
_MODEL_ACCURACIES = ("baseline_acc_original", "utility")


def fmt(value: Any, unit: str = "") -> str:
    """``value`` for a person: thousands separated, 4 significant decimals, the unit after it.

    Examples:
        >>> fmt(152421.52, "images/s"), fmt(0.12345), fmt(9.5632, "dB"), fmt(None), fmt(7, "images")
        ('152,422 images/s', '0.1235', '9.5632 dB', '—', '7 images')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, int) or abs(value) >= 1000:
        text = f"{value:,.0f}"
    else:
        text = f"{value:.4f}" if abs(value) < 10 else f"{value:.4g}"
    return f"{text} {unit}" if unit and unit not in ("accuracy", "fraction", "rate") else text


def readable(key: str) -> str:
    """The words for summary ``key``: :data:`GLOSSARY`'s name (its unit in brackets where it is a kind, such
    as accuracy), the dotted prefix kept (``veil.utility`` -> ``veil: utility: ...``); an unknown key as is."""
    prefix, _, last = key.rpartition(".")
    if last not in GLOSSARY:
        return key
    name, unit = GLOSSARY[last]
    name = f"{name} ({unit})" if unit in ("accuracy", "fraction", "rate") and unit not in name else name
    return f"{prefix}: {name}" if prefix else name


def _config(result: Result) -> Mapping[str, Any]:
    """The run's sizes and settings: evaluations nest them under ``protocol``."""
    config = result.config
    return {**config, **config["protocol"]} if isinstance(config.get("protocol"), Mapping) else config


def caveats(result: Result) -> list[str]:
    """Warnings that belong next to ``result``'s figures: quick run, few images, accuracies near chance.

    Examples:
        >>> r = Result("x", summary={"baseline_acc_original": 0.12}, config={"train_size": 200,
        ...            "test_size": 100, "num_classes": 10, "quick": True})
        >>> for line in caveats(r): print(line[:60])
        quick run: reduced sizes and budgets, a smoke test; these fi
        small run: 200 training / 100 test images; an accuracy on 10
        accuracy near chance (0.10 for 10 classes): baseline_acc_ori
    """
    config = _config(result)
    lines = []
    if config.get("quick"):
        lines.append("quick run: reduced sizes and budgets, a smoke test; these figures are not results")
    train, test = config.get("train_size"), config.get("test_size")
    sizes = [n for n in (train, test) if isinstance(n, int)]
    if sizes and min(sizes) < SMALL_RUN:
        error = f"; an accuracy on {test} test images is uncertain by up to ±{0.5 / math.sqrt(test):.3f} (one " \
                "standard error)" if isinstance(test, int) and test > 0 else ""
        lines.append(f"small run: {train} training / {test} test images{error}")
    classes = config.get("num_classes")
    if isinstance(classes, int) and classes > 1:
        chance = 1.0 / classes
        margin = max(BEAT_MARGIN, 2 * math.sqrt(chance * (1 - chance) / test)) if isinstance(test, int) and \
            test > 0 else BEAT_MARGIN
        low = [(key, value) for key, value in _accuracies(result) if value <= chance + margin]
        if low:
            shown = ", ".join(f"{k} {fmt(v)}" for k, v in low[:4])
            more = f" and {len(low) - 4} more" if len(low) > 4 else ""
            lines.append(f"accuracy near chance ({chance:.2f} for {classes} classes): {shown}{more}; such a model "
                         "learned almost nothing (check the run's size before judging the method)")
    return lines


def _accuracies(result: Result) -> Iterable[tuple[str, float]]:
    """The accuracies of :data:`_MODEL_ACCURACIES` in ``result``'s summary (prefixed keys too, as the
    leaderboard's ``veil.utility``)."""
    s = result.summary
    for key, value in s.items():
        if key.rpartition(".")[2] in _MODEL_ACCURACIES and isinstance(value, int | float):
            yield key, float(value)
    served = [s[k] for k in ("protected_acc_original", "protected_acc_protected") if isinstance(s.get(k), int | float)]
    if "utility" not in s and served:
        yield "protected_acc (the better of on originals and on protected)", float(max(served))


def verdict(result: Result) -> str | None:
    """One line saying whether an attack (``result`` of ``privis attack``) beat what the attacker had
    without it, or None when ``result`` holds no attack scores.

    Examples:
        >>> verdict(Result("a", summary={"ssim_mean": 0.41, "ssim_protected": 0.05}))
        'recovered mean |SSIM| 0.4100 vs 0.0500 for the protected images themselves: the attack recovers structure'
        >>> verdict(Result("a", summary={"auc": 0.52}))
        'membership AUC 0.5200 vs 0.5 for guessing: the attack did not beat the baseline'
    """
    s = result.summary

    def judge(what: str, got: float, base: float, against: str) -> str:
        ok = got > base + BEAT_MARGIN
        return f"{what} {fmt(got)} vs {fmt(base) if base != 0.5 else '0.5'} for {against}: " + (
            "the attack recovers structure" if ok and "|SSIM|" in what else
            "the attack tells members from non-members" if ok else "the attack did not beat the baseline")

    if isinstance(s.get("ssim_mean"), float) and isinstance(s.get("ssim_protected"), float):
        line = judge("recovered mean |SSIM|", s["ssim_mean"], s["ssim_protected"], "the protected images themselves")
        if isinstance(s.get("ssim_aux_class_means"), float):
            line = judge("representatives' mean |SSIM|", s["ssim_mean"], s["ssim_aux_class_means"],
                         "the attacker's own class means")
        return line
    if isinstance(s.get("auc"), float):
        return judge("membership AUC", s["auc"], 0.5, "guessing")
    return None


def _leaderboard_lines(board: list[dict[str, Any]]) -> list[str]:
    """One row per method: utility, baseline, worst |SSIM| and auxiliary accuracy over attacks, MIA AUC, speed."""
    head = f"{'method':<13} {'utility':>7} {'baseline':>8} {'worst |SSIM| (attack)':<31} {'worst aux acc':>13} " \
           f"{'MIA AUC':>7} {'images/s':>9}"
    rows = [head]
    for e in board:
        leak = f"{fmt(e.get('leakage_ssim'))} ({e.get('leakage_ssim_attack') or '—'})"
        rows.append(f"{e['method']:<13} {fmt(e.get('utility')):>7} {fmt(e.get('baseline_acc_original')):>8} "
                    f"{leak:<31} {fmt(e.get('leakage_aux_acc')):>13} {fmt(e.get('mia_auc')):>7} "
                    f"{fmt(e.get('images_per_second')):>9}")
    rows.append("utility, baseline, aux acc: accuracies; worst |SSIM|: the best recovery over the attacks (0 = "
                "nothing, 1 = the original); MIA AUC 0.5 = guessing")
    return rows


def summary_lines(result: Result) -> list[str]:
    """The figure rows of the terminal summary (at most :data:`MAX_ROWS` + 2 lines, the leaderboard one per
    method): readable names and units, then a line counting what was left out."""
    board = result.tables.get("leaderboard") if result.name == "leaderboard" else None
    if board:
        return _leaderboard_lines(board)
    # the figures the glossary names first, in its order of importance, then the rest as they came
    rank = {key: i for i, key in enumerate(GLOSSARY)}
    items = sorted(result.summary.items(), key=lambda kv: rank.get(kv[0].rpartition(".")[2], len(rank)))
    width = min(max((len(readable(k)) for k, _ in items[:MAX_ROWS]), default=0), 64)
    lines = [f"  {readable(k):<{width}}  {fmt(v, GLOSSARY.get(k.rpartition('.')[2], ('', ''))[1])}"
             for k, v in items[:MAX_ROWS]]
    if len(items) > MAX_ROWS:
        lines.append(f"  ... and {len(items) - MAX_ROWS} more figures")
    return lines


def print_result(result: Result, written: list[str], echo: Callable[[str], None]) -> None:
    """Print ``result``'s short summary through ``echo``: title, figure rows, warnings, the attack verdict,
    and where the full figures are (the files in ``written``, or the options that write them)."""
    seconds = f", {result.seconds:.1f} s" if result.seconds else ""
    echo(f"{result.name}{seconds}")
    for line in summary_lines(result):
        echo(line)
    for line in caveats(result):
        echo(f"warning: {line}")
    judged = verdict(result)
    if judged:
        echo(f"verdict: {judged}")
    for path in written:
        echo(f"wrote {path}")
    echo(f"all {len(result.summary)} figures{' and tables' if result.tables else ''}: "
         + (f"in {' and '.join(written)}" if written else "add --json FILE or --report FILE"))


__all__ = ["BEAT_MARGIN", "GLOSSARY", "MAX_ROWS", "SMALL_RUN", "caveats", "fmt", "print_result", "readable",
           "summary_lines", "verdict"]
