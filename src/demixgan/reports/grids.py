"""Image grids: tiles of [N, C, H, W] tensors (grey or RGB), and labelled panels of them."""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence

import numpy as np
import torch

from demixgan.io.atomic import atomic_path


def tile(images: torch.Tensor, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """Arrange ``images`` [N, C, H, W] with values in [0, 1] into one float array
    [rows*H, cols*W] (grey) or [rows*H, cols*W, 3] (RGB).

    >>> tile(torch.ones(5, 1, 2, 2), ncol=3, pad=0).shape, tile(torch.ones(2, 3, 2, 2)).shape
    ((4, 6), (4, 7, 3))
    """
    count, channels, height, width = images.shape
    ncol = ncol or max(1, math.ceil(math.sqrt(count)))
    nrow = max(1, math.ceil(count / ncol))
    colour = (3,) if channels == 3 else ()
    canvas = np.full(
        (nrow * (height + pad) + pad, ncol * (width + pad) + pad, *colour), 0.5, np.float32
    )
    pixels = images.detach().float().clamp(0, 1).cpu().numpy()
    pixels = pixels.transpose(0, 2, 3, 1) if colour else pixels[:, 0]
    for index in range(count):
        row, col = divmod(index, ncol)
        top, left = pad + row * (height + pad), pad + col * (width + pad)
        canvas[top : top + height, left : left + width] = pixels[index]
    if pad == 0:
        return canvas[: nrow * height, : ncol * width]
    return canvas


def save_panels(
    panels: Sequence[tuple[str, torch.Tensor]],
    path: str | os.PathLike,
    *,
    ncol: int | None = None,
    title: str | None = None,
    per_row: int | None = None,
) -> None:
    """Save labelled tiles side by side as one PNG (written atomically).

    ``ncol`` is the number of image columns inside each tile, ``per_row`` the number of tiles
    in a row of the figure (default: all in one row).
    """
    import matplotlib.pyplot as plt

    figure = panel_figure(panels, ncol=ncol, title=title, per_row=per_row)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


#: Title font size of a panel, and the width of one of its characters in font sizes (about).
TITLE_POINTS, CHARACTER_WIDTH = 10, 0.6


def panel_figure(
    panels: Sequence[tuple[str, torch.Tensor]],
    *,
    ncol: int | None = None,
    title: str | None = None,
    per_row: int | None = None,
):
    """The matplotlib figure of ``save_panels``; a label wider than its panel wraps at spaces
    (one-column panels of a separation figure are narrower than "GAN: digit-8")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tiles = [tile(images, ncol) for _, images in panels]
    height, width = tiles[0].shape[:2]
    scale = 4.0 / max(height, width) * max(1.0, math.sqrt(max(height, width) / 120))
    columns = min(per_row or len(panels), len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(
            columns * width * scale + 0.4,
            rows * (height * scale + 0.5) + (0.4 if title else 0.1),
        ),
        squeeze=False,
    )
    characters = max(6, int(width * scale * 72 / (CHARACTER_WIDTH * TITLE_POINTS)))
    for axis in axes.flat:
        axis.axis("off")
    for axis, (label, _), image in zip(axes.flat, panels, tiles, strict=False):
        axis.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        title_lines = textwrap.fill(label, characters, break_long_words=False)
        axis.set_title(title_lines, fontsize=TITLE_POINTS)
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure
