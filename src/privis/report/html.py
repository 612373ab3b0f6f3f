"""``Result`` → one self-contained HTML page designed to be read by people.

Layout, top to bottom: the headline (what was measured, on what data, the verdict against any targets), a
warning banner for quick or small runs and for accuracies near chance, the notes, the summary grouped into
sections (utility, privacy, speed and memory, run), the first (main) table, the figures, the other
tables, the per-method flat keys
folded away, and the configuration, raw JSON and versions folded at the bottom. Names, units and the
direction of each figure (↑ higher is better, ↓ lower is better) come from one glossary, :data:`GLOSSARY`;
unknown keys are shown as they are. Tables scroll inside their box and wide, short tables are transposed,
so the page itself never scrolls sideways.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape
from PIL import Image

from privis.fsutil import atomic_write_text
from privis.results import Result

_TEMPLATE = (Path(__file__).with_name("report.html.j2")).read_text(encoding="utf-8")

UTILITY, PRIVACY, SPEED, RUN, OTHER = "Utility", "Privacy and leakage", "Speed and memory", "Run", "Other figures"
#: Summary sections in the order the report shows them.
GROUPS = (UTILITY, PRIVACY, SPEED, RUN, OTHER)
ARROWS = {"higher": "↑", "lower": "↓", "": ""}

#: A wide table with at most this many rows and more columns than :data:`TRANSPOSE_COLUMNS` is transposed.
TRANSPOSE_ROWS = 12
TRANSPOSE_COLUMNS = 8
#: An accuracy this close (absolute) to chance, ``1 / num_classes``, raises the warning banner.
NEAR_CHANCE = 0.05
#: Runs with fewer training or test images than these raise the small-run warning.
SMALL_TRAIN, SMALL_TEST = 1000, 300


@dataclass(frozen=True)
class Term:
    """How a summary key or table column is shown.

    Attributes:
        label: readable name.
        group: the summary section (:data:`GROUPS`).
        better: ``"higher"``, ``"lower"`` or ``""`` (no direction: context, or both ways matter).
        unit: appended to values (``"dB"``, ``"images/s"``); ``"%"`` shows fractions in [0, 1] as percent.
    """

    label: str
    group: str = OTHER
    better: str = ""
    unit: str = ""

    @property
    def arrow(self) -> str:
        return ARROWS[self.better]


def _acc(label: str, better: str = "higher", group: str = UTILITY) -> Term:
    return Term(label, group, better, "%")


#: The known keys (exact names; the last part of a dotted key is looked up). Keys absent here fall back on
#: :func:`term`'s patterns, then show as they are.
GLOSSARY: dict[str, Term] = {
    "utility": _acc("Utility: service-model accuracy where deployed"),
    "baseline_acc_original": _acc("Baseline model on original images"),
    "baseline_acc_protected": _acc("Baseline model on protected images", ""),
    "protected_acc_original": _acc("Service model on original images"),
    "protected_acc_protected": _acc("Service model on protected images"),
    "target_acc_original": _acc("Target model on original images"),
    "target_acc_protected": _acc("Target model on protected images", "lower", PRIVACY),
    "acc_on_original": _acc("Accuracy on original images"),
    "aux_acc": _acc("Auxiliary classifier on recovered images", "lower", PRIVACY),
    "aux_acc_original": _acc("Auxiliary classifier on original images", "", PRIVACY),
    "aux_acc_protected": _acc("Auxiliary classifier on protected images", "lower", PRIVACY),
    "leakage_aux_acc": _acc("Leakage: best auxiliary accuracy over attacks", "lower", PRIVACY),
    "adaptive_acc": _acc("Adaptive recogniser on protected images", "", PRIVACY),
    "ssim_mean": Term("Mean |SSIM| to the originals", PRIVACY, "lower"),
    "ssim_abs_mean": Term("Mean |SSIM| to the originals", PRIVACY, "lower"),
    "ssim_protected": Term("|SSIM| of protected images, unattacked", PRIVACY, "lower"),
    "leakage_ssim": Term("Leakage: worst mean |SSIM| of a recovery", PRIVACY, "lower"),
    "model_inversion_ssim": Term("Model inversion |SSIM| to class means", PRIVACY, "lower"),
    "psnr_mean": Term("Mean PSNR to the originals", PRIVACY, "lower", "dB"),
    "psnr_protected": Term("PSNR of protected images, unattacked", PRIVACY, "lower", "dB"),
    "vfe_original_mean": Term("Visual feature entropy, originals", PRIVACY),
    "vfe_protected_mean": Term("Visual feature entropy, protected", PRIVACY),
    "auc": Term("Membership inference AUC", PRIVACY, "lower"),
    "mia_auc": Term("Membership inference AUC", PRIVACY, "lower"),
    "tpr_at_1fpr": _acc("Membership inference TPR at 1 % FPR", "lower", PRIVACY),
    "mia_tpr_at_1fpr": _acc("Membership inference TPR at 1 % FPR", "lower", PRIVACY),
    "keyspace_bits": Term("Keyspace of the secret", PRIVACY, "higher", "bits"),
    "bits_mean": Term("Keyspace of the secret", PRIVACY, "higher", "bits"),
    "iss_mean": Term("Identity similarity to the originals (ISS)", PRIVACY, "lower"),
    "fppsr": _acc("Face privacy protection success rate (FPPSR)", "higher", PRIVACY),
    "fd_privis": Term("Fréchet distance to real images (privis features)", UTILITY, "lower"),
    "delta": Term("δ (differential privacy)", PRIVACY, "lower"),
    "stop_reached_fraction": Term("Images whose optimisation reached the stop loss", OTHER, "", "%"),
    "gia_steps_mean": Term("Optimisation steps per image (mean)", OTHER),
    "gia_final_loss_mean": Term("Final optimisation loss (mean)", OTHER),
    "images_per_second": Term("Throughput", SPEED, "higher", "images/s"),
    "peak_rss_mb": Term("Peak memory (resident)", SPEED, "lower", "MB"),
    "seconds": Term("Wall time", SPEED, "lower", "s"),
    "train_size": Term("Training images", RUN, "", "images"),
    "test_size": Term("Test images", RUN, "", "images"),
    "fit_size": Term("Images the method was fitted on", RUN, "", "images"),
    "aux_size": Term("Attacker's auxiliary images", RUN, "", "images"),
    "attack_size": Term("Attacked images", RUN, "", "images"),
    "methods": Term("Methods", RUN),
    "method": Term("Method", RUN),
    "attack": Term("Attack", RUN),
    "deployment": Term("Deployment: test data the service sees", RUN),
    "attacks": Term("Attacks", RUN),
}


def term(key: str) -> Term:
    """The :class:`Term` of ``key`` (its last dotted part): :data:`GLOSSARY`, else a pattern, else the key."""
    name = key.rsplit(".", 1)[-1]
    if name in GLOSSARY:
        return GLOSSARY[name]
    if name.endswith("_attack"):
        return Term(f"{term(name[:-len('_attack')]).label}: by which attack", PRIVACY)
    if name.startswith("epsilon"):
        return Term(f"ε (differential privacy){name[len('epsilon'):].replace('_', ' ')}", PRIVACY, "lower")
    if name.endswith("_seconds"):
        return Term(f"{name[:-len('_seconds')].replace('_', ' ').capitalize()} time", SPEED, "lower", "s")
    if name.startswith("ssim"):
        return Term(name.replace("_", " ").replace("ssim", "|SSIM|", 1), PRIVACY, "lower")
    if name.startswith("psnr"):
        return Term(name.replace("_", " ").replace("psnr", "PSNR", 1), PRIVACY, "lower", "dB")
    if name.startswith("aux_acc") or name.startswith("leakage"):
        return _acc(name.replace("_", " ").capitalize(), "lower", PRIVACY)
    if "acc" in name.split("_"):
        return _acc(name.replace("_", " ").capitalize())
    if name.endswith("_bits") or name.endswith("bits_mean"):
        return Term(name.replace("_", " ").capitalize(), PRIVACY, "higher", "bits")
    return Term(key)


def fmt(value: object, unit: str = "") -> str:
    """A value as people read it: thousands separators, 4 decimals below 10 (scientific below 0.0001), ``%``
    for fractions in [0, 1] when ``unit`` is ``"%"``, the unit appended; ``—`` for missing values."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if value != value:  # NaN
        return "nan"
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


