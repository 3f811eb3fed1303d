"""Figures that several experiments draw: the separation grid of an evaluation."""

from __future__ import annotations

import torch

from demixgan.inference.api import TrainedModel
from demixgan.inference.tasks import Evaluation, Separation


def separation_panels(
    trained: TrainedModel, evaluation: Evaluation, separation: Separation, count: int
) -> list[tuple[str, torch.Tensor]]:
    """Truth, mixture, the GAN's parts, the generator outputs G(z) and ICA's parts."""
    batch, shown = separation.batch, slice(0, count)
    order = {row.method: row for row in evaluation.rows}["demixing-GAN"].matching
    panels = [(f"{name} (truth)", batch.components[shown, k]) for k, name in enumerate(order)]
    panels.append(("mixture", batch.mixtures[shown]))  # shown clipped to [0, 1]
    for label, parts in (("GAN", separation.estimates), ("G(z)", separation.generated)):
        for truth_name, estimate_name in order.items():
            k = trained.component_names.index(estimate_name)
            panels.append((f"{label}: {truth_name}", parts[shown, k]))
    if separation.ica is not None:
        for k in range(separation.ica.shape[1]):
            panels.append((f"ICA {k + 1}", separation.ica[shown, k]))
    return panels
