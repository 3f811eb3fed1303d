"""Read and write the image files users hand to demixgan: grey or RGB PNGs and ``.npy`` arrays.

Arrays are read with ``allow_pickle=False``: a ``.npy`` file never runs code.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from demixgan.errors import DemixganError

#: PNG modes read (grey ones and RGB) and the value of their white, which maps to 1.0.
PNG_SCALES = {"L": 255.0, "I;16": 65535.0, "1": 1.0, "RGB": 255.0}


def read_png(path: str | os.PathLike) -> np.ndarray:
    """A grey PNG as float32 [1, H, W] in [0, 1], an RGB one as [3, H, W]."""
    try:
        with Image.open(path) as image:
            image.load()
            mode, pixels = image.mode, np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DemixganError(
            f"Cannot read the image {path} ({exc}); it is corrupt or not a PNG. Replace or "
            f"remove it."
        ) from exc
    if mode not in PNG_SCALES:
        raise DemixganError(
            f"The image {path} has mode {mode} ({len(image.getbands())} channels), but demixgan "
            f"reads grey or RGB PNGs (modes {', '.join(PNG_SCALES)}); convert it, e.g. with "
            f"Pillow: Image.open(path).convert('L').save(path) (or 'RGB')."
        )
    scaled = pixels.astype(np.float32) / PNG_SCALES[mode]
    return scaled.transpose(2, 0, 1) if scaled.ndim == 3 else scaled[None]


def read_npy(path: str | os.PathLike, *, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` array as stored (no pickles); ``mmap``: mapped, read only where used."""
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as exc:
        raise DemixganError(
            f"Cannot read the array file {path} ({exc}); it is corrupt or not a .npy file "
            f"written by numpy.save. Replace or remove it."
        ) from exc


def read_stack(paths: list[str | os.PathLike]) -> np.ndarray:
    """PNG files and ``.npy`` stacks concatenated along the first axis as float32.

    A PNG is one image: grey ones stack as [1, H, W], RGB ones as [1, 3, H, W]; a ``.npy`` is
    [H, W] (one image) or a stack [N, ...]; integer arrays are intensities (``intensities``). Shapes
    are checked by the caller, which knows what it expects.
    """
    if not paths:
        raise DemixganError("No input files were given: pass PNG images or .npy stacks.")
    parts = []
    for path in map(Path, paths):
        suffix = path.suffix.lower()
        if suffix not in (".png", ".npy"):
            raise DemixganError(
                f"'{path}' is neither a .png image nor a .npy array; demixgan reads those two."
            )
        if not path.is_file():
            raise DemixganError(f"The input file '{path}' does not exist.")
        array = read_png(path) if suffix == ".png" else read_npy(path)
        if array.ndim == 0:
            raise DemixganError(
                f"The array file {path} holds a single number ({array.dtype}), not an image; "
                "save images as [H, W] or a stack [N, ...]."
            )
        if suffix == ".png" and array.shape[0] == 3:
            array = array[None]
        if suffix == ".npy" and array.ndim == 2:
            array = array[None]
        parts.append(intensities(array, f"The array file {path}"))
    shapes = {a.shape[1:] for a in parts}
    if len(shapes) > 1:
        raise DemixganError(
            f"The inputs hold images of different shapes ({', '.join(map(str, shapes))}); give "
            "images of one size."
        )
    return np.concatenate(parts).astype(np.float32)


def intensities(array: np.ndarray, what: str = "The array") -> np.ndarray:
    """Real values as float32, integers read as pixel intensities like a PNG's.

    One rule for every integer type, so the same image gives the same result however it was
    stored: uint16 is 16-bit (divided by 65535), any other integer type 8-bit (divided by 255,
    and refused outside 0..255 rather than guessed at).
    """
    if not (np.issubdtype(array.dtype, np.number) and not np.iscomplexobj(array)):
        raise DemixganError(
            f"{what} holds {array.dtype} values, not real numbers; give images as floats in "
            "[0, 1] or as integer intensities (uint8 0..255, uint16 0..65535)."
        )
    if not np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float32)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.size and (array.min() < 0 or array.max() > 255):
        raise DemixganError(
            f"{what} holds {array.dtype} values from {array.min()} to {array.max()}; integer "
            "images are read as 8-bit intensities (0..255, divided by 255) or, as uint16, "
            "16-bit ones. Store them as uint8 / uint16, or as floats in [0, 1]."
        )
    return array.astype(np.float32) / 255.0


def write_png(path: str | os.PathLike, image: np.ndarray, bits: int = 8) -> None:
    """One image [C, H, W] (C 1 or 3; or [H, W]) as a grey or RGB PNG of 8 bits (or a grey one
    of 16); values are clipped to [0, 1]."""
    top = 65535.0 if bits == 16 else 255.0
    pixels = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0) * top
    if pixels.ndim == 3:
        pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    if bits == 16:
        Image.fromarray(np.round(pixels).astype(np.uint16)).save(path)
    else:
        Image.fromarray(np.round(pixels).astype(np.uint8)).save(path)
