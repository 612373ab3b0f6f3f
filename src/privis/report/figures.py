"""Figures for reports: image grids and simple plots, returned as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def _to_uint8_hwc(image: Tensor) -> np.ndarray:
    """``(C, H, W)`` in ``[0, 1]`` → ``(H, W, 3)`` uint8 (grey replicated)."""
    arr = image.detach().cpu().clamp(0, 1).numpy()
    arr = np.round(arr * 255).astype(np.uint8).transpose(1, 2, 0)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return arr


def _grid(columns: Mapping[str, Tensor], max_rows: int, scale: int, pad: int = 2) -> tuple[np.ndarray, int]:
    """The grid of :func:`image_grid_png` as an ``(H, W, 3)`` uint8 array, and the width of one column."""
    cols = list(columns.values())
    n = min(max_rows, min(c.shape[0] for c in cols))
    h, w = cols[0].shape[-2:]
    if scale <= 0:
        scale = max(1, 96 // max(h, w))
    cell_h, cell_w = h * scale, w * scale
    grid = np.full((n * (cell_h + pad) + pad, len(cols) * (cell_w + pad) + pad, 3), 255, np.uint8)
    for j, col in enumerate(cols):
        for i in range(n):
            tile = _to_uint8_hwc(col[i]).repeat(scale, 0).repeat(scale, 1)
            y, x = pad + i * (cell_h + pad), pad + j * (cell_w + pad)
            grid[y:y + cell_h, x:x + cell_w] = tile
    return grid, cell_w + pad


def draw_boxes(images: Tensor, boxes: Sequence[Tensor], marked: Sequence[Tensor] | None = None, *,
               width: int = 1) -> Tensor:
    """Copies of ``images`` with box outlines drawn in: green, or red where ``marked`` (e.g. private objects).

    Args:
        images: ``(N, C, H, W)`` in ``[0, 1]`` (grey is drawn as RGB).
        boxes: per image, ``(K, 4)`` pixel ``xyxy`` boxes (e.g. a detector's detections).
        marked: per image, ``(K,)`` bool: boxes drawn red instead of green; None: all green.
        width: outline thickness in pixels.

    Returns:
        ``(N, 3, H, W)`` float32 in ``[0, 1]``, for :func:`image_grid_png`.

    Examples:
        >>> import torch
        >>> out = draw_boxes(torch.zeros(1, 1, 8, 8), [torch.tensor([[2.0, 2, 6, 6]])], [torch.tensor([True])])
        >>> out.shape, out[0, :, 2, 3].tolist(), out[0, :, 4, 4].tolist()  # red edge, untouched inside
        (torch.Size([1, 3, 8, 8]), [1.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    """
    out = images.detach().float().expand(-1, 3, -1, -1).clone()
    h, w = out.shape[-2:]
    for i, image_boxes in enumerate(boxes):
        red = marked[i].tolist() if marked is not None else [False] * len(image_boxes)
        for (x1, y1, x2, y2), is_red in zip(image_boxes.detach().cpu().round().long().tolist(), red, strict=True):
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
            if x2 <= x1 or y2 <= y1:
                continue
            colour = torch.tensor([1.0, 0.0, 0.0] if is_red else [0.0, 1.0, 0.0], device=out.device)[:, None, None]
            rows, cols = slice(y1, y2), slice(x1, x2)
            for ys, xs in ((slice(y1, min(y2, y1 + width)), cols), (slice(max(y1, y2 - width), y2), cols),
                           (rows, slice(x1, min(x2, x1 + width))), (rows, slice(max(x1, x2 - width), x2))):
                out[i, :, ys, xs] = colour
    return out


def image_grid_png(columns: Mapping[str, Tensor], *, max_rows: int = 8, scale: int = 0) -> bytes:
    """A grid with one column per entry of ``columns`` (e.g. original | protected | recovered).

    Args:
        columns: title → images ``(N, C, H, W)`` in ``[0, 1]``; all share H and W.
        max_rows: at most this many images per column.
        scale: integer upscaling (nearest) so small images stay visible; 0 picks one for ~96 px cells.

    Returns:
        PNG bytes. Column titles are drawn by the HTML caption, not into the image, to keep this
        dependency-free; the caption lists them left to right (:func:`labelled_grid_png` draws them).
    """
    buf = io.BytesIO()
    Image.fromarray(_grid(columns, max_rows, scale)[0]).save(buf, format="PNG")
    return buf.getvalue()


def labelled_grid_png(columns: Mapping[str, Tensor], *, max_rows: int = 4, scale: int = 2) -> bytes:
    """:func:`image_grid_png` with each column's title drawn above it, for a picture shown on its own.

    Args:
        columns: title → images ``(N, C, H, W)`` in ``[0, 1]``; all share H and W. A ``": "`` in a title
            breaks its line there.
        max_rows: at most this many images per column.
        scale: integer upscaling (nearest) of each image.

    Returns:
        PNG bytes (matplotlib, 110 dpi: one image pixel per screen pixel at ``scale=1``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid, step = _grid(columns, max_rows, scale)
    dpi = 110
    fig = plt.figure(figsize=(grid.shape[1] / dpi, grid.shape[0] / dpi + 0.45), dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, 1.0, grid.shape[0] / (grid.shape[0] + 0.45 * dpi)))
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([step * (j + 0.5) for j in range(len(columns))],
                  [title.replace(": ", "\n") for title in columns], fontsize=6.5)
    ax.xaxis.tick_top()
    ax.tick_params(length=0, pad=2)
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return _figure_png(fig, tight=False)


def stack_png(images: Sequence[bytes]) -> bytes:
    """PNG images stacked top to bottom on white, centred (e.g. a grid above its plot)."""
    tiles = [Image.open(io.BytesIO(png)).convert("RGB") for png in images]
    width = max(t.width for t in tiles)
    canvas = Image.new("RGB", (width, sum(t.height for t in tiles)), "white")
    y = 0
    for tile in tiles:
        canvas.paste(tile, ((width - tile.width) // 2, y))
        y += tile.height
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _figure_png(fig, *, tight: bool = True) -> bytes:  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110, bbox_inches=None if tight else "tight", pad_inches=0.05)
    plt.close(fig)
    return buf.getvalue()


def line_plot_png(series: Mapping[str, Sequence[float]], *, xlabel: str, ylabel: str, title: str = "",
                  x: Sequence[float] | None = None, log_x: bool = False, log_y: bool = False) -> bytes:
    """Line plot of named series against ``x`` (default: their index from 1, e.g. accuracy per epoch), either
    axis optionally logarithmic (e.g. epsilon against iterations)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, ys in series.items():
        ax.plot(list(x) if x is not None else range(1, len(ys) + 1), ys, marker="o", ms=3, label=label)
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both" if log_x or log_y else "major")
    ax.legend(fontsize=7 if len(series) > 4 else None)
    return _figure_png(fig)


def scatter_png(points: Sequence[Mapping[str, float | str]], *, x: str, y: str, label: str = "label",
                title: str = "", hlines: Mapping[str, float] | None = None,
                vlines: Mapping[str, float] | None = None, xlabel: str = "", ylabel: str = "") -> bytes:
    """Scatter of ``points`` (dicts with keys ``x``, ``y`` and ``label``), optional target lines; the axes are
    labelled ``xlabel`` / ``ylabel`` (default: the keys ``x`` / ``y``)."""
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
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return _figure_png(fig)
