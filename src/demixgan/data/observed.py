"""A user's own observed mixtures: the real data of a run that has no recipe behind it.

The paper's setting is a user with superpositions only. A ``.npy`` stack or a directory of
PNG files (grey or RGB, one size) becomes the discriminator's real data as it is; its shape is
the run's image spec, so every network is built for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from demixgan.errors import DemixganError
from demixgan.io.images import read_stack
from demixgan.spec.image import CHANNELS, ImageSpec


def load_mixtures(path: str | os.PathLike) -> torch.Tensor:
    """Observed mixtures as float [N, C, H, W] in [0, 1], checked (size, channels, values)."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".npy"))
        if not files:
            raise DemixganError(
                f"The mixtures folder '{path}' holds no .png or .npy files; put your observed "
                "mixtures there (grey or RGB PNGs of one size, or .npy stacks)."
            )
    elif path.is_file():
        files = [path]
    else:
        raise DemixganError(
            f"The observed mixtures '{path}' do not exist: give a .npy stack [N, C, H, W] or a "
            "directory of PNG images (data.mixtures / --set data.mixtures=PATH)."
        )
    stack = torch.from_numpy(read_stack(files))
    if stack.ndim == 3:
        stack = stack[:, None]  # [N, H, W] of grey mixtures
    if stack.ndim == 4 and stack.shape[1] not in CHANNELS and stack.shape[-1] in CHANNELS:
        stack = stack.permute(0, 3, 1, 2).contiguous()  # channels-last, as numpy images are
    if stack.ndim != 4 or stack.shape[1] not in CHANNELS:
        raise DemixganError(
            f"The observed mixtures in '{path}' have shape {tuple(stack.shape)}; give grey or "
            "RGB images: [N, H, W], [N, 1, H, W] or [N, 3, H, W]."
        )
    ImageSpec(*stack.shape[1:])  # a size the networks can be built for, or a clear error
    finite = torch.isfinite(stack)
    if not finite.all() or stack.min() < 0 or stack.max() > 1:
        raise DemixganError(
            f"The observed mixtures in '{path}' hold values outside [0, 1] or NaN / inf "
            f"(range {stack[finite].min().item():.3g} to {stack[finite].max().item():.3g}); "
            "store images as uint8 (0..255) or floats in [0, 1]."
        )
    return stack
