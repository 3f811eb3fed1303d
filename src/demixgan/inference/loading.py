"""Load a trained superposition model from a checkpoint: JSON sidecar + safetensors, no pickles.

A sidecar may have been edited, so nothing it says is trusted before it is checked: the
configuration, image spec and operator are validated, the model they describe is planned
without storage (``checkpoints.plan``) and compared, tensor by tensor, with the shapes the
safetensors header lists, and only then is a tensor read or a network allocated.
"""

from __future__ import annotations

import os
import reprlib
import warnings
from collections.abc import Callable
from pathlib import Path

from demixgan.errors import DemixganError
from demixgan.io import checkpoints, locks
from demixgan.io.run_files import CHECKPOINT_DIR
from demixgan.models.operators import Operator, operator_from_dict
from demixgan.models.superposition_model import SuperpositionModel
from demixgan.spec.config import SHARED_NETWORK_FIELDS, RunConfig, parse_config
from demixgan.spec.factory import build_model
from demixgan.spec.image import ImageSpec

RUN_KIND = "gan-run"


def _folder(run: Path) -> Path:
    """Where a directory keeps its checkpoints: a run's checkpoints/, or itself (exports)."""
    return run / CHECKPOINT_DIR if (run / CHECKPOINT_DIR).is_dir() else run