def _label(key: str) -> str:
    """``"veil.filters.ssim_mean"`` → ``"veil · filters · Mean |SSIM| to the originals ↓"``."""
    *prefix, _ = key.split(".")
    t = term(key)
    return " · ".join([*prefix, f"{t.label} {t.arrow}".strip()])


def _summary_sections(summary: dict[str, Any]) -> tuple[list[tuple[str, list[dict[str, str]]]], list[dict[str, str]]]:
    """Plain keys grouped into sections in :data:`GROUPS` order, and the dotted (per-part) keys apart."""
    sections: dict[str, list[dict[str, str]]] = {g: [] for g in GROUPS}
    flat: list[dict[str, str]] = []
    for key, value in summary.items():
        t = term(key)
        row = {"key": key, "label": _label(key), "value": fmt(value, t.unit)}
        (flat if "." in key else sections[t.group]).append(row)
    return [(g, rows) for g, rows in sections.items() if rows], flat


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """The columns of ``rows`` in first-seen order, less those empty (None or "") in every row."""
    cols: list[str] = []
    for row in rows:
        cols.extend(k for k in row if k not in cols)
    return [c for c in cols if any(row.get(c) not in (None, "") for row in rows)]


def _header(key: str) -> str:
    t = term(key)
    if t.label == key:
        return key
    unit = f" ({t.unit})" if t.unit and t.unit != "%" else ""
    return f"{t.label}{unit} {t.arrow}".strip()


