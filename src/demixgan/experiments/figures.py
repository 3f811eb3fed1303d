"""Figures that several experiments draw: separation grids and a run's evolution grids."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch

from demixgan.evaluation.metrics import align_each
from demixgan.evaluation.separation import PER_MIXTURE
from demixgan.inference.api import TrainedModel
from demixgan.inference.methods import FIT_ROW, GENERATED_ROW, REFINE_ROW, SEPARATOR_ROW
from demixgan.inference.tasks import Evaluation, Separation
from demixgan.reports.experiment import ResultFigure


def separation_panels(
    trained: TrainedModel, evaluation: Evaluation, separation: Separation, count: int
) -> list[tuple[str, torch.Tensor]]:
    """Truth, mixture, the GAN's parts, the generator outputs G(z), a separator's parts and
    the refined ones (where the evaluation had them) and ICA's parts."""
    batch, shown = separation.batch, slice(0, count)
    shown_rows = {
        "GAN": FIT_ROW,
        "G(z)": GENERATED_ROW,
        "separator": SEPARATOR_ROW,
        "separator + fit": REFINE_ROW,
    }
    rows = {row.method: row for row in evaluation.rows}
    order = next(rows[r] for r in shown_rows.values() if r in rows).matching
    truths = batch.components[shown]
    panels = [(f"{name} (truth)", truths[:, k]) for k, name in enumerate(order)]
    panels.append(("mixture", batch.mixtures[shown]))  # shown clipped to [0, 1]
    methods = [
        (label, separation.estimates[row])
        for label, row in shown_rows.items()
        if row in separation.estimates
    ]
    for label, parts in methods:
        if set(order.values()) == {PER_MIXTURE}:
            aligned = align_each(parts[shown], truths)
        else:
            aligned = parts[shown][:, [trained.component_names.index(e) for e in order.values()]]
        panels += [(f"{label}: {name}", aligned[:, k]) for k, name in enumerate(order)]
    ica = separation.estimates.get("ICA")
    if ica is not None:
        panels += [(f"ICA {k + 1}", ica[shown, k]) for k in range(ica.shape[1])]
    return panels


def evolution_figures(run_dir: Path, trained: TrainedModel, label: str) -> list[ResultFigure]:
    """Four of a run's per-epoch grids (first, two between, last): the paper's evolution figures.

    Every component and their sum for the same fixed latents, as training wrote them. The
    checkpoint that ships with demixgan keeps only its last grid, which stands alone then.
    """
    from demixgan.experiments.demo import asset, shipped_checkpoint

    grids = sorted((trained.checkpoint.parent.parent / "evolution").glob("epoch-*.png"))
    picked = sorted({grids[round(i * (len(grids) - 1) / 3)] for i in range(4)}) if grids else []
    captions = [f"{label}: every component for fixed latents, epoch {_epoch(g)}" for g in picked]
    if not picked and trained.checkpoint == shipped_checkpoint():
        picked = [asset("demo-evolution.png")]
        captions = [f"{label}: every component for fixed latents after training (shipped model)"]
    figures = []
    for grid, caption in zip(picked, captions, strict=True):
        target = run_dir / "figures" / f"evolution-{_slug(label)}-{grid.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(grid, target)
        figures.append(ResultFigure(target, caption))
    return figures


def _epoch(grid: Path) -> int:
    return int(grid.stem.split("-")[1])


def _slug(label: str) -> str:
    """A file-name part: "digit8+dress (DCGAN)" -> "digit8-dress-DCGAN"."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-")