def _no_checkpoint(run: Path) -> DemixganError:
    return DemixganError(
        f"'{run}' holds no complete checkpoint (looked in {_folder(run)}). Pass a run "
        "directory of 'demixgan train' or a .safetensors checkpoint file."
    )


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run directory (or a directory of exported checkpoints) means its latest complete
    checkpoint; a file is taken as given. A path that leads nowhere is refused as such."""
    path = Path(path)
    if path.is_dir():
        latest, skipped = checkpoints.newest_usable(_folder(path))
        if latest is None:
            raise checkpoints.unusable(_folder(path), skipped) if skipped else _no_checkpoint(path)
        for passed in skipped:  # newer checkpoints skipped on the way to the latest
            warnings.warn(str(passed), stacklevel=2)
        return latest.weights_path
    if not path.exists():
        what = "is a symbolic link to nothing readable" if path.is_symlink() else "does not exist"
        raise DemixganError(
            f"The checkpoint '{path}' {what}. Pass a run directory of 'demixgan train' or one of "
            "its checkpoints/step-N.safetensors files."
        )
    return path


def open_checkpoint(path: str | os.PathLike) -> tuple[Path, SuperpositionModel, RunConfig]:
    """The checkpoint a path means, and its model and config, chosen and loaded together: a
    run being trained rotates its checkpoints, so a choice made first may be gone by the load
    (``locks.read_newest`` then chooses again)."""
    path = Path(path)
    if not path.is_dir():
        checkpoint = resolve_checkpoint(path)
        return (checkpoint, *_load_file(checkpoint))
    found = locks.read_newest(_folder(path), lambda c: _load_file(c.weights_path))
    if found is None:
        raise _no_checkpoint(path)
    checkpoint, (model, config) = found
    return checkpoint.weights_path, model, config


def load_model(path: str | os.PathLike) -> tuple[SuperpositionModel, RunConfig]:
    """Rebuild the model a checkpoint (or a run directory's newest) was trained with and load
    its weights (CPU)."""
    _, model, config = open_checkpoint(path)
    return model, config


def _load_file(checkpoint: Path) -> tuple[SuperpositionModel, RunConfig]:
    """The model of one checkpoint file.

    Every field of the sidecar is checked, and the weights' header against the model the
    sidecar's configuration builds, before any tensor is read or allocated: an edited sidecar
    (a latent_dim of 8 for weights of 100, a hidden width of 2e9) is one DemixganError naming
    the first tensor that does not fit, and NaN weights are refused.
    """
    sidecar = checkpoints.read_sidecar(checkpoint)
    config, image, operator = _recorded(sidecar, checkpoint)
    planned = checkpoints.plan(
        lambda: {"model": build_model(config, image)}, checkpoint, "a model configuration"
    )
    fit = checkpoints.Fit(
        planned,
        what="the configuration its sidecar records",
        subject=_config_subject(config),
        remedy="The sidecar was edited or belongs to other weights; use another checkpoint.",
    )
    weights, loaded = checkpoints.load_weights(checkpoint, fit=fit)
    if loaded != sidecar:
        raise checkpoints.changed_while_loading(checkpoint)
    _check_components(sidecar, config, planned["model"], checkpoint)
    model = build_model(config, image)
    if operator is not None:  # the operator it trained with (older checkpoints: the config's)
        model.operator = operator
    try:
        model.load_state_dict(weights["model"])
    except RuntimeError as exc:  # the header was checked; kept so no traceback can escape
        raise DemixganError(
            f"The weights of '{checkpoint}' do not load into the model its sidecar describes "
            f"({exc}). Use another checkpoint."
        ) from None
    return model, config


def _recorded(sidecar: dict, path: Path) -> tuple[RunConfig, ImageSpec, Operator | None]:
    """The run configuration, image spec and operator a GAN run's sidecar records, validated."""
    if sidecar.get("kind", RUN_KIND) != RUN_KIND or "config" not in sidecar:
        raise DemixganError(
            f"The checkpoint '{path}' is a {sidecar.get('kind', 'untyped')} checkpoint, not a "
            "trained GAN run (it records no run configuration). Pass a run directory of "
            "'demixgan train' or one of its .safetensors checkpoints."
        )
    data = sidecar["config"]
    name = data.get("name") if isinstance(data, dict) else None
    config = parse_config(
        data,
        name=name if isinstance(name, str) else "run",
        source=f"in the sidecar of '{path}'",
        advice="The sidecar was edited or written by another program: use another checkpoint",
    )
    image = ImageSpec.from_dict(sidecar.get("image"), f"'{path}'")
    operator = operator_from_dict(sidecar["operator"], image) if "operator" in sidecar else None
    return config, image, operator


def _check_components(
    sidecar: dict, config: RunConfig, model: SuperpositionModel, path: Path
) -> None:
    """The sidecar's summary of the components (names, kinds, latent sizes) must be the
    configuration's: a summary edited apart from the config would mislabel every output."""
    if "components" not in sidecar:
        return  # older checkpoints
    dims = model.latent_dims()
    expected = [(c.name, c.kind, dims.get(c.name)) for c in config.components]
    summary = sidecar["components"]
    found = [
        (c.get("name"), c.get("kind"), c.get("latent_dim")) if isinstance(c, dict) else c
        for c in (summary if isinstance(summary, list) else [summary])
    ]
    if found != expected:
        raise DemixganError(
            f"The sidecar of '{path}' lists the components {reprlib.repr(found)} (name, "
            f"kind, latent size), but its configuration builds {expected}: one of them was "
            "edited. Use another checkpoint."
        )


def _config_subject(config: RunConfig) -> Callable[[str], str]:
    """Names the config settings that shape a tensor ``model.generators.<name>....``."""
    index = {c.name: i for i, c in enumerate(config.components)}

    def subject(key: str) -> str:
        parts = key.split(".")
        if len(parts) < 3 or parts[1] != "generators" or parts[2] not in index:
            return "the config"
        position = index[parts[2]]
        component = config.components[position]
        settings = ", ".join(
            f"{field} = {getattr(component, field)!r}"
            for field in SHARED_NETWORK_FIELDS
            if getattr(component, field) is not None
        )
        return f"the config (components[{position}] '{component.name}': {settings})"

    return subject


def export_generators(
    path: str | os.PathLike, directory: str | os.PathLike, *, half: bool = False
) -> Path:
    """Write the model of a checkpoint alone (no discriminator, no optimiser) into ``directory``.

    What inference needs, small enough to ship: ``half`` stores float16 weights (loading casts
    them back to float32). The sidecar keeps the configuration and the training metadata.
    """
    import copy

    checkpoint, model, _ = open_checkpoint(path)
    sidecar = checkpoints.read_sidecar(checkpoint)
    model = copy.deepcopy(model).half() if half else model
    keep = ("kind", "config", "components", "training_data", "image", "operator", "epoch")
    keep += ("demixgan_version", checkpoints.TRAINED_ON)
    metadata = {key: sidecar[key] for key in keep if key in sidecar}
    metadata["exported_from"] = {"step": sidecar["step"], "float16": half}
    saved = checkpoints.save_checkpoint(
        directory, sidecar["step"], {"model": model}, metadata, None, keep_last=1
    )
    return saved.weights_path
