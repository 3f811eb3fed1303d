"""Load a trained superposition model from a checkpoint: JSON sidecar + safetensors, no pickles."""

from __future__ import annotations

import os
from pathlib import Path

from demixgan.errors import DemixganError
from demixgan.io import checkpoints
from demixgan.io.run_files import CHECKPOINT_DIR
from demixgan.models.operators import operator_from_dict
from demixgan.models.superposition_model import SuperpositionModel
from demixgan.spec.config import RunConfig, parse_config
from demixgan.spec.factory import build_model
from demixgan.spec.image import ImageSpec


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run directory (or a directory of exported checkpoints) means its latest complete
    checkpoint; a file is taken as given."""
    path = Path(path)
    if path.is_dir():
        folder = path / CHECKPOINT_DIR if (path / CHECKPOINT_DIR).is_dir() else path
        latest = checkpoints.latest_checkpoint(folder)
        if latest is None:
            raise DemixganError(
                f"'{path}' holds no complete checkpoint (looked in {folder}). "
                "Pass a run directory of 'demixgan train' or a .safetensors checkpoint file."
            )
        return latest.weights_path
    return path


def load_model(path: str | os.PathLike) -> tuple[SuperpositionModel, RunConfig]:
    """Rebuild the model a checkpoint was trained with and load its weights (CPU)."""
    weights, sidecar = checkpoints.load_weights(resolve_checkpoint(path))
    if sidecar.get("kind", "gan-run") != "gan-run" or "config" not in sidecar:
        raise DemixganError(
            f"The checkpoint '{path}' is a {sidecar.get('kind', 'untyped')} checkpoint, not a "
            "trained GAN run (it records no run configuration). Pass a run directory of "
            "'demixgan train' or one of its .safetensors checkpoints."
        )
    config = parse_config(sidecar["config"], name=sidecar["config"].get("name", "run"))
    image = ImageSpec.from_dict(sidecar.get("image"), f"'{path}'")
    model = build_model(config, image)
    if "operator" in sidecar:  # the operator it trained with (older checkpoints: the config's)
        model.operator = operator_from_dict(sidecar["operator"], image)
    model.load_state_dict(weights["model"])
    return model, config


def export_generators(
    path: str | os.PathLike, directory: str | os.PathLike, *, half: bool = False
) -> Path:
    """Write the model of a checkpoint alone (no discriminator, no optimiser) into ``directory``.

    What inference needs, small enough to ship: ``half`` stores float16 weights (loading casts
    them back to float32). The sidecar keeps the configuration and the training metadata.
    """
    import copy

    sidecar = checkpoints.read_sidecar(resolve_checkpoint(path))
    model, _ = load_model(path)
    model = copy.deepcopy(model).half() if half else model
    keep = ("kind", "config", "components", "training_data", "image", "operator", "epoch")
    keep += ("demixgan_version",)
    metadata = {key: sidecar[key] for key in keep if key in sidecar}
    metadata["exported_from"] = {"step": sidecar["step"], "float16": half}
    saved = checkpoints.save_checkpoint(
        directory, sidecar["step"], {"model": model}, metadata, None, keep_last=1
    )
    return saved.weights_path
