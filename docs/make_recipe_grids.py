"""Write docs/img/recipe_<name>.png: components and mixtures of every recipe (test split, seed 0).

Run: .venv/bin/python docs/make_recipe_grids.py
"""

from __future__ import annotations

from pathlib import Path

from demixgan.data.superposition import RECIPES, build_sampler, make_mixtures
from demixgan.reports.grids import save_panels

OUT = Path(__file__).parent / "img"


def main() -> None:
    for name in RECIPES:
        sampler = build_sampler(name, split="test")
        batch = make_mixtures(sampler, 16, seed=0)
        panels = [(label, batch.components[:, k]) for k, label in enumerate(sampler.names)]
        panels.append(("mixture", batch.mixtures))
        level = f", level {sampler.level}" if sampler.level else ""
        path = OUT / f"recipe_{name.replace('+', '_')}.png"
        save_panels(panels, path, title=f"{name}{level}")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
