"""Amortized inference: a separator network trained on the superposition model's own samples.

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

import copy
import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from demixgan.errors import DemixganError
from demixgan.inference.consistency import project_onto_mixture
from demixgan.models.superposition_model import SuperpositionModel
from demixgan.networks.separators import UNetSeparator
from demixgan.training import checkpoints


@dataclass(frozen=True)
class SeparatorOptions:
    """Training budget of a separator; the defaults took 33.8 minutes in demix-train's report
    run (two threads, beside other jobs; RESULTS.md)."""

    steps: int = 3000  # on the model's own draws
    batch_size: int = 64
    lr: float = 2e-3  # the one-cycle schedule's peak
    width: int = 32
    remix_steps: int = 1500  # then remixing real training mixtures (where they are given)
    remix_fraction: float = 0.5  # of each remixing batch; the rest are model draws
    remix_lr: float = 3e-4
    teacher_every: int = 250
    seed: int = 0
    chunk: int = 512  # observations per forward pass when separating

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be >= 1 (got {value})"
            for name, value in (
                ("steps", self.steps),
                ("batch_size", self.batch_size),
                ("width", self.width),
                ("teacher_every", self.teacher_every),
                ("chunk", self.chunk),
            )
            if value < 1
        ]
        if self.remix_steps < 0:
            problems.append(f"remix_steps must be >= 0 (got {self.remix_steps})")
        if not 0 < self.remix_fraction <= 1:
            problems.append(f"remix_fraction must be in (0, 1] (got {self.remix_fraction})")
        if not (self.lr > 0 and self.remix_lr > 0):
            problems.append(f"the learning rates must be > 0 (got {self.lr}, {self.remix_lr})")
        if problems:
            raise DemixganError("Invalid separator options: " + "; ".join(problems) + ".")


def exchangeable_groups(model: SuperpositionModel) -> list[list[int]]:
    """Indices of components (model order) that one shared generator draws; others alone."""
    groups: dict[int, list[int]] = {}
    for index, name in enumerate(model.names):
        key = id(model.generators[name]) if name in model.generators else -1 - index
        groups.setdefault(key, []).append(index)
    return list(groups.values())


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
    errors = torch.stack(
        [(estimates[:, order] - parts).pow(2).flatten(1).mean(1) for order in orders]
    )
    return errors.min(0).values


SEPARATOR_KIND = "separator"


class Separator(nn.Module):
    """A trained separator: ``separate(observations)`` -> parts [N, K, 1, 28, 28] in the
    model's component order (known components included).

    ``matrix_seed`` names the Gaussian matrix whose measurements [N, m] it separates (m is the
    network's ``measurements``); None: it separates whole mixtures [N, 1, 28, 28].
    """

    def __init__(
        self,
        network: UNetSeparator,
        names: Sequence[str],
        chunk: int = 512,
        matrix_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.names = tuple(names)
        self.chunk = chunk
        self.matrix_seed = matrix_seed

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

    @torch.no_grad()
    def separate(self, observations: torch.Tensor) -> torch.Tensor:
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


def train_separator(
    model: SuperpositionModel,
    options: SeparatorOptions | None = None,
    *,
    operator: nn.Module | None = None,
    mixtures: torch.Tensor | None = None,
    consistent: bool = False,
    start: Separator | None = None,
    teacher: Separator | None = None,
    progress: Callable[[int], None] | None = None,
) -> Separator:
    """Train a separator on fresh draws of ``model`` (its operator, or ``operator`` instead).

    ``mixtures`` (real training mixtures [N, 1, H, W], measured by the operator here) add the
    remixing phase; ``consistent`` projects the teacher's parts onto each mixture first (where
    the parts are known to sum to it: unclipped mixtures, the identity operator). ``start``
    continues a trained separator (a copy) with the remixing phase alone. ``teacher`` (a
    separator of the mixtures as stored, e.g. every pixel where the network learns compressed
    measurements of them) splits the mixtures instead of the network itself, and stays fixed:
    the training mixtures are fully observed even where test observations are not. Seeded by
    ``options.seed`` alone: the same model, data and options give the same network on CPU.
    ``progress(k)`` is called as k more steps are done.
    """
    options = options or SeparatorOptions()
    if teacher is not None:
        check_teacher(teacher, model)
    operator = operator if operator is not None else model.operator
    measurements = getattr(operator, "matrix", None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        network = (
            copy.deepcopy(start.network)
            if start is not None
            else UNetSeparator(
                len(model.names),
                width=options.width,
                measurements=0 if measurements is None else measurements.shape[0],
                lift_init=None if measurements is None else measurements.T,
            )
        )
    trainer = _Trainer(model, operator, network, options, progress)
    matrix_seed = None if measurements is None else operator.seed
    was_training = model.training
    model.eval()
    try:
        if start is None:
            trainer.learn_draws()
        if mixtures is not None and options.remix_steps:
            trainer.learn_remixes(mixtures, consistent, teacher)
    finally:
        model.train(was_training)
    return Separator(network, model.names, options.chunk, matrix_seed)


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


class _Trainer:
    """The two phases of ``train_separator`` over one network and one stream of draws."""

    def __init__(self, model, operator, network, options: SeparatorOptions, progress) -> None:
        self.model, self.operator, self.network = model, operator, network
        self.options, self.progress = options, progress
        self.orders = assignments(exchangeable_groups(model))
        self.draws = torch.Generator().manual_seed(options.seed + 1)

    def learn_draws(self) -> None:
        optimizer = torch.optim.Adam(self.network.parameters(), lr=self.options.lr / 2)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.options.lr, total_steps=self.options.steps
        )
        for _ in range(self.options.steps):
            self._step(optimizer, self._model_parts(self.options.batch_size))
            schedule.step()

    def learn_remixes(
        self, mixtures: torch.Tensor, consistent: bool, fixed: Separator | None
    ) -> None:
        options = self.options
        optimizer = torch.optim.Adam(self.network.parameters(), lr=options.remix_lr)
        real = max(1, round(options.batch_size * options.remix_fraction))
        teacher = None if fixed is not None else copy.deepcopy(self.network).eval()
        for step in range(1, options.remix_steps + 1):
            with torch.no_grad():
                chosen = mixtures[torch.randint(0, len(mixtures), (real,), generator=self.draws)]
                parts = (
                    fixed.separate(chosen) if teacher is None else teacher(self.operator(chosen))
                )
                if consistent:
                    parts = project_onto_mixture(parts, chosen)
                remixed = torch.stack(
                    [
                        parts[:, k]
                        if k == 0
                        else parts[torch.randperm(real, generator=self.draws), k]
                        for k in range(parts.shape[1])
                    ],
                    dim=1,
                )
            drawn = self._model_parts(options.batch_size - real)
            self._step(optimizer, torch.cat([remixed, drawn]))
            if teacher is not None and step % options.teacher_every == 0:
                teacher = copy.deepcopy(self.network).eval()

    def _model_parts(self, n: int) -> torch.Tensor:
        with torch.no_grad():
            latents = self.model.sample_latents(n, self.draws)
            known = self.model.sample_known(n, self.draws)
            return self.model.components(latents, known)

    def _step(self, optimizer: torch.optim.Optimizer, parts: torch.Tensor) -> None:
        with torch.no_grad():
            observations = self.operator(parts.sum(1))
        self.network.train()
        loss = matched_squared_error(self.network(observations), parts, self.orders).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if self.progress is not None:
            self.progress(1)


def save_separator(
    separator: Separator, directory: str | os.PathLike, metadata: Mapping[str, Any]
) -> checkpoints.Checkpoint:
    """Write a separator (safetensors + JSON sidecar: its shape and component names)."""
    network = separator.network
    shape = {
        "components": network.components,
        "width": network.width,
        "measurements": network.measurements,
    }
    meta = {
        **metadata,
        "separator_shape": shape,
        "separator_components": list(separator.names),
        "separator_matrix_seed": separator.matrix_seed,
    }
    return checkpoints.save_finished(
        directory, SEPARATOR_KIND, "separator", {"separator": network}, meta
    )


def load_separator(path: str | os.PathLike) -> tuple[Separator, dict]:
    """A separator from its directory or files (CPU), and its sidecar; never runs code."""
    weights, sidecar = checkpoints.load_finished(
        path, SEPARATOR_KIND, "a separator", "demixgan separator"
    )
    try:
        network = UNetSeparator(**sidecar["separator_shape"])
        network.load_state_dict(weights["separator"])
        names = [str(name) for name in sidecar["separator_components"]]
        matrix_seed = sidecar.get("separator_matrix_seed")
    except (KeyError, TypeError, RuntimeError) as exc:
        raise DemixganError(
            f"The separator checkpoint '{path}' does not describe a network this version builds "
            f"({type(exc).__name__}: {exc}). Train a new one with 'demixgan separator'."
        ) from None
    return Separator(network.eval(), names, matrix_seed=matrix_seed), sidecar
