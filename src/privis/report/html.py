"""``Result`` → one self-contained HTML page designed to be read by people.

Layout, top to bottom: the headline (what was measured, on what data, the verdict against any targets), a
warning banner for quick or small runs and for accuracies near chance, the notes, the summary grouped into
sections (utility, privacy, speed and memory, run), the first (main) table, the figures, the other tables, the
per-method flat keys folded away, and the configuration, raw JSON and versions folded at the bottom. Names, units
and the direction of each figure (↑ higher is better, ↓ lower is better), and the cautions, come from
:mod:`privis.report.glossary`, which the terminal summary shares; unknown keys are shown as they are. Tables
scroll inside their box and wide, short tables are transposed, so the page itself never scrolls sideways.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape
from PIL import Image

from privis.fsutil import atomic_write_text
from privis.report.glossary import GROUPS, cautions, fmt, label, run_config, term
from privis.results import Result

_TEMPLATE = (Path(__file__).with_name("report.html.j2")).read_text(encoding="utf-8")

#: A wide table with at most this many rows and more columns than :data:`TRANSPOSE_COLUMNS` is transposed.
TRANSPOSE_ROWS = 12
TRANSPOSE_COLUMNS = 8


def _summary_sections(summary: dict[str, Any]) -> tuple[list[tuple[str, list[dict[str, str]]]], list[dict[str, str]]]:
    """Plain keys grouped into sections in :data:`GROUPS` order, and the dotted (per-part) keys apart."""
    sections: dict[str, list[dict[str, str]]] = {g: [] for g in GROUPS}
    flat: list[dict[str, str]] = []
    for key, value in summary.items():
        t = term(key)
        row = {"key": key, "label": label(key), "value": fmt(value, t.unit)}
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


def verdicts(result: Result) -> list[dict[str, Any]]:
    """Each target of ``result`` against its summary value: met when on the better side (↑: at least, ↓: at
    most; a target without a direction is met when reached or passed upwards); missing values are not met."""
    out = []
    for key, target in result.targets.items():
        t, value = term(key), result.summary.get(key)
        met = value is not None and (value <= target if t.better == "lower" else value >= target)
        relation = "≤" if t.better == "lower" else "≥"
        out.append({"label": label(key), "value": fmt(value, t.unit), "target": f"{relation} {fmt(target, t.unit)}",
                    "met": met})
    return out


def headline(result: Result) -> str:
    """``result.headline``, else the run's name and data from its config."""
    if result.headline:
        return result.headline
    config = run_config(result)
    data = config.get("data") or config.get("train")
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
