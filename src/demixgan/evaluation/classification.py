"""Apply, save and load the MNIST classifier that scores denoised digits semantically.

Training it is the classifier step of the training engine (training/classifier.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from demixgan.errors import DemixganError
from demixgan.io import checkpoints
from demixgan.networks.classifier import IMAGE, ClassifierShape, MnistClassifier

KIND = "classifier"
MODULE = "classifier"


@torch.no_grad()
def classify(model: MnistClassifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted digit [N] (int64) of each MNIST-sized image [N, 1, H, W] in [0, 1]; sets eval
    mode."""
    return probabilities(model, images, batch_size).argmax(1)


@torch.no_grad()
def probabilities(
    model: MnistClassifier, images: torch.Tensor, batch_size: int = 1000
) -> torch.Tensor:
    """The classifier's class probabilities [N, 10] of each image; sets eval mode."""
    check_images(images)
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


def check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE.shape:
        expected = ", ".join(map(str, IMAGE.shape))
        raise ValueError(f"images must be [N, {expected}], not {list(images.shape)}")
