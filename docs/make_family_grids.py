"""Write docs/img/family_<name>.png: one row per level 1..5, eight seeded samples per row.

Run from the repository root: ``.venv/bin/python docs/make_family_grids.py``. The figures are
seeded, so re-running the script reproduces them byte for byte on the same library versions.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from demixgan.data.families import FAMILIES, SignalFamily

LEVELS = (1, 2, 3, 4, 5)
PER_ROW = 8
SEED = 0
OUT_DIR = Path(__file__).resolve().parent / "img"


def draw_grid(family: SignalFamily, path: Path) -> None:
    """Save a levels x samples grid of ``family`` to ``path`` with a label on each row."""
    fig, axes = plt.subplots(
        len(LEVELS), PER_ROW, figsize=(PER_ROW * 0.8 + 0.5, len(LEVELS) * 0.8), dpi=100
    )
    generator = torch.Generator().manual_seed(SEED)
    for row, level in zip(axes, LEVELS, strict=True):
        batch = family.sample(PER_ROW, level, generator)
        for ax, image in zip(row, batch, strict=True):
            ax.imshow(image[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"k = {level}", rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(f"{family.name}: levels 1-5 (rows), seed {SEED}", fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.99, bottom=0.01, top=0.9, wspace=0.06, hspace=0.06)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, family in FAMILIES.items():
        path = OUT_DIR / f"family_{name}.png"
        draw_grid(family, path)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
