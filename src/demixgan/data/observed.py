"""A user's own observed mixtures: the real data of a run that has no recipe behind it.

The paper's setting is a user with superpositions only. A folder of images (PNG 8- or 16-bit,
JPEG, TIFF; grey or RGB) or ``.npy`` stacks becomes the discriminator's real data as it is; its
shape is the run's image spec, so every network is built for it. Images of several sizes are
brought to one only when asked (``resize`` or ``crop``), never guessed at.

Pixels stay as stored (uint8 for 8-bit files, uint16 for 16-bit ones) and become floats in
[0, 1] one batch at a time (``ImageStack``): 100,000 RGB images of 64 x 64 are 1.2 GB as uint8
and would be 4.9 GB as float32. Every image keeps where it came from (``Source``), so outputs
can be written under the input's name, size, bit depth and channel count.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from demixgan.errors import DemixganError
from demixgan.io.images import read_npy
from demixgan.spec.image import CHANNELS, ImageSpec

#: Image files a folder of mixtures may hold (besides ``.npy`` stacks).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
ARRAY_SUFFIX = ".npy"
#: Pillow modes read, with their channel count and bit depth ("F": 32-bit float TIFF).
_MODES = {"1": (1, 8), "L": (1, 8), "RGB": (3, 8), "I;16": (1, 16), "I;16B": (1, 16), "F": (1, 32)}
#: A folder whose images differ in size is described by this many examples per size.
_EXAMPLES = 2


@dataclass(frozen=True)
class Source:
    """Where one image came from: its name (file stem, or ``stem-NNNNN`` of a stack), its
    size and channels as read, and its bit depth (8, 16; 32 for floats)."""

    name: str
    height: int
    width: int
    channels: int
    bits: int


#: An image's shape once sized, and its source.
Entry = tuple[tuple[int, int, int], Source]


class ImageStack:
    """Images [N, C, H, W] kept as stored, read as float32 in [0, 1] one index at a time.

    ``stack[index]`` converts only the images asked for, so a training batch costs its own
    size in floats; ``floats()`` converts them all. ``subset`` is a view (its ``rows`` of the
    same pixels), so holding out a validation part copies no pixels.
    """

    def __init__(
        self, pixels: torch.Tensor, sources: Sequence[Source], rows: torch.Tensor | None = None
    ) -> None:
        self.pixels, self.rows = pixels, rows
        self.sources = tuple(sources)
        self.scale = {torch.uint8: 255.0, torch.int32: 65535.0}.get(pixels.dtype, 1.0)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.pixels.shape[1:]))

    @property
    def image(self) -> ImageSpec:
        return ImageSpec(*self.pixels.shape[1:])

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index) -> torch.Tensor:
        rows = index if self.rows is None else self.rows[index]
        return self.pixels[rows].float().div_(self.scale)

    def floats(self) -> torch.Tensor:
        return self[:]

    def subset(self, index: torch.Tensor) -> ImageStack:
        rows = index if self.rows is None else self.rows[index]
        return ImageStack(self.pixels, [self.sources[i] for i in index.tolist()], rows)


def mixture_files(path: str | os.PathLike) -> list[Path]:
    """The image and ``.npy`` files of a mixtures folder (sorted), or the one file given."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DemixganError(
            f"The observed mixtures '{path}' do not exist: give a folder of images (PNG, JPEG, "
            "TIFF) or .npy stacks, or one .npy stack [N, C, H, W] (--mixtures / data.mixtures)."
        )
    entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    readable = (*IMAGE_SUFFIXES, ARRAY_SUFFIX)
    files = [p for p in entries if _suffix(p) in readable and p.is_file()]
    kept = set(files)
    others = [p.name for p in entries if p not in kept]
    if others:
        raise DemixganError(
            f"The mixtures folder '{path}' holds {len(others)} entries that are not images or "
            f".npy stacks ({_listing(others)}); demixgan reads {', '.join(IMAGE_SUFFIXES)} and "
            ".npy files there. Move the others out of the folder."
        )
    if not files:
        raise DemixganError(
            f"The mixtures folder '{path}' holds no images; put your observed mixtures there "
            "(PNG 8- or 16-bit, JPEG, TIFF, grey or RGB, or .npy stacks)."
        )
    return files


