"""The separator step of the training engine: a network that splits observations in one pass.

A trained superposition model samples (observation, parts) pairs for free; the separator
learns them (phase 1, ``steps`` on the model's own draws, one-cycle Adam), then closes the gap
to real data by bootstrapped remixing of the run's training mixtures (phase 2, RemixIT: a
frozen teacher splits real mixtures, the parts are recombined across the batch into mixtures
whose parts are known). No clean part is used. inference/amortized.py holds what a trained
separator is (``Separator``, its loss and its checkpoint); this module trains one, through
the engine, so a killed ``demixgan separator`` run resumes exactly (``--resume DIR``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from demixgan.errors import DemixganError
from demixgan.inference.amortized import (
    Separator,
    assignments,
    check_teacher,
    exchangeable_groups,
    load_separator,
    matched_squared_error,
    peer_groups,
    save_separator,
)
from demixgan.inference.api import TrainedModel
from demixgan.inference.choice import PEERS
from demixgan.inference.consistency import project_onto_mixture
from demixgan.inference.mixit import SlotGrouping, mixit_loss
from demixgan.inference.options import SeparatorOptions
from demixgan.io.checkpoints import latest_checkpoint
from demixgan.models.operators import GaussianOperator, mix
from demixgan.models.superposition_model import SuperpositionModel
from demixgan.networks.precision import autocast
from demixgan.networks.separators import UNetSeparator
from demixgan.spec.factory import load_training_data, load_training_parts
from demixgan.training import engine
from demixgan.training.distributed import Distributed

#: What teaches a separator in its first phase: the model's own draws (the demixing-GAN's
#: separator), the clean parts of the training mixtures (the supervised upper bound), mixtures
#: of two training mixtures under the MixIT loss (the unsupervised peer), or a fixed teacher's
#: splits of the training mixtures, remixed (RemixIT's student, with no GAN).
TEACHINGS = ("draws", "clean", "mixit", "teacher")
#: Where a compressive separator's teacher of whole mixtures trains, inside its run.
TEACHER_DIR = "teacher"
RUN_KIND = "separator-run"
#: Training mixtures whose MixIT outputs fit the grouping into parts.
GROUPING_MIXTURES = 2000


class SeparatorTask:
    """The two phases over one network and one stream of draws (an engine.TrainingTask)."""

    shown: ClassVar[dict[str, str]] = {"loss": "loss"}
    dist = Distributed()

    def __init__(
        self,
        model: SuperpositionModel,
        options: SeparatorOptions,
        *,
        operator: nn.Module | None = None,
        mixtures: torch.Tensor | None = None,
        consistent: bool = False,
        start: Separator | None = None,
        teacher: Separator | None = None,
        teaching: str = "draws",
        clean: torch.Tensor | None = None,
        groups: Sequence[Sequence[int]] | None = None,
        device: torch.device | None = None,
    ) -> None:
        if teacher is not None:
            check_teacher(teacher, model)
        needs = {"clean": clean, "mixit": mixtures, "teacher": teacher}
        if teaching not in TEACHINGS or needs.get(teaching, model) is None:
            raise ValueError(f"teaching {teaching!r} needs its data (one of {TEACHINGS})")
        if options.max_level and not model.known:
            raise DemixganError(
                f"--max-level {options.max_level} draws a known corruption at levels from 1 to "
                f"{options.max_level}, but this model has none (its components are all learned: "
                "a demixing-GAN). Leave --max-level out, or train the separator of a "
                "denoising-GAN run."
            )
        self.model, self.options, self.teaching, self.clean = model, options, teaching, clean
        # Draws stay on the CPU generator (the same stream on every device); steps run here.
        self.device = device or torch.device("cpu")
        self.operator = operator if operator is not None else model.operator
        measurements = getattr(self.operator, "matrix", None)
        self.matrix_seed = None if measurements is None else self.operator.seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            self.network = (
                copy.deepcopy(start.network)
                if start is not None
                else UNetSeparator(
                    len(model.names) * (2 if teaching == "mixit" else 1),
                    image=model.image,
                    width=options.width,
                    measurements=0 if measurements is None else measurements.shape[0],
                    lift_init=None if measurements is None else measurements.T,
                )
            ).to(self.device)
        self.mixtures, self.consistent, self.fixed = mixtures, consistent, teacher
        self.orders = assignments(groups or exchangeable_groups(model))
        self.draws = torch.Generator().manual_seed(options.seed + 1)
        self.draw_steps = 0 if start is not None else options.steps
        remixing = mixtures is not None and options.remix_steps > 0
        if teaching in ("clean", "mixit"):  # one phase, the whole budget
            self.draw_steps, remixing = options.steps + options.remix_steps, False
        self.total_steps = self.draw_steps + (options.remix_steps if remixing else 0)
        self.step = 0
        self.name = "separator" if self.matrix_seed is None else "compressive separator"
        self.batch_size, self.log_every = options.batch_size, options.log_every
        parameters = list(self.network.parameters())
        self.draw_optimizer = torch.optim.Adam(parameters, lr=options.lr / 2)
        self.schedule = (
            torch.optim.lr_scheduler.OneCycleLR(
                self.draw_optimizer, max_lr=options.lr, total_steps=self.draw_steps
            )
            if self.draw_steps
            else None
        )
        self.remix_optimizer = torch.optim.Adam(parameters, lr=options.remix_lr)
        self.teacher: nn.Module | None = None  # the network's frozen copy while remixing

    # -- one step ------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        if self.step < self.draw_steps:
            loss = self._first_phase_step(self.options.batch_size)
            self.schedule.step()
        else:
            loss = self._remix_step(self.step - self.draw_steps + 1)
        self.step += 1
        return {"loss": loss}

    def _first_phase_step(self, batch: int) -> float:
        if self.teaching == "mixit":
            return self._mixit_step(batch)
        if self.teaching == "clean":
            parts = self._clean_parts(batch)
        elif self.teaching == "teacher":
            parts = self._remixed(self.fixed.separate, batch)
        else:
            parts = self._model_parts(batch)
        return self._learn(self.draw_optimizer, parts)

    def _remix_step(self, step: int) -> float:
        """Remixing step ``step`` (1-based): split real mixtures, recombine, learn."""
        options = self.options
        # With no model to draw from (a peer), the whole batch is remixed.
        share = options.remix_fraction if self.teaching == "draws" else 1.0
        real = max(1, round(options.batch_size * share))
        if step == 1 and (self.fixed is None or self.teaching == "teacher"):
            self.teacher = copy.deepcopy(self.network).eval()
        split = (
            self.fixed.separate
            if self.teacher is None
            else lambda chosen: self.teacher(self.operator(chosen))
        )
        remixed = self._remixed(split, real)
        drawn = self._model_parts(options.batch_size - real)
        loss = self._learn(self.remix_optimizer, torch.cat([remixed, drawn]))
        if self.teacher is not None and step % options.teacher_every == 0:
            self.teacher = copy.deepcopy(self.network).eval()
        return loss

    @torch.no_grad()
    def _remixed(self, split, real: int) -> torch.Tensor:
        """``real`` training mixtures split by ``split``, their parts recombined across them."""
        picks = torch.randint(0, len(self.mixtures), (real,), generator=self.draws)
        chosen = self.mixtures[picks].to(self.device)
        parts = split(chosen).to(self.device)
        if self.consistent:
            parts = project_onto_mixture(parts, chosen)
        return torch.stack(
            [
                parts[:, k]
                if k == 0
                else parts[torch.randperm(real, generator=self.draws).to(self.device), k]
                for k in range(parts.shape[1])
            ],
            dim=1,
        )

    def _clean_parts(self, n: int) -> torch.Tensor:
        """Clean training parts, each component from an independently drawn training mixture."""
        count = len(self.clean)
        picks = torch.randint(0, count, (n, self.clean.shape[1]), generator=self.draws)
        return self.clean[picks, torch.arange(self.clean.shape[1])].to(self.device)

    def _mixit_step(self, batch: int) -> float:
        """MixIT: separate the sum of two training mixtures into 2K outputs that must add up,
        in the best grouping, to the two mixtures (inference/mixit.py)."""
        picks = torch.randint(0, len(self.mixtures), (batch, 2), generator=self.draws)
        pairs = self.mixtures[picks].to(self.device)  # [B, 2, C, H, W]
        self.network.train()
        loss = mixit_loss(self._forward(pairs.sum(1)), pairs).mean()
        self.draw_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.draw_optimizer.step()
        return loss.item()

    def _model_parts(self, n: int) -> torch.Tensor:
        if n == 0:
            return torch.empty(
                0, len(self.model.names), *self.model.image.shape, device=self.device
            )
        with torch.no_grad():
            latents = self.model.sample_latents(n, self.draws)
            known = self.model.sample_known(n, self.draws, self.options.max_level)
            return self.model.components(
                {name: z.to(self.device) for name, z in latents.items()},
                {name: c.to(self.device) for name, c in known.items()},
            )

    def _learn(self, optimizer: torch.optim.Optimizer, parts: torch.Tensor) -> float:
        with torch.no_grad():
            observations = mix(parts, self.operator)
        self.network.train()
        loss = matched_squared_error(self._forward(observations), parts, self.orders).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    def _forward(self, observations: torch.Tensor) -> torch.Tensor:
        """The network's training pass, in the options' precision (its outputs float32)."""
        with autocast(self.device, self.options.precision):
            return self.network(observations)

    # -- state ---------------------------------------------------------------------------
    def separator(self) -> Separator:
        """The trained separator; a MixIT network's with its grouping, fitted on the outputs of
        up to ``GROUPING_MIXTURES`` training mixtures (no truth)."""
        separator = Separator(self.network, self.model.names, self.options.chunk, self.matrix_seed)
        if self.teaching != "mixit":
            return separator
        outputs = separator.outputs(self.mixtures[:GROUPING_MIXTURES])
        separator.grouping = SlotGrouping.fit(outputs, len(self.model.names))
        return separator

    def log_fields(self, done: int) -> dict[str, Any]:
        return {"phase": "draws" if done <= self.draw_steps else "remixing"}

    def after_step(self, done: int) -> bool:
        return done % self.options.checkpoint_every == 0 or done == self.total_steps

    def modules(self) -> dict[str, nn.Module]:
        if self.teacher is None:
            return {"separator": self.network}
        return {"separator": self.network, "teacher": self.teacher}

    def metadata(self) -> dict[str, Any]:
        return {
            "kind": RUN_KIND,
            "separator_components": list(self.model.names),
            "separator_matrix_seed": self.matrix_seed,
            "teaching": self.teaching,
            "options": asdict(self.options),
        }

    def resume_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "draws": self.draws.get_state(),
            "draw_optimizer": self.draw_optimizer.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "remix_optimizer": self.remix_optimizer.state_dict(),
        }

    def check_checkpoint(self, metadata: Mapping[str, Any]) -> list[str]:
        """Only a separator run's checkpoint, for the same components, continues this one."""
        found = (metadata.get("kind"), metadata.get("separator_components"))
        if found != (RUN_KIND, list(self.model.names)):
            raise DemixganError(
                f"The checkpoint to resume is a {found[0] or 'untyped'} checkpoint for the "
                f"components {found[1]}, not a separator run's for {list(self.model.names)}: "
                "the directory belongs to another run. Resume it with the command that wrote "
                "it, or start a new separator run with -o NEW_DIR."
            )
        return []

    def restore(self, weights: Mapping[str, dict[str, torch.Tensor]], state: dict) -> None:
        step = state.get("step")
        if not isinstance(step, int) or not 0 <= step <= self.total_steps:
            raise DemixganError(
                f"The separator run's checkpoint is at step {step!r}, outside this run's "
                f"0..{self.total_steps} steps: it belongs to another run. Start a new one."
            )
        self.network.load_state_dict(weights["separator"])
        if "teacher" in weights:
            self.teacher = copy.deepcopy(self.network).eval()
            self.teacher.load_state_dict(weights["teacher"])
        self.draws.set_state(state["draws"])
        self.draw_optimizer.load_state_dict(state["draw_optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        self.remix_optimizer.load_state_dict(state["remix_optimizer"])
        self.step = step

    def non_finite(self, what: str) -> DemixganError:
        return DemixganError(
            f"Training the separator stopped at step {self.step}: the {what} became NaN or "
            "infinite. Lower --lr or --remix-lr and train it again."
        )


def train_separator(
    model: SuperpositionModel,
    options: SeparatorOptions | None = None,
    *,
    operator: nn.Module | None = None,
    mixtures: torch.Tensor | None = None,
    consistent: bool = False,
    start: Separator | None = None,
    teacher: Separator | None = None,
    teaching: str = "draws",
    clean: torch.Tensor | None = None,
    groups: Sequence[Sequence[int]] | None = None,
    progress: engine.Progress | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    device: torch.device | None = None,
) -> Separator:
    """Train a separator on fresh draws of ``model`` (its operator, or ``operator`` instead).

    ``teaching`` (``TEACHINGS``) replaces the draws of the first phase: "clean" learns the
    ``clean`` parts [N, K, C, H, W], "mixit" the ``mixtures`` under the MixIT loss (both over
    the whole budget, steps + remix steps), "teacher" the ``teacher``'s remixed splits of the
    ``mixtures`` (then the remixing phase by its own copy); the model then only gives the
    components' names, image spec and operator.

    ``mixtures`` (real training mixtures [N, C, H, W], measured by the operator here) add the
    remixing phase; ``consistent`` projects the teacher's parts onto each mixture first (where
    the parts are known to sum to it: unclipped mixtures, the identity operator). ``start``
    continues a trained separator (a copy) with the remixing phase alone. ``teacher`` (a
    separator of the mixtures as stored, e.g. every pixel where the network learns compressed
    measurements of them) splits the mixtures instead of the network itself, and stays fixed:
    the training mixtures are fully observed even where test observations are not. Seeded by
    ``options.seed`` alone: the same model, data and options give the same network on CPU.
    With ``run_dir`` the engine checkpoints it there (``resume`` continues the newest one).
    ``groups`` (indices of parts) are learned in whichever order fits best within each group
    (default: the parts one shared generator draws, ``exchangeable_groups``).
    ``progress(k)`` is called as k more steps are done. ``device`` (a GPU) runs the steps
    there, with the model, operator and teacher moved to it for the run and back after; the
    draws come from the same CPU stream, and the separator is returned on the CPU.
    """
    device = device or torch.device("cpu")
    moved = [module for module in (model, operator, teacher) if module is not None]
    was_training = model.training
    try:
        for module in moved:
            module.to(device)
        task = SeparatorTask(
            model,
            options or SeparatorOptions(),
            operator=operator,
            mixtures=mixtures,
            consistent=consistent,
            start=start,
            teacher=teacher,
            teaching=teaching,
            clean=clean,
            groups=groups,
            device=device,
        )
        model.eval()
        engine.run(task, run_dir, resume=resume, progress=progress or False, keep_last=2)
        return task.separator().cpu()
    finally:
        model.train(was_training)
        for module in moved:
            module.cpu()


def train_model_separator(
    trained: TrainedModel,
    options: SeparatorOptions | None = None,
    *,
    operator: GaussianOperator | None = None,
    teacher: Separator | None = None,
    progress: engine.Progress | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    device: torch.device | None = None,
) -> Separator:
    """A separator for a trained model's observations, or their measurements by ``operator``.

    Trained on the model's own draws, then by remixing the run's training mixtures (rebuilt
    from its config, as training built them); a run trained on clean images (a vanilla GAN)
    has no mixtures to remix. The training mixtures are whole images, so under an
    ``operator`` a separator of whole mixtures (``teacher``, else one trained first with the
    same options, in ``run_dir/teacher`` when there is a run directory) splits them for the
    remixing: in cs at m = 100 it took the digit error from 0.0557 (the network's own splits)
    to 0.0314 (RESULTS.md).
    """
    mixtures = load_training_data(trained.config).observations if trained.remixable else None
    if operator is not None and mixtures is not None and teacher is None:
        teacher = _teacher(trained, options, progress, run_dir, resume, device)
    return train_separator(
        trained.model,
        options,
        operator=operator,
        mixtures=mixtures,
        consistent=trained.model.operator.observes_sum,
        teacher=teacher,
        progress=progress,
        run_dir=run_dir,
        resume=resume,
        device=device,
    )


def train_peer(
    trained: TrainedModel,
    kind: str,
    options: SeparatorOptions | None = None,
    *,
    mixit: Separator | None = None,
    progress: engine.Progress | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    device: torch.device | None = None,
) -> Separator:
    """A separator of the same network and budget as the run's, taught without the GAN.

    ``mixit``: MixIT on mixtures of two training mixtures (2K outputs grouped into K parts by
    a rule fitted without truth). ``remixit``: RemixIT with no GAN, the student taught first
    by the ``mixit`` peer's remixed splits (``steps``), then by its own copy
    (``remix_steps``). ``supervised``: the clean parts of the same training mixtures, the
    upper bound of what the network can learn from this data.
    """
    if kind not in PEERS:
        raise DemixganError(f"The peer is one of {', '.join(PEERS)}, not {kind!r}.")
    if not trained.remixable:
        raise DemixganError(
            "The peers learn from the run's training mixtures, and this run trained on clean "
            "images: train a demixing run first."
        )
    mixtures = load_training_data(trained.config).observations  # a user's: read per batch
    model = trained.model
    common = {
        "groups": peer_groups(model, trained.exchangeable_data),
        "progress": progress,
        "run_dir": run_dir,
        "resume": resume,
        "device": device,
    }
    if kind == "supervised":
        clean = load_training_parts(trained.config)
        return train_separator(model, options, teaching="clean", clean=clean, **common)
    if kind == "mixit":
        return train_separator(model, options, mixtures=mixtures, teaching="mixit", **common)
    if mixit is None:
        raise DemixganError("The RemixIT peer is taught by the MixIT peer: train that first.")
    return train_separator(
        model,
        options,
        mixtures=mixtures,
        consistent=model.operator.observes_sum,
        teacher=mixit,
        teaching="teacher",
        **common,
    )


def _teacher(trained, options, progress, run_dir: Path | None, resume: bool, device) -> Separator:
    """The separator of whole mixtures that splits a compressive separator's training
    mixtures: trained in ``run_dir/teacher`` (kept there, so a resumed run reuses it)."""
    if run_dir is None:
        return train_model_separator(trained, options, progress=progress, device=device)
    folder = run_dir / TEACHER_DIR
    finished = finished_separator(folder) if resume else None
    if finished is not None:
        return finished
    folder.mkdir(parents=True, exist_ok=True)
    teacher = train_model_separator(
        trained, options, progress=progress, run_dir=folder, resume=resume, device=device
    )
    save_separator(teacher, folder, {"trained_for": str(trained.checkpoint), "teacher": True})
    return teacher


def finished_separator(run_dir: Path) -> Separator | None:
    """The separator a run finished with (saved beside its checkpoints), if it did."""
    if latest_checkpoint(run_dir) is None:
        return None
    return load_separator(run_dir)[0]
