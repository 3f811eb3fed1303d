"""Which generator draws what: each learned generator's mean output mass beside its true part's.

Run: ``.venv/bin/python benchmarks/part_mass.py CHECKPOINT [CHECKPOINT ...] [--n 256]
[--json OUT]``. For each checkpoint, ``--n`` draws of every learned generator (latents of seed
0, eval mode) are summed over their pixels, as are the true parts of ``--n`` mixtures of the
model's validation split (the seed that chooses a run's method): a generator whose mass is near
zero has gone dark, and one above its part's draws the others' strokes too (docs/training.md
E12-E13, E22). Also the share of draws with more than ``VISIBLE`` pixels above 0.5. The test
split is never read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from published import command_line, publish

from demixgan.inference.api import load
from demixgan.inference.choice import CHOICE_SEED, validation_mixtures
from demixgan.io.checkpoints import read_sidecar
from demixgan.reports.experiment import run_record

#: Pixels above 0.5 that make a draw visible (a level-1 line of 28 pixels is well above).
VISIBLE = 5


def masses(checkpoint: Path, n: int) -> dict:
    """The learned generators' and the true parts' mean mass, and the share of visible draws."""
    trained = load(checkpoint)
    model = trained.model.eval()
    with torch.no_grad():
        drawn = model.learned_parts(model.sample_latents(n, torch.Generator().manual_seed(0)))
    _, truth = validation_mixtures(trained, n)
    names = list(model.learned)

    def per_part(parts: torch.Tensor) -> dict[str, float]:
        mass = parts.flatten(2).sum(2).mean(0)
        return {name: round(mass[k].item(), 2) for k, name in enumerate(names)}

    visible = (drawn.flatten(2) > 0.5).sum(2).gt(VISIBLE).float().mean(0)
    return {
        "checkpoint": checkpoint.as_posix(),
        "gan_steps": read_sidecar(checkpoint)["step"],
        "drawn_mass": per_part(drawn),
        "true_mass": per_part(truth),
        "visible_share": {name: round(visible[k].item(), 4) for k, name in enumerate(names)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    record = run_record(command_line())
    rows = [masses(checkpoint, args.n) for checkpoint in args.checkpoints]
    figures = {
        **record,
        "draws": {"n": args.n, "latent_seed": 0, "validation_seed": CHOICE_SEED},
        "rows": rows,
    }
    return publish(figures, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
