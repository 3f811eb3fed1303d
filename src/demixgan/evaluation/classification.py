"""Train, apply, save and load the MNIST classifier that scores denoised digits semantically.

Only 4,000 real digits are available without a download, so training draws a fresh random
affine distortion of every digit each epoch (rotation, scale, shear, shift) and thresholds half
of them at 0.5: the GAN experiments use binarized digits, and the classifier must read both
kinds. Training runs inside a forked RNG seeded by ``seed``, so it is reproducible on CPU and
leaves the caller's random state alone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from demixgan.errors import DemixganError
from demixgan.networks.classifier import IMAGE_SIZE, ClassifierShape, MnistClassifier
from demixgan.training import checkpoints

KIND = "classifier"
MODULE = "classifier"


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
    shift = uniform(2 * aug.shift_pixels / IMAGE_SIZE), uniform(2 * aug.shift_pixels / IMAGE_SIZE)
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
) -> MnistClassifier:
    """Train a classifier on ``images`` [N, 1, 28, 28] in [0, 1] with Adam and a cosine decay.

    ``on_epoch(epoch, mean_loss)`` is called after each epoch (1-based), e.g. for progress.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, not {epochs}")
    _check_images(images)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = MnistClassifier(shape)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        steps = epochs * math.ceil(len(labels) / batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        model.train()
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(labels), generator=generator)
            total = 0.0
            for batch in order.split(batch_size):
                x = images[batch]
                if augmentation is not None:
                    x = augment(x, generator, augmentation)
                loss = F.cross_entropy(model(x), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item() * len(batch)
            if on_epoch is not None:
                on_epoch(epoch, total / len(labels))
    model.eval()
    return model


@torch.no_grad()
def classify(model: MnistClassifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted digit [N] (int64) of each image [N, 1, 28, 28] in [0, 1]; sets eval mode."""
    return probabilities(model, images, batch_size).argmax(1)


@torch.no_grad()
def probabilities(
    model: MnistClassifier, images: torch.Tensor, batch_size: int = 1000
) -> torch.Tensor:
    """The classifier's class probabilities [N, 10] of each image; sets eval mode."""
    _check_images(images)
    model.eval()
    return torch.cat([model(x).softmax(1) for x in images.split(batch_size)])


def accuracy(model: MnistClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` whose predicted digit equals ``labels``."""
    return (classify(model, images) == labels).float().mean().item()


def check_output_dir(directory: str | os.PathLike) -> Path:
    """Create ``directory`` and make sure a classifier may be saved there, before training."""
    return checkpoints.check_finished_dir(directory, KIND, "classifier")


def save_classifier(
    model: MnistClassifier, directory: str | os.PathLike, metadata: dict
) -> checkpoints.Checkpoint:
    """Write the classifier as a checkpoint (safetensors + sidecar) into ``directory``.

    The sidecar records ``kind: "classifier"`` and the layer widths, so loading rebuilds the
    network and refuses GAN checkpoints. A classifier is a finished model, saved as step 0
    (``step-000000000.safetensors``); an earlier classifier there is replaced.
    """
    meta = {**metadata, "classifier_shape": model.shape.to_dict()}
    return checkpoints.save_finished(directory, KIND, "classifier", {MODULE: model}, meta)


def load_classifier(path: str | os.PathLike) -> tuple[MnistClassifier, dict]:
    """Load a classifier from its directory, .safetensors or .json file (CPU, eval mode)."""
    weights, sidecar = checkpoints.load_finished(
        path, KIND, "an MNIST classifier", "demixgan train-classifier"
    )
    try:
        model = MnistClassifier(ClassifierShape(**sidecar["classifier_shape"]))
        model.load_state_dict(weights[MODULE])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise DemixganError(
            f"The classifier checkpoint '{path}' does not describe a network this version "
            f"builds ({type(exc).__name__}: {exc}). Train a new one with "
            "'demixgan train-classifier'."
        ) from None
    model.eval()
    return model, sidecar


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"images must be [N, 1, 28, 28], not {list(images.shape)}")