def _table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A table ready for the template: readable headers, formatted cells; transposed when wide and short
    (one column per row, named by the row's first text value; rows ordered by section)."""
    cols = _columns(rows)
    if len(cols) > TRANSPOSE_COLUMNS and len(rows) <= TRANSPOSE_ROWS:
        first = cols[0]
        heads = [str(r.get(first, i)) for i, r in enumerate(rows)]
        body: list[dict[str, Any]] = []
        for group in GROUPS:
            members = [c for c in cols[1:] if term(c).group == group]
            if members:
                body.append({"section": group})
            body += [{"head": _header(c), "cells": [_cell(r.get(c), c) for r in rows]} for c in members]
        return {"transposed": True, "corner": _header(first), "heads": heads, "body": body}
    return {"transposed": False, "heads": [_header(c) for c in cols],
            "body": [{"cells": [_cell(r.get(c), c) for c in cols]} for r in rows]}


def _cell(value: Any, key: str) -> dict[str, Any]:
    """A table cell: the header names the unit, so only ``%`` is applied here."""
    text = isinstance(value, str)
    return {"text": fmt(value, "%" if term(key).unit == "%" else ""), "s": text, "long": text and len(value) > 40}


def _protocol(config: dict[str, Any]) -> dict[str, Any]:
    """``config["protocol"]`` (where ``evaluate`` records its settings), else an empty mapping."""
    protocol = config.get("protocol")
    return protocol if isinstance(protocol, dict) else {}


def _sizes(config: dict[str, Any], summary: dict[str, Any]) -> tuple[Any, Any]:
    protocol = _protocol(config)
    train = config.get("train_size", protocol.get("train_size", summary.get("train_size")))
    test = config.get("test_size", protocol.get("test_size", summary.get("test_size")))
    return train, test


def cautions(result: Result) -> list[str]:
    """Why the figures of ``result`` may mislead: a quick run, a small run, accuracies near chance.

    Chance is ``1 / config["num_classes"]`` (10 classes when the config does not say). Only accuracies that
    should be high (↑ in :data:`GLOSSARY`) are checked: a protected image an outside model cannot recognise
    is the point, not a warning.
    """
    notes = []
    config, summary = result.config, result.summary
    if config.get("quick"):
        notes.append("Quick run: reduced data, model training and attack budgets. These figures are a smoke "
                     "test of the pipeline, not results.")
    train, test = _sizes(config, summary)
    if (isinstance(train, int) and train < SMALL_TRAIN) or (isinstance(test, int) and test < SMALL_TEST):
        notes.append(f"Small run ({fmt(train)} training and {fmt(test)} test images): accuracies carry a few "
                     "points of noise and models are undertrained.")
    chance = 1 / max(int(config.get("num_classes", 10)), 2)
    low = [k for k, v in summary.items()
           if term(k).unit == "%" and term(k).better == "higher" and term(k).group == UTILITY
           and isinstance(v, float) and v <= chance + NEAR_CHANCE]
    if low:
        more = f" and {len(low) - 6} more" if len(low) > 6 else ""
        notes.append(f"Near chance ({100 * chance:.0f} %): {', '.join(low[:6])}{more}. A model this close to "
                     "guessing says little about the method.")
    return notes


def verdicts(result: Result) -> list[dict[str, Any]]:
    """Each target of ``result`` against its summary value: met when on the better side (↑: at least, ↓: at
    most; a target without a direction is met when reached or passed upwards); missing values are not met."""
    out = []
    for key, target in result.targets.items():
        t, value = term(key), result.summary.get(key)
        met = value is not None and (value <= target if t.better == "lower" else value >= target)
        relation = "≤" if t.better == "lower" else "≥"
        out.append({"label": _label(key), "value": fmt(value, t.unit), "target": f"{relation} {fmt(target, t.unit)}",
                    "met": met})
    return out


def headline(result: Result) -> str:
    """``result.headline``, else the run's name and data from its config."""
    if result.headline:
        return result.headline
    config = result.config
    data = config.get("data") or _protocol(config).get("data") or config.get("train")
    return result.name + (f" on {data}" if data else "")


def render_html(result: Result) -> str:
    """The report for ``result`` as one HTML string (all images inline; layout in the module notes)."""
    env = Environment(autoescape=select_autoescape(default=True))
    template = env.from_string(_TEMPLATE)
    data = result.to_dict()
    sections, flat = _summary_sections(result.summary)
    return template.render(
        r=result,
        headline=headline(result),
        cautions=cautions(result),
        verdicts=verdicts(result),
        sections=sections,
        flat=flat,
        tables=[(name, _table(rows)) for name, rows in result.tables.items() if rows],
        empty=[name for name, rows in result.tables.items() if not rows],
        figures=[{"title": f.title, "caption": f.caption, "width": Image.open(io.BytesIO(f.png)).width,
                  "src": "data:image/png;base64," + base64.b64encode(f.png).decode("ascii")} for f in result.figures],
        config=json.dumps(data["config"], indent=2),
        raw=json.dumps({k: v for k, v in data.items() if k != "config"}, indent=2),
        versions=", ".join(f"{k} {v}" for k, v in result.versions.items()),
    )


def save_report(result: Result, path: str | Path) -> Path:
    """Write ``render_html(result)`` to ``path`` atomically."""
    return atomic_write_text(path, render_html(result))
