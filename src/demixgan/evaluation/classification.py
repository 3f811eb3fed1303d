"""Apply, save and load the MNIST classifier that scores denoised digits semantically.

Training it is the classifier step of the training engine (training/classifier.py).
"""

from __future__ import annotations

import os
import reprlib
from dataclasses import fields
from pathlib import Path

import torch

from demixgan.errors import DemixganError
from demixgan.io import checkpoints
from demixgan.networks.classifier import IMAGE, ClassifierShape, MnistClassifier
from demixgan.spec.validation import whole

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
    """Load a classifier from its directory, .safetensors or .json file (CPU, eval mode).

    The layer widths its sidecar records are checked, and the network they build compared
    with the weights' header, before any tensor is read or allocated.
    """

    def fit(sidecar: dict) -> checkpoints.Fit:
        shape = _classifier_shape(sidecar, path)
        planned = checkpoints.plan(lambda: {MODULE: MnistClassifier(shape)}, path, "a classifier")
        return checkpoints.Fit(
            planned,
            what="the classifier its sidecar describes",
            subject=lambda key: f"the sidecar's classifier_shape ({shape})",
            remedy="The sidecar was edited or belongs to other weights; use another classifier, "
            "or train one with 'demixgan train-classifier'.",
        )

    weights, sidecar = checkpoints.load_finished(
        path, KIND, "an MNIST classifier", "demixgan train-classifier", fit=fit
    )
    model = MnistClassifier(_classifier_shape(sidecar, path))
    try:
        model.load_state_dict(weights[MODULE])
    except RuntimeError as exc:  # the header was checked; kept so no traceback can escape
        raise DemixganError(
            f"The classifier checkpoint '{path}' does not load into the network it describes "
            f"({exc}). Train a new one with 'demixgan train-classifier'."
        ) from None
    model.eval()
    return model, sidecar


def _classifier_shape(sidecar: dict, path: str | os.PathLike) -> ClassifierShape:
    """The layer widths a classifier's sidecar records: whole widths >= 1, a dropout in [0, 1)."""
    data = sidecar.get("classifier_shape")
    names = [field.name for field in fields(ClassifierShape)]
    widths = [name for name in names if name != "dropout"]
    if not isinstance(data, dict) or not set(data) <= set(names):
        problem = f"classifier_shape must be a table of {', '.join(names)}"
    elif bad := [
        key for key in widths if key in data and not (whole(data[key]) and data[key] >= 1)
    ]:
        problem = f"classifier_shape.{bad[0]} must be an integer >= 1"
    elif "dropout" in data and not (
        isinstance(data["dropout"], int | float)
        and not isinstance(data["dropout"], bool)
        and 0 <= data["dropout"] < 1
    ):
        problem = "classifier_shape.dropout must be a number from 0 to below 1"
    else:
        return ClassifierShape(**data)
    raise DemixganError(
        f"The classifier checkpoint '{path}' does not describe a network this version builds: "
        f"{problem}, but its sidecar records {reprlib.repr(data)}. The sidecar was edited or "
        "written by another program; train a new one with 'demixgan train-classifier'."
    )


def check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE.shape:
        expected = ", ".join(map(str, IMAGE.shape))
        raise ValueError(f"images must be [N, {expected}], not {list(images.shape)}")