def read_mixtures(
    files: Sequence[str | os.PathLike],
    *,
    resize: Sequence[int] | None = None,
    crop: Sequence[int] | None = None,
) -> ImageStack:
    """Images of the files as one stack, checked (size, channels, values), pixels as stored.

    ``resize`` (H, W) scales every image to that size (bilinear, with antialiasing), ``crop``
    (H, W) takes its centre; without either, every image must have the same size. Headers are
    read first (sizes, modes, shapes of ``.npy`` stacks) and the stack is allocated once, so
    reading a folder peaks at the stack's own size.
    """
    files = [Path(file) for file in files]
    entries = [entry for file in files for entry in _headers(file, resize, crop)]
    if not entries:
        raise DemixganError("The inputs hold no images (empty .npy stacks).")
    for what, key in (("channel counts", _channels), ("sizes", _size)):
        if len({key(entry) for entry in entries}) > 1:
            raise DemixganError(_mixed(what, key, entries, resize is None and crop is None))
    bits = max(source.bits for _, source in entries)
    dtype = {8: np.uint8, 16: np.int32}.get(bits, np.float32)  # int32: torch has no uint16 ops
    ImageSpec(*entries[0][0])  # a size the networks can be built for, or a clear error
    pixels = np.empty((len(entries), *entries[0][0]), dtype=dtype)
    index = 0
    for file in files:
        for array in _read_file(file, resize, crop):
            if array.dtype == np.uint8 and bits == 16:
                array = array.astype(np.int32) * 257  # 8-bit values on the 16-bit scale
            pixels[index] = array
            index += 1
    return ImageStack(torch.from_numpy(pixels), [source for _, source in entries])


def load_mixtures(
    path: str | os.PathLike,
    *,
    resize: Sequence[int] | None = None,
    crop: Sequence[int] | None = None,
) -> ImageStack:
    """The observed mixtures of a folder or ``.npy`` file (``read_mixtures`` of its files)."""
    return read_mixtures(mixture_files(path), resize=resize, crop=crop)


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _size(entry: Entry) -> str:
    return "{} x {} px".format(*entry[0][1:])


def _channels(entry: Entry) -> str:
    return {1: "grey", 3: "RGB"}[entry[0][0]]


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _mixed(what: str, key, images: list, sizing: bool) -> str:
    """The message for images that differ in ``what``: how many of each, with examples."""
    parts = []
    for value, count in Counter(key(image) for image in images).most_common():
        names = [image[1].name for image in images if key(image) == value][:_EXAMPLES]
        parts.append(f"{count} {value} ({_listing(names)}{', ...' if count > _EXAMPLES else ''})")
    advice = (
        "Bring them to one size with --resize H W (scale) or --crop H W (centre), or "
        "data.resize / data.crop in a config"
        if what == "sizes" and sizing
        else "Convert them all to grey or all to RGB"
        if what == "channel counts"
        else "Choose a --resize / --crop that every image allows"
    )
    return f"The mixtures have different {what}: {'; '.join(parts)}. {advice}."


def _headers(path: Path, resize: Sequence[int] | None, crop: Sequence[int] | None) -> list[Entry]:
    """The shape (after ``resize`` / ``crop``) and source of every image of a file, from its
    header alone (an image's mode and size, a ``.npy`` stack's shape and type)."""
    if not path.is_file():
        raise DemixganError(f"The input file '{path}' does not exist.")
    if _suffix(path) == ARRAY_SUFFIX:
        stack = _array_view(path, mmap=True)
        bits = _bits(stack.dtype)
        found = [(f"{path.stem}-{i:05d}", *stack.shape[1:], bits) for i in range(len(stack))]
    elif _suffix(path) in IMAGE_SUFFIXES:
        try:
            with Image.open(path) as image:
                mode, (width, height) = image.mode, image.size
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise _unreadable(path, exc) from None
        _check_mode(path, mode)
        found = [(path.stem, _MODES[mode][0], height, width, _MODES[mode][1])]
    else:
        raise DemixganError(
            f"'{path}' is not an image ({', '.join(IMAGE_SUFFIXES)}) or a .npy stack, the files "
            "demixgan reads as mixtures."
        )
    entries = []
    for name, channels, height, width, bits in found:
        if crop is not None and (height < crop[0] or width < crop[1]):
            raise DemixganError(
                f"The image '{path}' is {height} x {width} px, smaller than the crop "
                f"{crop[0]} x {crop[1]}; choose a smaller --crop or use --resize."
            )
        size = tuple(resize or crop or (height, width))
        entries.append(((channels, *size), Source(name, height, width, channels, bits)))
    return entries


def _read_file(path: Path, resize: Sequence[int] | None, crop: Sequence[int] | None):
    """The images of one file, each [C, H, W] as stored and brought to size, one by one."""
    if _suffix(path) == ARRAY_SUFFIX:
        stack = _checked_values(_array_view(path, mmap=False), f"The array file '{path}'")
        for image in stack:
            yield _sized(np.ascontiguousarray(image), resize, crop)
    else:
        yield _sized(_image_pixels(path), resize, crop)


def _unreadable(path: Path, exc: Exception) -> DemixganError:
    return DemixganError(
        f"Cannot read the image '{path}' ({exc}): it is truncated, corrupt or not an image. "
        "Replace it or move it out of the folder."
    )


