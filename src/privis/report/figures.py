"""Figures for reports: image grids and simple plots, returned as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image
from torch import Tensor


def _to_uint8_hwc(image: Tensor) -> np.ndarray:
    """``(C, H, W)`` in ``[0, 1]`` → ``(H, W, 3)`` uint8 (grey replicated)."""
    arr = image.detach().cpu().clamp(0, 1).numpy()
    arr = np.round(arr * 255).astype(np.uint8).transpose(1, 2, 0)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return arr


def image_grid_png(columns: Mapping[str, Tensor], *, max_rows: int = 8, scale: int = 0) -> bytes:
    """A grid with one column per entry of ``columns`` (e.g. original | protected | recovered).

    Args:
        columns: title → images ``(N, C, H, W)`` in ``[0, 1]``; all share H and W.
        max_rows: at most this many images per column.
        scale: integer upscaling (nearest) so small images stay visible; 0 picks one for ~96 px cells.

    Returns:
        PNG bytes. Column titles are drawn by the HTML caption, not into the image, to keep this
        dependency-free; the caption lists them left to right.
    """
    cols = list(columns.values())
    n = min(max_rows, min(c.shape[0] for c in cols))
    h, w = cols[0].shape[-2:]
    if scale <= 0:
        scale = max(1, 96 // max(h, w))
    pad = 2
    cell_h, cell_w = h * scale, w * scale
    grid = np.full((n * (cell_h + pad) + pad, len(cols) * (cell_w + pad) + pad, 3), 255, np.uint8)
    for j, col in enumerate(cols):
        for i in range(n):
            tile = _to_uint8_hwc(col[i]).repeat(scale, 0).repeat(scale, 1)
            y, x = pad + i * (cell_h + pad), pad + j * (cell_w + pad)
            grid[y:y + cell_h, x:x + cell_w] = tile
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    return buf.getvalue()


def _figure_png(fig) -> bytes:  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def line_plot_png(series: Mapping[str, Sequence[float]], *, xlabel: str, ylabel: str, title: str = "") -> bytes:
    """Line plot of named series against their index (e.g. accuracy per epoch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, ys in series.items():
        ax.plot(range(1, len(ys) + 1), ys, marker="o", ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _figure_png(fig)


def scatter_png(points: Sequence[Mapping[str, float | str]], *, x: str, y: str, label: str = "label",
                title: str = "", hlines: Mapping[str, float] | None = None,
                vlines: Mapping[str, float] | None = None) -> bytes:
    """Scatter of ``points`` (dicts with keys ``x``, ``y`` and ``label``), optional target lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for p in points:
        ax.scatter(p[x], p[y], s=28)
        ax.annotate(str(p.get(label, "")), (p[x], p[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for name, value in (hlines or {}).items():
        ax.axhline(value, ls="--", lw=1, color="grey")
        ax.annotate(name, (ax.get_xlim()[0], value), fontsize=7, color="grey")
    for name, value in (vlines or {}).items():
        ax.axvline(value, ls="--", lw=1, color="grey")
        ax.annotate(name, (value, ax.get_ylim()[0]), fontsize=7, color="grey", rotation=90)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return _figure_png(fig)
