"""Amortized inference: a separator network trained on the superposition model's own samples.

This module says what a trained separator is (``Separator``, its permutation-invariant loss,
its checkpoint); training/separator.py trains one through the training engine.

A trained model is a sampler of (observation, parts) pairs: draw every latent from its prior and
every known component from its family, take the parts and the observation A(sum of parts).
A network trained on such pairs to return the parts estimates E[parts | observation] under the
model, the estimate with the least squared error, in one pass per observation. No clean part
of real data is used, so this stays within the paper's setting (generators learned from
mixtures, then inference); it is the latent fit's alternative where the fit's nonconvexity
limits it (two overlapping digits) or the measurements leave many solutions (compressive
sensing), and it is fast once trained.

The model's draws are not the data: a separator trained on them alone meets real mixtures whose
parts differ from the generators' (on digit + digit, in a probe, 16.2 dB where the generators'
own pairs give 23). Given the real training mixtures, a second phase closes most of that gap by
bootstrapped remixing (RemixIT, Tzinis et al. 2022): a frozen copy of the separator (the
teacher) splits real mixtures, the parts are recombined across the batch into new mixtures whose
parts are known, and the separator learns those beside fresh model draws; the teacher is
refreshed from the separator every ``teacher_every`` steps. Still no clean part is used.

Where the observations are compressive measurements A(y), the training mixtures are still whole
images: a separator of whole mixtures (far more accurate: on digit + 2 waves a digit error of
0.005 against 0.06 from 100 measurements) then serves as a fixed teacher, and the network
through A learns its remixed splits.

Parts drawn by one shared generator are exchangeable: the network cannot know which of two
digits is "first", so the loss takes the best assignment of its outputs within each group of
components that share a network (permutation-invariant training).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from demixgan.errors import DemixganError
from demixgan.evaluation.metrics import order_errors
from demixgan.inference.mixit import SlotGrouping
from demixgan.io import checkpoints
from demixgan.models.operators import MAX_SEED
from demixgan.models.superposition_model import SuperpositionModel
from demixgan.networks.separators import UNetSeparator
from demixgan.spec.image import ImageSpec
from demixgan.spec.validation import shown, whole


def exchangeable_groups(model: SuperpositionModel) -> list[list[int]]:
    """Indices of components (model order) that one shared generator draws; others alone."""
    groups: dict[int, list[int]] = {}
    for index, name in enumerate(model.names):
        key = id(model.generators[name]) if name in model.generators else -1 - index
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def peer_groups(model: SuperpositionModel, exchangeable_data: bool) -> list[list[int]]:
    """The groups of parts for what learns from the mixtures alone (the peers and the bound):
    all parts where the data's parts are exchangeable (two objects of any class), whichever
    generators the run has, since nothing in the data gives a part its slot (the clean parts'
    order is arbitrary: a bound learning it in a fixed order learns their mean); else
    ``exchangeable_groups``."""
    if exchangeable_data:
        return [list(range(len(model.names)))]
    return exchangeable_groups(model)


def assignments(groups: Sequence[Sequence[int]]) -> list[list[int]]:
    """Every reordering of the outputs that only permutes within groups.

    >>> assignments([[0, 1], [2]])
    [[0, 1, 2], [1, 0, 2]]
    """
    count = sum(len(group) for group in groups)
    orders = []
    for choice in itertools.product(*(itertools.permutations(group) for group in groups)):
        order = list(range(count))
        for group, permuted in zip(groups, choice, strict=True):
            for slot, source in zip(group, permuted, strict=True):
                order[slot] = source
        orders.append(order)
    return orders


def matched_squared_error(
    estimates: torch.Tensor, parts: torch.Tensor, orders: Sequence[Sequence[int]]
) -> torch.Tensor:
    """Per-observation mean squared error [B] under the best of ``orders`` of the estimates."""
    return order_errors(estimates, parts, orders).min(1).values


SEPARATOR_KIND = "separator"


class Separator(nn.Module):
    """A trained separator: ``separate(observations)`` -> parts [N, K, C, H, W] in the
    model's component order (known components included).

    ``matrix_seed`` names the Gaussian matrix whose measurements [N, m] it separates (m is the
    network's ``measurements``); None: it separates whole mixtures [N, C, H, W]. A
    ``grouping`` (a MixIT network's, inference/mixit.py) adds the network's M outputs into
    the K parts.
    """

    def __init__(
        self,
        network: UNetSeparator,
        names: Sequence[str],
        chunk: int = 512,
        matrix_seed: int | None = None,
        grouping: SlotGrouping | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.names = tuple(names)
        self.chunk = chunk
        self.matrix_seed = matrix_seed
        self.grouping = grouping

    @property
    def observes(self) -> str:
        """What it separates, in words (for errors and reports)."""
        if self.matrix_seed is None:
            return "whole mixtures"
        return (
            f"{self.network.measurements} measurements by the Gaussian matrix of seed "
            f"{self.matrix_seed}"
        )

    def check_operator(self, operator: nn.Module | None) -> None:
        """Refuse observations made by another operator than the one it learned."""
        seed = None if operator is None else getattr(operator, "seed", None)
        rows = 0 if operator is None else operator.matrix.shape[0]
        if (seed, rows) != (self.matrix_seed, getattr(self.network, "measurements", 0)):
            given = (
                "whole mixtures"
                if operator is None
                else (f"{rows} measurements by the Gaussian matrix of seed {seed}")
            )
            raise DemixganError(
                f"The separator was trained on {self.observes}, but these observations are "
                f"{given}: train a separator for them ('demixgan separator' with the same "
                "--measurements and --matrix-seed)."
            )

    def separate(self, observations: torch.Tensor) -> torch.Tensor:
        """Parts [N, K, C, H, W] in the order of ``names``."""
        outputs = self.outputs(observations)
        return outputs if self.grouping is None else self.grouping(outputs)

    @torch.no_grad()
    def outputs(self, observations: torch.Tensor) -> torch.Tensor:
        """The network's outputs [N, M, C, H, W] (M = K without a grouping)."""
        was_training = self.network.training
        self.network.eval()
        try:
            device = next(self.network.parameters(), torch.empty(0)).device
            return torch.cat(
                [
                    self.network(observations[begin : begin + self.chunk].to(device)).cpu()
                    for begin in range(0, observations.shape[0], self.chunk)
                ]
            )
        finally:
            self.network.train(was_training)


def check_teacher(teacher: Separator, model: SuperpositionModel) -> None:
    """A teacher splits the training mixtures as stored into the model's components."""
    if teacher.names != model.names:
        raise DemixganError(
            f"The teacher separator splits into {', '.join(teacher.names)}, but the model has "
            f"components {', '.join(model.names)}: train the teacher for this model."
        )
    if teacher.matrix_seed is not None:
        raise DemixganError(
            f"A teacher splits the training mixtures as they are stored, so it must separate "
            f"whole mixtures, but this one was trained on {teacher.observes}."
        )


def save_separator(
    separator: Separator, directory: str | os.PathLike, metadata: Mapping[str, Any]
) -> checkpoints.Checkpoint:
    """Write a separator (safetensors + JSON sidecar: its shape and component names)."""
    network = separator.network
    shape = {
        "components": network.components,
        "width": network.width,
        "measurements": network.measurements,
        "image": network.image.to_dict(),
    }
    meta = {
        **metadata,
        "separator_shape": shape,
        "separator_components": list(separator.names),
        "separator_matrix_seed": separator.matrix_seed,
        "separator_grouped": separator.grouping is not None,
    }
    modules = {"separator": network}
    if separator.grouping is not None:
        modules["grouping"] = separator.grouping
    return checkpoints.save_finished(directory, SEPARATOR_KIND, "separator", modules, meta)


def load_separator(path: str | os.PathLike) -> tuple[Separator, dict]:
    """A separator from its directory or files (CPU), and its sidecar; never runs code.

    The sidecar's description of the network is checked, and the network it describes is
    compared with the weights' header, before any tensor is read or allocated.
    """

    def fit(sidecar: dict) -> checkpoints.Fit:
        shape, image, names, _ = _separator_fields(sidecar, path)
        planned = checkpoints.plan(
            lambda: _modules(shape, image, len(names), sidecar), path, "a separator"
        )
        settings = ", ".join(f"{key} = {value}" for key, value in shape.items())
        return checkpoints.Fit(
            planned,
            what="the separator its sidecar describes",
            subject=lambda key: f"the sidecar's separator_shape ({settings})",
            remedy="The sidecar was edited or belongs to other weights; use another separator, "
            "or train a new one with 'demixgan separator'.",
        )

    weights, sidecar = checkpoints.load_finished(
        path, SEPARATOR_KIND, "a separator", "demixgan separator", fit=fit
    )
    shape, image, names, matrix_seed = _separator_fields(sidecar, path)
    modules = _modules(shape, image, len(names), sidecar)
    try:
        for key, module in modules.items():
            module.load_state_dict(weights[key])
    except (RuntimeError, KeyError) as exc:  # the header was checked; kept: no traceback
        raise DemixganError(
            f"The separator checkpoint '{path}' does not load into the network it describes "
            f"({exc}). Train a new one with 'demixgan separator'."
        ) from None
    grouping = modules.get("grouping")
    network = modules["separator"].eval()
    separator = Separator(network, names, matrix_seed=matrix_seed, grouping=grouping)
    return separator, sidecar


def _modules(shape: dict, image: ImageSpec, parts: int, sidecar: dict) -> dict[str, nn.Module]:
    """The modules a separator's sidecar describes: its network, and a MixIT grouping."""
    modules: dict[str, nn.Module] = {"separator": UNetSeparator(**shape, image=image)}
    if sidecar.get("separator_grouped") is True:
        modules["grouping"] = SlotGrouping(parts, shape["components"])
    return modules


def _separator_fields(
    sidecar: dict, path: str | os.PathLike
) -> tuple[dict[str, int], ImageSpec, list[str], int | None]:
    """Network shape, image spec, component names and matrix seed of a separator's sidecar,
    each checked: a sidecar may have been edited (a width of 2e9, names that are numbers)."""
    shape = sidecar.get("separator_shape")
    names = sidecar.get("separator_components")
    seed = sidecar.get("separator_matrix_seed")
    keys = ("components", "width", "measurements", "image")
    problem = None
    if not isinstance(shape, dict) or not {"components", "width"} <= set(shape) <= set(keys):
        problem = f"separator_shape must be a table of {', '.join(keys)}, not {shown(shape)}"
    else:
        for key, low in (("components", 1), ("width", 1), ("measurements", 0)):
            value = shape.get(key, low)
            if not whole(value) or value < low:
                problem = f"separator_shape.{key} must be an integer >= {low}, not {shown(value)}"
                break
    grouped = sidecar.get("separator_grouped", False)
    if problem is None and not isinstance(grouped, bool):
        problem = f"separator_grouped must be true or false, not {shown(grouped)}"
    if problem is None and not (
        isinstance(names, list)
        and all(isinstance(name, str) for name in names)
        and (len(names) <= shape["components"] if grouped else len(names) == shape["components"])
        and names
    ):
        problem = (
            f"separator_components must list the names of its {shape['components']} "
            f"components{' or fewer groups' if grouped else ''}, not {shown(names)}"
        )
    if problem is None and seed is not None and not (whole(seed) and 0 <= seed <= MAX_SEED):
        problem = f"separator_matrix_seed must be null or from 0 to {MAX_SEED}, not {shown(seed)}"
    if problem is not None:
        raise DemixganError(
            f"The separator checkpoint '{path}' does not describe a network this version "
            f"builds: {problem}. Its sidecar was edited or written by another program; train a "
            "new one with 'demixgan separator'."
        )
    image = ImageSpec.from_dict(shape.get("image"), f"'{path}'")
    return {key: shape[key] for key in keys[:3] if key in shape}, image, names, seed
