"""Figures: the labelled grid and stacked PNGs keep their pixels where they belong."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from privis.report import image_grid_png, labelled_grid_png, stack_png


def _png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def test_stack_png_centres_tiles_top_to_bottom():
    out = np.asarray(Image.open(io.BytesIO(stack_png([_png(10, 4, (255, 0, 0)), _png(30, 6, (0, 0, 255))]))))
    assert out.shape == (10, 30, 3)
    assert (out[:4, 10:20] == (255, 0, 0)).all() and (out[:4, :10] == 255).all()  # centred on white
    assert (out[4:] == (0, 0, 255)).all()


def test_image_grid_places_each_image_in_its_cell():
    black, white = torch.zeros(3, 1, 4, 4), torch.ones(3, 1, 4, 4)
    grid = np.asarray(Image.open(io.BytesIO(image_grid_png({"a": black, "b": white}, max_rows=2, scale=1))))
    assert grid.shape == (2 * 6 + 2, 2 * 6 + 2, 3)
    assert (grid[2:6, 2:6] == 0).all() and (grid[2:6, 8:12] == 255).all()


def test_labelled_grid_is_wider_than_tall_for_many_columns():
    columns = {f"m{i}: recovered": torch.rand(4, 1, 8, 8) for i in range(15)}
    image = Image.open(io.BytesIO(labelled_grid_png(columns)))
    assert image.width > 2 * image.height and image.width < 1280
