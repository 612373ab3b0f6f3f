"""``Result`` → one self-contained HTML page (summary, tables, figures inline, config, versions)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from jinja2 import Environment, select_autoescape

from privis.fsutil import atomic_write_text
from privis.results import Result

_TEMPLATE = (Path(__file__).with_name("report.html.j2")).read_text(encoding="utf-8")


def _fmt(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _columns(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        cols.extend(k for k in row if k not in cols)
    return cols


def render_html(result: Result) -> str:
    """The report for ``result`` as one HTML string (all images inline)."""
    env = Environment(autoescape=select_autoescape(default=True))
    template = env.from_string(_TEMPLATE)
    data = result.to_dict()
    return template.render(
        r=result,
        fmt=_fmt,
        columns=_columns,
        b64=lambda b: base64.b64encode(b).decode("ascii"),
        config=json.dumps(data["config"], indent=2),
        versions=json.dumps(data["versions"], indent=2),
    )


def save_report(result: Result, path: str | Path) -> Path:
    """Write ``render_html(result)`` to ``path`` atomically."""
    return atomic_write_text(path, render_html(result))
