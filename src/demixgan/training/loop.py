"""The GAN step of the training engine, one for vanilla GAN, denoising-GAN and demixing-GAN.

The three differ only in their components: the fake observation is always
operator(sum of components), and the discriminator compares it with the real observations.
Every random draw of step t comes from a generator seeded by (seed, t), so a run resumed from a
checkpoint continues exactly as the uninterrupted run would have (on CPU), and the processes of
a torchrun job each take their slice of the same global batch. Resume, logs, checkpoints and
the NaN stop are the engine's (training/engine.py), shared with the separator and classifier.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from demixgan import __version__
from demixgan.errors import DemixganError
from demixgan.io import checkpoints, locks
from demixgan.io.run_files import (
    CHECKPOINT_DIR,
    EVOLUTION_DIR,
    check_new_run_dir,
    prepare_new_run,
)
from demixgan.networks.precision import autocast
from demixgan.reports.grids import save_panels
from demixgan.spec.config import RunConfig, config_to_dict, parse_config
from demixgan.spec.device import resolve_device
from demixgan.spec.factory import (
    build_model,
    build_run_discriminator,
    info_code_dims,
    load_training_data,
)
from demixgan.training import engine
from demixgan.training.distributed import (
    finish_together,
    init_distributed,
    shutdown,
)
from demixgan.training.engine import derived_generator
from demixgan.training.losses import discriminator_loss, generator_loss, r1_penalty

EVOLUTION_SAMPLES = 64
RUN_KIND = "gan-run"
#: Settings a resumed run may change in config.json: the optimisers' hyperparameters (set on
#: the restored optimisers), the run's length, and how often it logs and checkpoints. Any other
#: change alters the networks' shapes, the data or the loss, and is refused.
RESUMABLE_CHANGES = frozenset(
    {
        "name",
        "description",
        "train.lr_g",
        "train.lr_d",
        "train.beta1",
        "train.beta2",
        "train.epochs",
        "train.max_steps",
        "train.checkpoint_every",
        "train.keep_last",
        "train.keep_every",
        "train.log_every",
        "train.snapshot_every_epoch",
        "train.checkpoint_every_epoch",
        "train.device",
    }
)


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    step: int
    epoch: int
    checkpoint: Path | None


#: About the most epoch-end outputs (evolution grid, checkpoint) a run writes: 367 digit 8s
#: make 1,800 epochs of 5 steps, where a grid and a checkpoint each epoch cost a third again of
#: the steps' time. Neither changes what is learned (the grid draws from its own generator).
EPOCH_OUTPUTS = 100


@dataclass
class _Schedule:
    steps_per_epoch: int
    total_steps: int

    @classmethod
    def of(cls, config: RunConfig, count: int, *, announce: bool = True) -> _Schedule:
        """The run's epochs and steps; ``announce``: warn of an epoch cap (one process of a
        distributed job, not each)."""
        train = config.train
        per_epoch = count // train.batch_size
        total = per_epoch * train.epochs
        if 0 < train.max_steps <= total:
            total = train.max_steps
        elif train.max_steps > total and announce:
            # A config's max_steps is its budget; a silent epoch cap trained fewer steps than
            # its comment said (367 digit 8s: 1,000 epochs of 5 steps ended at 5,000 of 6,000).
            warnings.warn(
                f"train.max_steps = {train.max_steps} will not be reached: {train.epochs} "
                f"epochs of {per_epoch} steps ({count} observations, batch {train.batch_size}) "
                f"end the run at step {total}. Set train.epochs to at least "
                f"{-(-train.max_steps // per_epoch)} to train {train.max_steps} steps.",
                stacklevel=3,
            )
        return cls(per_epoch, total)

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def ends_epoch(self, step: int) -> bool:
        return (step + 1) % self.steps_per_epoch == 0

    def ends_shown_epoch(self, step: int) -> bool:
        """An epoch end that gets the epoch's outputs: the first epoch's, then every k-th,
        so that a run writes about ``EPOCH_OUTPUTS`` of them at most, whatever its epochs."""
        epochs = -(-self.total_steps // self.steps_per_epoch)
        every = -(-epochs // EPOCH_OUTPUTS)
        epoch = self.epoch_of(step) + 1
        return self.ends_epoch(step) and (epoch == 1 or epoch % every == 0)


class Trainer:
    """The GAN task: model, discriminator, optimisers and data of one run (engine.TrainingTask)."""

    #: Progress-bar labels of the logged losses.
    shown: ClassVar[dict[str, str]] = {"d": "loss_d", "g": "loss_g"}

    def __init__(self, config: RunConfig, run_dir: Path, *, device: str | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self.device = resolve_device(device or config.train.device)
        self.dist = init_distributed(self.device)
        if config.train.batch_size % self.dist.world_size:
            raise DemixganError(
                f"train.batch_size {config.train.batch_size} must divide evenly over "
                f"{self.dist.world_size} processes."
            )
        self.data = load_training_data(config)
        torch.manual_seed(config.seed)
        self.model = build_model(config, self.data.image).to(self.device)
        self.discriminator = build_run_discriminator(config, self.data.image).to(self.device)
        self.code_dims = info_code_dims(config)
        self.mass_weights = {
            k: c.mass_weight for k, c in enumerate(config.components) if c.mass_weight > 0
        }
        self.schedule = _Schedule.of(
            config, self.data.observations.shape[0], announce=self.dist.is_main
        )
        train = config.train
        self.opt_g = torch.optim.Adam(
            self.model.parameters(), lr=train.lr_g, betas=(train.beta1, train.beta2)
        )
        self.opt_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=train.lr_d, betas=(train.beta1, train.beta2)
        )
        self.step = 0
        self.name = config.name
        self.total_steps = self.schedule.total_steps
        self.batch_size = train.batch_size
        self.log_every = train.log_every
        self._epoch_order: tuple[int, torch.Tensor] | None = None
        if self.dist.enabled:
            self._model_ddp = DistributedDataParallel(self.model)
            self._disc_ddp = DistributedDataParallel(self.discriminator)
        else:
            self._model_ddp, self._disc_ddp = self.model, self.discriminator

    # -- state ---------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model, "discriminator": self.discriminator}

    def metadata(self) -> dict:
        return {
            "kind": RUN_KIND,
            "config": config_to_dict(self.config),
            "components": self.component_summary(),
            "training_data": self.data.description,
            "image": self.data.image.to_dict(),
            "operator": self.model.operator.to_dict(),
            # 1-based, as in stats.jsonl and evolution/epoch-NNNN.png: the epoch of the last step
            "epoch": self.schedule.epoch_of(max(self.step - 1, 0)) + 1,
            "demixgan_version": __version__,
        }

    def component_summary(self) -> list[dict]:
        dims = self.model.latent_dims()
        return [
            {"name": c.name, "kind": c.kind, "latent_dim": dims.get(c.name)}
            for c in self.config.components
        ]

    def resume_state(self) -> dict:
        return {
            "step": self.step,
            "optimizer_g": self.opt_g.state_dict(),
            "optimizer_d": self.opt_d.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }

    def restore(self, weights: Mapping[str, dict[str, torch.Tensor]], state: dict) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(weights[name])
        self.opt_g.load_state_dict(state["optimizer_g"])
        self.opt_d.load_state_dict(state["optimizer_d"])
        # The restored optimisers bring the checkpoint's hyperparameters; config.json's win
        # (equal unless changed on purpose: check_checkpoint announced each change).
        train = self.config.train
        for optimizer, lr in ((self.opt_g, train.lr_g), (self.opt_d, train.lr_d)):
            for group in optimizer.param_groups:
                group["lr"], group["betas"] = lr, (train.beta1, train.beta2)
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])

    def check_checkpoint(self, metadata: Mapping[str, Any]) -> list[str]:
        """Refuse another kind of checkpoint, or one trained with settings this run's config
        changes in a way that cannot continue; list the changes that will be applied."""
        where = f"'{self.run_dir}'"
        if metadata.get("kind", RUN_KIND) != RUN_KIND:
            raise DemixganError(
                f"The run directory {where} holds a {metadata.get('kind')} checkpoint, not a GAN "
                "run's, so 'demixgan train --resume' cannot continue it. Resume it with the "
                "command that wrote it, or start a new run with --config."
            )
        if not isinstance(metadata.get("config"), dict):
            return []  # no record of the configuration it trained with: nothing to compare
        changes = config_changes(_normalized(metadata["config"]), config_to_dict(self.config))
        refused = {k: v for k, v in changes.items() if k not in RESUMABLE_CHANGES}
        if refused:
            listed = ", ".join(f"{k}: {_shown(a)} -> {_shown(b)}" for k, (a, b) in refused.items())
            raise DemixganError(
                f"Cannot resume {where}: its config.json differs from the configuration its "
                f"checkpoint of step {metadata.get('step')} was trained with in {listed}, "
                "which change the networks' shapes, the training data or the loss, so the "
                "checkpoint cannot continue under them and nothing was written. Restore those "
                "values in config.json to resume, or start a new run with --config and --set "
                "(learning rates, betas, epochs, max_steps and the logging and checkpoint "
                "intervals may change on resume)."
            )
        return [
            f"applying changed {k}: {_shown(a)} -> {_shown(b)}" for k, (a, b) in changes.items()
        ]

    # -- one step ------------------------------------------------------------------------
    def _real_batch(self, step: int) -> torch.Tensor:
        epoch = self.schedule.epoch_of(step)
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            count = self.data.observations.shape[0]
            order = torch.randperm(count, generator=derived_generator(self.config.seed, epoch, 1))
            self._epoch_order = (epoch, order)
        batch = self.config.train.batch_size
        start = (step % self.schedule.steps_per_epoch) * batch
        index = self._epoch_order[1][start : start + batch][self.dist.local_slice(batch)]
        return self.data.observations[index].to(self.device)

    def _fake_batch(self, generator: torch.Generator):
        """A fake batch and, with the info term on, the latent codes D should recover from it."""
        batch, local = (
            self.config.train.batch_size,
            self.dist.local_slice(self.config.train.batch_size),
        )
        latents = self.model.sample_latents(batch, generator)
        known = self.model.sample_known(batch, generator)
        latents = {k: v[local].to(self.device) for k, v in latents.items()}
        known = {k: v[local].to(self.device) for k, v in known.items()}
        codes = (
            torch.cat([latents[name][:, :dims] for name, dims in self.code_dims.items()], dim=1)
            if self.code_dims
            else None
        )
        fake, parts = self._model_ddp(latents, known, with_components=True)
        return fake, parts, codes

    def _precision(self) -> torch.autocast:
        """The context of the step's forward passes (``train.precision``)."""
        return autocast(self.device, self.config.train.precision)

    def _discriminate(self, images: torch.Tensor):
        """D's logits and InfoGAN predictions, in float32 whatever the forward pass ran in."""
        with self._precision():
            logits, predicted = self._disc_ddp(images)
        return logits.float(), None if predicted is None else predicted.float()

    def _mass_penalty(self, parts: torch.Tensor):
        """Per-component L1 price on output mass: with a free low-capacity component beside a
        priced high-capacity one, whatever the small one can draw moves into it."""
        return sum(
            (weight * parts[:, k].mean() for k, weight in self.mass_weights.items()),
            start=torch.zeros((), device=parts.device),
        )

    def _info_loss(self, predicted: torch.Tensor | None, codes: torch.Tensor | None):
        """InfoGAN-style latent recovery: every learned component must leave its latent visible
        in the sum, so no generator can fall silent while another draws the whole mixture."""
        if codes is None:
            return 0.0
        return self.config.train.info_weight * (predicted - codes).pow(2).mean()

    def train_step(self) -> dict[str, float]:
        train = self.config.train
        generator = derived_generator(self.config.seed, self.step)
        real = self._real_batch(self.step)
        for _ in range(train.d_steps):
            with self._precision():
                fake, parts, codes = self._fake_batch(generator)
            if train.r1_gamma > 0:
                real.requires_grad_(True)
            logits, predicted = self._discriminate(torch.cat([real, fake.detach()]))
            real_logits, fake_logits = logits[: real.shape[0]], logits[real.shape[0] :]
            loss_d = discriminator_loss(train.loss, real_logits, fake_logits)
            if codes is not None:
                loss_d = loss_d + self._info_loss(predicted[real.shape[0] :], codes)
            if train.r1_gamma > 0:
                loss_d = loss_d + 0.5 * train.r1_gamma * r1_penalty(real_logits, real)
                real = real.detach()
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        # The generator step reuses the last fake batch, scored by the updated discriminator.
        with _no_sync(self._disc_ddp):
            fake_logits_g, predicted = self._discriminate(fake)
            loss_g = generator_loss(train.loss, fake_logits_g) + self._info_loss(predicted, codes)
        if self.mass_weights:
            loss_g = loss_g + self._mass_penalty(parts.float())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.step += 1
        values = torch.stack(
            [
                loss_d.detach(),
                loss_g.detach(),
                torch.sigmoid(real_logits.detach()).mean(),
                torch.sigmoid(fake_logits.detach()).mean(),
            ]
        )
        return dict(zip(("loss_d", "loss_g", "d_real", "d_fake"), values.tolist(), strict=True))

    # -- outputs -------------------------------------------------------------------------
    def log_fields(self, done: int) -> dict[str, int]:
        return {"epoch": self.schedule.epoch_of(done - 1) + 1}

    def after_step(self, done: int) -> bool:
        """The evolution grid at each shown epoch's end (every epoch's in runs of up to
        ``EPOCH_OUTPUTS`` epochs); a checkpoint then (unless turned off: on a GPU it costs more
        than the epoch's steps) and every ``checkpoint_every`` steps, and at the end
        (``max_steps`` may end a run inside an epoch)."""
        step, train = done - 1, self.config.train
        end_of_epoch = self.schedule.ends_shown_epoch(step)
        last = done == self.total_steps
        if (end_of_epoch or last) and train.snapshot_every_epoch:
            self.save_evolution(self.schedule.epoch_of(step))
        epoch_checkpoint = end_of_epoch and train.checkpoint_every_epoch
        return done % train.checkpoint_every == 0 or epoch_checkpoint or last

    def save_evolution(self, epoch: int) -> None:
        """The paper's evolution figure: every component for the same fixed latents, each epoch."""
        generator = derived_generator(self.config.seed, 0, stream=2)
        latents = self.model.sample_latents(EVOLUTION_SAMPLES, generator)
        known = self.model.sample_known(EVOLUTION_SAMPLES, generator)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            parts = self.model.components(
                {k: v.to(self.device) for k, v in latents.items()},
                {k: v.to(self.device) for k, v in known.items()},
            ).cpu()
        self.model.train(was_training)
        panels = [(name, parts[:, k]) for k, name in enumerate(self.model.names)]
        if len(panels) > 1:
            panels.append(("sum", parts.sum(dim=1)))
        save_panels(
            panels,
            self.run_dir / EVOLUTION_DIR / f"epoch-{epoch + 1:04d}.png",
            title=f"{self.config.name}: epoch {epoch + 1}, step {self.step}",
        )

    def non_finite(self, what: str) -> DemixganError:
        latest = checkpoints.latest_checkpoint(self.run_dir / CHECKPOINT_DIR)
        kept = f"the last good checkpoint is {latest.weights_path}" if latest else "none was saved"
        remedies = ["lower the learning rates (train.lr_g, train.lr_d)"]
        if self.config.train.loss != "hinge":
            remedies.append('train.loss = "hinge"')
        if not self.config.discriminator.spectral_norm:
            remedies.append("discriminator.spectral_norm = true")
        return DemixganError(
            f"Training of '{self.config.name}' stopped at step {self.step}: the {what} became "
            f"NaN or infinite (the GAN diverged); {kept}. In a new run (--config ... --set "
            f"KEY=VALUE), {' or '.join(remedies)}."
        )


