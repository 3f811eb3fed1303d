"""The classifier step of the training engine: the MNIST classifier that reads denoised digits.

Only 3,670 real training digits are available without a download, so training draws a fresh random
affine distortion of every digit each epoch (rotation, scale, shear, shift) and thresholds half
of them at 0.5: the GAN experiments use binarized digits, and the classifier must read both
kinds. Every draw comes from one generator seeded by ``seed`` (its state, the epoch's order and
the dropout RNG are in each checkpoint), so training is reproducible on CPU, resumes exactly,
and leaves the caller's random state alone. Applying, saving and loading a classifier is
evaluation/classification.py's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from demixgan.errors import DemixganError
from demixgan.evaluation.classification import KIND, MODULE, check_images
from demixgan.networks.classifier import IMAGE, ClassifierShape, MnistClassifier
from demixgan.training import engine
from demixgan.training.distributed import Distributed


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random affine distortion; defaults keep every digit readable."""

    degrees: float = 12.0
    scale: float = 0.1
    shear: float = 0.15
    shift_pixels: float = 2.5
    binarize_fraction: float = 0.5


def augment(images: torch.Tensor, generator: torch.Generator, aug: Augmentation) -> torch.Tensor:
    """A random affine distortion of each image, then thresholding of a random subset."""
    n = images.shape[0]

    def uniform(bound: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * bound

    angle = uniform(math.radians(aug.degrees))
    scale = 1 + uniform(aug.scale)
    shear = uniform(aug.shear)
    shift = (
        uniform(2 * aug.shift_pixels / IMAGE.width),
        uniform(2 * aug.shift_pixels / IMAGE.height),
    )
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin + shear * cos, shift[0]], 1),
            torch.stack([sin, cos + shear * sin, shift[1]], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
    binary = torch.rand(n, generator=generator) < aug.binarize_fraction
    out[binary] = (out[binary] >= 0.5).float()
    return out


class ClassifierTask:
    """Epochs of shuffled, augmented batches under a cosine decay (an engine.TrainingTask)."""

    shown: ClassVar[dict[str, str]] = {"loss": "loss"}
    dist = Distributed()
    log_every = 50

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        epochs: int,
        seed: int,
        shape: ClassifierShape | None,
        augmentation: Augmentation | None,
        batch_size: int,
        lr: float,
        on_epoch: Callable[[int, float], None] | None,
    ) -> None:
        self.images, self.labels, self.augmentation = images, labels, augmentation
        self.seed, self.on_epoch, self.batch_size = seed, on_epoch, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.model = MnistClassifier(shape)  # from the global RNG, seeded by the caller
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.per_epoch = math.ceil(len(labels) / batch_size)
        self.total_steps = epochs * self.per_epoch
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, self.total_steps)
        self.name, self.step = "classifier", 0
        self.order = torch.empty(0, dtype=torch.int64)
        self.epoch_loss = 0.0

    def train_step(self) -> dict[str, float]:
        index = self.step % self.per_epoch
        if index == 0:  # a new epoch: a new order, drawn before its batches' distortions
            self.order = torch.randperm(len(self.labels), generator=self.generator)
            self.epoch_loss = 0.0
        batch = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        x = self.images[batch]
        if self.augmentation is not None:
            x = augment(x, self.generator, self.augmentation)
        self.model.train()
        loss = F.cross_entropy(self.model(x), self.labels[batch])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        self.epoch_loss += loss.item() * len(batch)
        self.step += 1
        return {"loss": loss.item()}

    def log_fields(self, done: int) -> dict[str, Any]:
        return {"epoch": (done - 1) // self.per_epoch + 1}

    def after_step(self, done: int) -> bool:
        """The epoch's mean loss to ``on_epoch`` at its end; a checkpoint then."""
        if done % self.per_epoch:
            return False
        if self.on_epoch is not None:
            self.on_epoch(done // self.per_epoch, self.epoch_loss / len(self.labels))
        return True

    def modules(self) -> dict[str, nn.Module]:
        return {MODULE: self.model}

    def metadata(self) -> dict[str, Any]:
        return {"kind": f"{KIND}-run", "classifier_shape": self.model.shape.to_dict()}

    def resume_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "order": self.order,
            "epoch_loss": self.epoch_loss,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
        }

    def check_checkpoint(self, metadata: Mapping[str, Any]) -> list[str]:
        """Only a classifier run's checkpoint of the same network shape continues this one."""
        expected = json.loads(json.dumps(self.metadata()))  # as the sidecar stores it
        found = {key: metadata.get(key) for key in expected}
        if found != expected:
            raise DemixganError(
                f"The checkpoint to resume ({found}) is not a classifier run's of this network "
                f"({expected}): the directory belongs to another run. Resume it with the "
                "settings that wrote it, or train into a new directory."
            )
        return []

    def restore(self, weights: Mapping[str, dict[str, torch.Tensor]], state: dict) -> None:
        self.model.load_state_dict(weights[MODULE])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.order, self.epoch_loss = state["order"], float(state["epoch_loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.step = int(state["step"])

    def non_finite(self, what: str) -> DemixganError:
        return DemixganError(
            f"Training the classifier stopped at step {self.step}: the {what} became NaN or "
            "infinite. Lower the learning rate and train it again."
        )


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 30,
    seed: int = 0,
    shape: ClassifierShape | None = None,
    augmentation: Augmentation | None = Augmentation(),
    batch_size: int = 64,
    lr: float = 1e-3,
    on_epoch: Callable[[int, float], None] | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
) -> MnistClassifier:
    """Train a classifier on MNIST-sized ``images`` [N, 1, H, W] in [0, 1] with Adam and a
    cosine decay; with ``run_dir`` the engine checkpoints every epoch (``resume`` continues).

    ``on_epoch(epoch, mean_loss)`` is called after each epoch (1-based), e.g. for progress.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, not {epochs}")
    check_images(images)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        task = ClassifierTask(
            images,
            labels,
            epochs=epochs,
            seed=seed,
            shape=shape,
            augmentation=augmentation,
            batch_size=batch_size,
            lr=lr,
            on_epoch=on_epoch,
        )
        engine.run(task, run_dir, resume=resume, keep_last=2)
    task.model.eval()
    return task.model
