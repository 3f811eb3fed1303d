"""Build a folder of 64 x 64 colour mixtures nobody here drew: crops of the photographs that
scikit-image ships in its package, each crossed by grey sinusoidal strokes drawn at that size.

    python examples/photo_mixtures.py OUT [--size 64] [--train 6000] [--validation 500] [--test 500]

writes ``OUT/{train,validation,test}/NNNNN.png`` (8-bit RGB mixtures) and, apart from them,
``OUT/truth/{validation,test}.npy`` ([N, 2, 3, H, W]: photo, strokes), the parts each
mixture is the sum of. Each split takes its crops from other photographs, so a model is tested
on pictures it never saw. Nothing is downloaded; the same arguments write the same files.

A mixture is y = 0.6 * photo + 0.4 * strokes, in [0, 1] without clipping: the photo crop at
60 % contrast, the strokes (``sines`` at level 1: one thin anti-aliased curve) at 40 %.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import skimage
import torch
from PIL import Image

from demixgan.data.superposition import draw_family
from demixgan.spec.image import ImageSpec

#: Which photographs each split crops (the colour photos of skimage/data, none in two splits).
PHOTOS = {
    "train": (
        "astronaut.png",
        "coffee.png",
        "hubble_deep_field.jpg",
        "ihc.png",
        "motorcycle_left.png",
        "retina.jpg",
    ),
    "validation": ("chelsea.png",),
    "test": ("rocket.jpg",),
}
PHOTO_WEIGHT, STROKE_WEIGHT = 0.6, 0.4
STROKES, STROKE_LEVEL = "sines", 1
SEEDS = {"train": 0, "validation": 1, "test": 2}


def photographs(names: tuple[str, ...]) -> list[np.ndarray]:
    """The photographs as float32 [H, W, 3] in [0, 1], halved so a crop holds more scene."""
    folder = Path(skimage.__file__).parent / "data"
    images = []
    for name in names:
        with Image.open(folder / name) as photo:
            rgb = photo.convert("RGB")
            rgb = rgb.resize((rgb.width // 2, rgb.height // 2), Image.Resampling.LANCZOS)
            images.append(np.asarray(rgb, dtype=np.float32) / 255.0)
    return images


def crops(images: list[np.ndarray], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random size x size crops [n, 3, size, size], the photos taken in turn."""
    out = np.empty((n, 3, size, size), dtype=np.float32)
    for i in range(n):
        image = images[i % len(images)]
        top = rng.integers(0, image.shape[0] - size + 1)
        left = rng.integers(0, image.shape[1] - size + 1)
        out[i] = image[top : top + size, left : left + size].transpose(2, 0, 1)
    return out


def write_split(out: Path, split: str, n: int, size: int) -> None:
    rng = np.random.default_rng(SEEDS[split])
    photo = PHOTO_WEIGHT * crops(photographs(PHOTOS[split]), n, size, rng)
    generator = torch.Generator().manual_seed(SEEDS[split])
    strokes = (
        STROKE_WEIGHT
        * draw_family(STROKES, n, STROKE_LEVEL, generator, ImageSpec(3, size, size)).numpy()
    )
    mixtures = photo + strokes
    folder = out / split
    folder.mkdir(parents=True)
    for i, mixture in enumerate(mixtures):
        pixels = np.round(np.clip(mixture, 0, 1).transpose(1, 2, 0) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")
    if split != "train":  # the training truth would be 600 MB that nothing may read
        (out / "truth").mkdir(exist_ok=True)
        np.save(out / "truth" / f"{split}.npy", np.stack([photo, strokes], axis=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="new directory for the folders")
    parser.add_argument("--size", type=int, default=64, help="crop side in pixels (default 64)")
    for split, default in (("train", 6000), ("validation", 500), ("test", 500)):
        parser.add_argument(f"--{split}", type=int, default=default, help=f"{split} mixtures")
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"{args.out} exists; give a new directory.", file=sys.stderr)
        return 2
    for split in PHOTOS:
        write_split(args.out, split, getattr(args, split), args.size)
    print(f"wrote {args.out}/train, validation, test and truth/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
