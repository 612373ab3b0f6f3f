"""Render a :class:`privis.results.Result` to a self-contained HTML report, plus the figures it embeds.

The report is one file: tables as HTML, images and plots as inline base64 PNG, no external assets.
"""

from privis.report.figures import draw_boxes, image_grid_png, labelled_grid_png, line_plot_png, scatter_png, stack_png
from privis.report.html import render_html, save_report

__all__ = ["draw_boxes", "image_grid_png", "labelled_grid_png", "line_plot_png", "render_html", "save_report",
           "scatter_png", "stack_png"]
