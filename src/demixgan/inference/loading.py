"""Load a trained superposition model from a checkpoint: JSON sidecar + safetensors, no pickles."""

from __future__ import annotations

import os
from pathlib import Path

from demixgan.errors import DemixganError
from demixgan.models.superposition_model import SuperpositionModel
from demixgan.training import checkpoints
from demixgan.training.config import RunConfig, parse_config
from demixgan.training.run_files import CHECKPOINT_DIR
from demixgan.training.setup import build_model


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run directory means its latest complete checkpoint; a file is taken as given."""
    path = Path(path)
    if path.is_dir():
        latest = checkpoints.latest_checkpoint(path / CHECKPOINT_DIR)
        if latest is None:
            raise DemixganError(
                f"'{path}' holds no complete checkpoint (looked in {path / CHECKPOINT_DIR}). "
                "Pass a run directory of 'demixgan train' or a .safetensors checkpoint file."
            )
        return latest.weights_path
    return path


def load_model(path: str | os.PathLike) -> tuple[SuperpositionModel, RunConfig]:
    """Rebuild the model a checkpoint was trained with and load its weights (CPU)."""
    weights, sidecar = checkpoints.load_weights(resolve_checkpoint(path))
    if "config" not in sidecar:
        raise DemixganError(f"The checkpoint '{path}' records no run configuration.")
    config = parse_config(sidecar["config"], name=sidecar["config"].get("name", "run"))
    model = build_model(config)
    model.load_state_dict(weights["model"])
    return model, config