def config_changes(before: Mapping, after: Mapping) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (before, after)}`` of every setting that differs, components by name
    (``components.digit.hidden``); ``components`` itself when they are others or reordered."""
    flat_before, flat_after = _flatten(before), _flatten(after)
    missing = "(unset)"
    return {
        key: (flat_before.get(key, missing), flat_after.get(key, missing))
        for key in sorted(flat_before.keys() | flat_after.keys())
        if flat_before.get(key, missing) != flat_after.get(key, missing)
    }


def _flatten(data: Mapping, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "components" and not prefix and isinstance(value, list):
            names = [
                c.get("name", str(i)) if isinstance(c, dict) else str(i)
                for i, c in enumerate(value)
            ]
            flat["components"] = ", ".join(map(str, names))
            for name, component in zip(names, value, strict=True):
                if isinstance(component, dict):
                    flat.update(_flatten(component, f"components.{name}."))
        elif isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _normalized(config: dict) -> dict:
    """A recorded config with this version's defaults filled in, as config.json has them."""
    try:
        return config_to_dict(parse_config(config, name=str(config.get("name", "run"))))
    except DemixganError:
        return config  # a config this version cannot parse: compared as recorded


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str | bool) or value is None else str(value)


class _no_sync:
    """Skip DDP's gradient all-reduce for the discriminator during the generator step."""

    def __init__(self, module: nn.Module) -> None:
        self._context = module.no_sync() if isinstance(module, DistributedDataParallel) else None

    def __enter__(self) -> None:
        if self._context is not None:
            self._context.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)


def train(
    config: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> RunResult:
    """Train a run in ``run_dir`` (new, or continued from its latest checkpoint)."""
    run_dir = Path(run_dir)
    if not resume:
        check_new_run_dir(run_dir)  # before minutes of loading data; again under the lock
    trainer = Trainer(config, run_dir, device=device)
    try:
        # Rank 0 writes the run, and holds its lock from the config file to the last checkpoint.
        with locks.run_lock(run_dir) if trainer.dist.is_main else nullcontext():
            if not resume and trainer.dist.is_main:
                prepare_new_run(config, run_dir)
            last = engine.run(
                trainer,
                run_dir,
                resume=resume,
                progress=progress,
                keep_last=config.train.keep_last,
                keep_every=config.train.keep_every,
            )
        finish_together(trainer.dist)
    finally:
        shutdown(trainer.dist)
    return RunResult(
        run_dir,
        trainer.step,
        trainer.schedule.epoch_of(max(trainer.step - 1, 0)),
        last.weights_path if last else None,
    )