def _check_mode(path: Path, mode: str) -> None:
    if mode not in _MODES:
        raise DemixganError(
            f"The image '{path}' has mode {mode}, but demixgan reads grey (8- or 16-bit) and RGB "
            "images; convert it, e.g. with Pillow: Image.open(path).convert('RGB').save(path) "
            "(or 'L' for grey; an alpha channel or a palette is not a mixture's value)."
        )


def _image_pixels(path: Path) -> np.ndarray:
    """An image file's pixels [C, H, W]: uint8, uint16 (16-bit) or float32 in [0, 1]."""
    try:
        with Image.open(path) as image:
            image.load()
            mode, pixels = image.mode, np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise _unreadable(path, exc) from None
    _check_mode(path, mode)
    if mode == "1":
        pixels = pixels.astype(np.uint8) * 255
    elif mode.startswith("I;16"):
        pixels = pixels.astype(np.uint16)
    elif mode == "F":
        pixels = _checked_floats(pixels.astype(np.float32), f"The image '{path}'")
    return pixels.transpose(2, 0, 1) if pixels.ndim == 3 else pixels[None]


def _array_view(path: Path, *, mmap: bool) -> np.ndarray:
    """A ``.npy`` of one image [H, W] or a stack [N, H, W] / [N, C, H, W] / [N, H, W, C] as a
    view [N, C, H, W] (``mmap``: of the file's header and mapped data, nothing read yet)."""
    array = read_npy(path, mmap=mmap)
    what = f"The array file '{path}'"
    if array.ndim == 0:
        raise DemixganError(
            f"{what} holds a single number ({array.dtype}), not an image; save images as "
            "[H, W] or a stack [N, ...]."
        )
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim == 4 and array.shape[1] not in CHANNELS and array.shape[-1] in CHANNELS:
        array = array.transpose(0, 3, 1, 2)  # channels-last, as numpy images are
    if array.ndim != 4 or array.shape[1] not in CHANNELS:
        raise DemixganError(
            f"{what} has shape {array.shape}; give grey or RGB images: [H, W], [N, H, W], "
            "[N, 1, H, W] or [N, 3, H, W]."
        )
    if not (np.issubdtype(array.dtype, np.number) and not np.iscomplexobj(array)):
        raise DemixganError(
            f"{what} holds {array.dtype} values, not real numbers; give images as floats in "
            "[0, 1] or as integer intensities (uint8 0..255, uint16 0..65535)."
        )
    return array


def _bits(dtype: np.dtype) -> int:
    """The bit depth a ``.npy`` stack's values are read at (other integers are 8-bit)."""
    if dtype == np.uint16:
        return 16
    return 8 if np.issubdtype(dtype, np.integer) else 32


def _checked_values(array: np.ndarray, what: str) -> np.ndarray:
    """A stack's values as stored: uint8 / uint16, other integers 0..255 as uint8, finite
    floats as float32."""
    if array.dtype in (np.uint8, np.uint16):
        return array
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise DemixganError(
                f"{what} holds {array.dtype} values from {array.min()} to {array.max()}; "
                "integer images are 8-bit intensities (0..255) or, as uint16, 16-bit ones. "
                "Store them as uint8 / uint16, or as floats in [0, 1]."
            )
        return array.astype(np.uint8)
    return _checked_floats(array.astype(np.float32), what)


def _checked_floats(array: np.ndarray, what: str) -> np.ndarray:
    """Finite floats (their range is the reader's to judge: a sum of K parts reaches K)."""
    finite = np.isfinite(array)
    if not finite.all():
        raise DemixganError(
            f"{what} holds {int((~finite).sum())} NaN or infinite values; mixtures are "
            "intensities (floats in [0, 1] per part, uint8 or uint16). Replace them, or move the "
            "file out of the folder."
        )
    return array


def value_range(stack: ImageStack) -> tuple[float, float]:
    """The smallest and largest value of a stack's pixels, in the [0, 1] scale."""
    return stack.pixels.min().item() / stack.scale, stack.pixels.max().item() / stack.scale


def resized(array: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """A float image [C, H, W] scaled to ``size`` (H, W): bilinear, antialiased."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    return torch.nn.functional.interpolate(
        tensor, size=tuple(size), mode="bilinear", antialias=True, align_corners=False
    )[0].numpy()


def _sized(
    array: np.ndarray, resize: Sequence[int] | None, crop: Sequence[int] | None
) -> np.ndarray:
    """``array`` [C, H, W] scaled to ``resize`` or cut to its centre ``crop`` (H, W)."""
    if resize is not None and tuple(array.shape[1:]) != tuple(resize):
        scaled = resized(array.astype(np.float32), resize)
        if array.dtype == np.float32:
            return scaled
        top = np.iinfo(array.dtype).max
        return np.round(scaled).clip(0, top).astype(array.dtype)
    if crop is not None:  # the headers checked that the image holds the crop
        height, width = crop
        top, left = (array.shape[1] - height) // 2, (array.shape[2] - width) // 2
        return np.ascontiguousarray(array[:, top : top + height, left : left + width])
    return array
