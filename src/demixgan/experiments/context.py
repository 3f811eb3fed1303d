"""What an experiment works with: its profile, its run directory, and trained checkpoints.

Training is the expensive part of every experiment, and several experiments share a model
(demix-train trains what demix-test separates with). ``Context.trained`` therefore keeps every
run it trains in a checkpoint store keyed by the hash of the resolved config: an experiment that
needs a model an earlier one trained from the same config reuses it (and its report says so); a
run that was interrupted resumes exactly where its last checkpoint left it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from demixgan.data.sources import ImageSet
from demixgan.errors import DemixganError
from demixgan.experiments.demo import (
    DEMO_CONFIG,
    DEMO_MODEL,
    SHIPPED_CONFIG,
    asset,
    shipped_checkpoint,
)
from demixgan.experiments.profiles import Profile
from demixgan.inference.amortized import Separator, peer_groups
from demixgan.inference.api import TrainedModel, load
from demixgan.inference.choice import (
    CHOICE_FILE,
    PEERS,
    SEPARATOR_DIR,
    STALE,
    TEACHERS,
    is_current,
    peer_dir,
    rechosen,
    separator_dir,
)
from demixgan.inference.options import SeparatorOptions
from demixgan.io import checkpoints
from demixgan.io.atomic import atomic_path
from demixgan.io.json_files import read_json
from demixgan.io.run_files import (
    CONFIG_FILE,
    STATS_FILE,
    StatsLog,
    on_threads,
    training_minutes,
    training_threads,
)
from demixgan.networks.classifier import MnistClassifier
from demixgan.spec.config import (
    RunConfig,
    config_to_dict,
    load_config,
    parse_config,
    write_resolved_config,
)

#: Written into a stored run once its training finished: what was trained, in how long, on
#: how many CPU threads.
COMPLETE_FILE = "complete.json"
#: The models that ship inside the package (``assets/<model>``), by the config that trained
#: them: an experiment that needs one of these configs unchanged uses the shipped model (and the
#: separator and peers shipped beside it).
SHIPPED_MODELS = {SHIPPED_CONFIG: "demo", DEMO_CONFIG: DEMO_MODEL}


@dataclass
class Context:
    profile: Profile
    run_dir: Path
    checkpoint_store: Path
    data_dir: str | None = None
    progress: bool = True
    #: Where the latent fits, separators and peers compute (the GANs train where their config's
    #: ``train.device`` says, part of the store's key).
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: Where each model came from, in the words the report prints.
    provenance: list[str] = field(default_factory=list)

    def _note(self, line: str) -> None:
        """Add where a model came from, once per model (``NAME: ...``): a setting that reuses
        a model another setting of the same run already named adds nothing."""
        if not any(seen.split(":")[0] == line.split(":")[0] for seen in self.provenance):
            self.provenance.append(line)

    def bar(self, total: int, description: str):
        """A progress bar (io/progress.py) that stays quiet when progress is off."""
        from demixgan.io.progress import progress_bar

        return progress_bar(total, description, unit="image", enabled=self.progress)

    def config(self, name: str, *overrides: str) -> RunConfig:
        """An experiment config shipped with demixgan, with the profile's overrides applied."""
        return load_config(
            asset(f"experiments/{name}.toml"), [*self.profile.train_overrides, *overrides]
        )

    def trained(self, config: RunConfig) -> TrainedModel:
        """A model trained from ``config``: the shipped one, a stored one, or trained now."""
        shipped = _shipped_model(config)
        if shipped is not None:
            self._note(
                f"{config.name}: the checkpoint that ships with demixgan (trained by 'demixgan "
                "train' from the same config)"
            )
            return load(shipped_checkpoint(shipped), self.device)
        run = self.checkpoint_store / f"{config.name}-{config_key(config)}"
        record = _completed(run)
        if record is not None:
            self._note(_reused(config.name, run, record, "from the same config", "steps"))
            return load(run, self.device)
        minutes = self._train(config, run)
        threads = on_threads(training_threads(run))
        self._note(f"{config.name}: trained now into {_stored(run)} ({minutes:.1f} min{threads})")
        return load(run, self.device)

    def separator(
        self, trained: TrainedModel, options: SeparatorOptions, peer: str | None = None
    ) -> Separator:
        """The run's separator (or its ``peer``, inference/choice.PEERS) trained with
        ``options``: found beside the model (stored or shipped), or trained (resumed) there now,
        as ``demixgan separator RUN [--peer KIND]`` would."""
        from demixgan.training.separator_runs import new_job

        taught_by = TEACHERS.get(peer or "")
        teacher = self.separator_folder(trained, taught_by) if taught_by else None
        folder = self.separator_folder(trained, peer)
        # a stored peer is named by its folder: the models that share it train it once
        stored_peer = peer is not None and not folder.is_relative_to(asset(""))
        owner = folder.parent.name if stored_peer else trained.config.name
        return self._stored_separator(
            trained,
            options,
            folder,
            f"{owner} {peer or 'separator'}",
            lambda: new_job(trained.checkpoint, options, peer=peer, teacher=teacher),
        )

    def measured_separator(
        self, trained: TrainedModel, options: SeparatorOptions, measurements: int
    ) -> Separator:
        """A separator of the run's observations measured by the m x pixels Gaussian matrix of
        seed m (the cs experiment's A), as ``demixgan separator RUN --measurements m
        --matrix-seed m --teacher RUN/separator`` trains it: the run's own separator of whole
        mixtures (the profile's) splits the training mixtures for the remixing. Stored beside
        the model under ``measured/m<m>-<hash of options>``, so candidates trained to choose
        the options on validation (benchmarks/cs_choices.py) are reused by the report."""
        from demixgan.training.separator_runs import new_job

        self.separator(trained, self.separator_options(trained))
        teacher = self.separator_folder(trained, None)
        folder = teacher.parent / MEASURED_DIR / f"m{measurements}-{options_key(options)}"
        return self._stored_separator(
            trained,
            options,
            folder,
            f"{trained.config.name} separator of {measurements} measurements "
            f"({options.steps} + {options.remix_steps} steps, {options.remix_fraction:g} of a "
            "remixing batch real)",
            lambda: new_job(
                trained.checkpoint,
                options,
                measurements=measurements,
                matrix_seed=measurements,
                teacher=teacher,
            ),
        )

    def _stored_separator(
        self, trained: TrainedModel, options: SeparatorOptions, folder: Path, what: str, job
    ) -> Separator:
        """The separator in ``folder`` if it finished with ``options``; else trained (or
        resumed) there from ``job()``, its provenance noted either way."""
        from demixgan.training.separator_runs import JOB_FILE, finished_run, read_job, run_job

        finished = finished_run(folder)
        if finished is not None:
            _check_options(finished.options, options, what, folder)
            self._note(
                f"{what}: reused (trained earlier with the same options in "
                f"{finished.seconds / 60:.1f} min{on_threads(training_threads(folder))})"
            )
            finished.separator.network.to(self.device)  # separators load on the CPU
            return finished.separator
        if folder.is_relative_to(asset("")):
            raise DemixganError(
                f"The {what} that ships with demixgan is missing from {folder} (a damaged "
                "installation?). Reinstall demixgan."
            )
        resume = (folder / JOB_FILE).is_file()
        if resume:
            recorded = read_job(folder)
            _check_options(recorded["options"], options, what, folder)
        result = run_job(
            recorded if resume else job(),
            folder,
            resume=resume,
            progress=self.progress,
            choice=self.profile.choice,
            device=str(self.device),
        )
        self._note(
            f"{what}: trained now ({result.seconds / 60:.1f} min"
            + on_threads(training_threads(folder))
            + (", over the segments of a resumed run)" if resume else ")")
        )
        return result.separator

    def separator_options(self, trained: TrainedModel) -> SeparatorOptions:
        """The profile's separator budget; a denoiser's draws its known corruption at every
        level the level estimate tries, so it is never told an image's level."""
        if not trained.model.known:
            return self.profile.separator
        return replace(self.profile.separator, max_level=max(self.profile.denoise_tried_levels))

    def separator_folder(self, trained: TrainedModel, peer: str | None) -> Path:
        """Where the separator (or ``peer``) of ``trained`` lives. Shipped beside a model: in
        the package. Else the separator beside the stored model (a shipped model's in the
        store, ``<config>-<key>/separator``, never in the package), and a peer in the store by
        what it learns from (``peers-<recipe>-<peers_key>/<kind>``): it never reads the GAN, so
        two architectures of one setting (mnist-fashion's InfoGAN and DCGAN) share their peers."""
        checkpoint = trained.checkpoint
        shipped = Path(checkpoint).is_relative_to(asset(""))
        if shipped and separator_dir(checkpoint).is_dir():
            return separator_dir(checkpoint) if peer is None else peer_dir(checkpoint, peer)
        if peer is not None:
            recipe = trained.config.data.recipe or "mixtures"
            return self.checkpoint_store / f"peers-{recipe}-{peers_key(trained)}" / peer
        if shipped:
            home = self.checkpoint_store / f"{trained.config.name}-{config_key(trained.config)}"
            return home / SEPARATOR_DIR
        return separator_dir(checkpoint)

    def separator_choice(self, trained: TrainedModel) -> dict:
        """The validation record of the run's separator (inference/choice.py: its and the
        refinement's mean PSNR on validation mixtures), written when it was trained; a record
        from before the parts were matched to the truth is chosen anew (and stored)."""
        folder = self.separator_folder(trained, None)
        record = read_json(folder / CHOICE_FILE, "separator's validation record", "")
        if is_current(record):
            return record
        record = rechosen(trained, folder, self.profile.choice)
        self._note(f"{trained.config.name} separator's validation record: chosen anew ({STALE})")
        return record

    def peers(self, trained: TrainedModel, options: SeparatorOptions) -> dict[str, Separator]:
        """The run's peers (MixIT, RemixIT, the supervised bound) with its separator's options."""
        return {kind: self.separator(trained, options, kind) for kind in PEERS}

    def classifier(self) -> MnistClassifier:
        """The paper's MNIST classifier on the embedded training digits: stored, or trained now."""
        from demixgan.data.sources import load_images
        from demixgan.evaluation.classification import load_classifier, save_classifier
        from demixgan.training.classifier import train_classifier

        epochs, count = self.profile.classifier_epochs, self.profile.classifier_digits
        where = self.checkpoint_store / f"classifier-embedded-{count or 'all'}-{epochs}-epochs"
        record = _completed(where)
        if record is not None:
            self._note(_reused("classifier", where, record, "with the same settings", "epochs"))
            return load_classifier(where)[0]
        digits = _subset(load_images("mnist-embedded", "train"), count or None)
        started = time.perf_counter()
        model = train_classifier(digits.images, digits.labels, epochs=epochs, seed=0)
        minutes = (time.perf_counter() - started) / 60
        save_classifier(model, where, {"training": {"digits": len(digits), "epochs": epochs}})
        threads = [torch.get_num_threads()]
        _mark_complete(where, epochs, minutes, threads)
        self._note(
            f"classifier: trained now into {_stored(where)} ({minutes:.1f} min"
            f"{on_threads(threads)})"
        )
        return model

    def test_digits(self, count: int) -> ImageSet:
        """Held-out test digits with labels: the MNIST test set where it is on disk, else the
        embedded one; read only to report."""
        from demixgan.inference.tasks import default_digit_source

        return self._digits(default_digit_source(self.data_dir), "test", count)

    def validation_digits(self, count: int, config: str) -> ImageSet:
        """Digits for choices (thresholds, alphas): the validation split carved from the
        digits that ``config`` trains on, never the test set."""
        return self._digits(self.config(config).data.digit_source, "validation", count)

    def mean_training_digit(self) -> torch.Tensor:
        """The mean of the clean training digits (vanilla-digit's training set), [C, H, W]:
        the floor of denoising and compressive sensing, an estimate that reads no input."""
        from demixgan.spec.factory import load_training_data

        return load_training_data(self.config("vanilla-digit")).observations.mean(0)

    def _digits(self, source: str, split: str, count: int) -> ImageSet:
        from demixgan.data.sources import load_images

        digits = _subset(load_images(source, split, data_dir=self.data_dir), count)
        binary = (digits.images >= 0.5).float()  # the paper's binary MNIST
        return replace(digits, images=binary)

    def _train(self, config: RunConfig, run: Path) -> float:
        from demixgan.training.loop import train

        resume = checkpoints.latest_checkpoint(run / "checkpoints") is not None
        if run.exists() and not resume:
            shutil.rmtree(run)  # stopped before its first checkpoint: nothing worth keeping
        result = train(config, run, resume=resume, progress=self.progress)
        minutes = training_minutes(run, config.train.batch_size)
        _mark_complete(run, result.step, minutes, training_threads(run))
        return minutes


def _stored(run: Path) -> str:
    """A stored run as reports name it: by its name in the store, not the machine's path."""
    return f"{run.name} in the checkpoint store"


def _reused(what: str, run: Path, record: dict, how: str, unit: str) -> str:
    """The provenance note of a model found finished in the store, with the ``record`` of the
    run that trained it ``how``."""
    return (
        f"{what}: reused {_stored(run)} (trained earlier {how}: "
        f"{record['steps']} {unit} in {record['minutes']:.1f} min"
        f"{on_threads(record.get('threads', []))}"
        + (f"; {record['adopted']}" if "adopted" in record else "")
        + ")"
    )


def _subset(digits: ImageSet, count: int | None) -> ImageSet:
    """``count`` images drawn without replacement (seeded): splits may be sorted by class."""
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))[:count]
    return replace(digits, images=digits.images[order], labels=digits.labels[order])


def _completed(run: Path) -> dict | None:
    """The record of a finished stored run (steps, minutes), or None if it never finished."""
    done = run / COMPLETE_FILE
    if not done.is_file():
        return None
    return read_json(done, "completion record", "Delete the stored run to train it again.")


def _mark_complete(run: Path, steps: int, minutes: float, threads: list[int], **more) -> None:
    record = {"steps": steps, "minutes": minutes, "threads": threads, **more}
    with atomic_path(run / COMPLETE_FILE) as tmp:
        tmp.write_text(json.dumps(record), "utf-8")


#: What a GAN-budget run (benchmarks/gan_budget.py) sets apart from the config it grids: its
#: length and checkpoint cadence, which change nothing learned (tests/test_training.py).
LENGTH_AND_CADENCE = (
    "max_steps",
    "epochs",
    "checkpoint_every",
    "keep_last",
    "keep_every",
    "checkpoint_every_epoch",
    "snapshot_every_epoch",
)


def adopt_run(store: Path, config: RunConfig, source: Path, separator: Path | None = None) -> Path:
    """Store the checkpoint that ``source`` kept at ``config.train.max_steps`` as the model
    ``config`` trains (``<name>-<key>``), with ``separator`` (trained for that checkpoint)
    beside it, so that reports reuse what a GAN-budget grid trained instead of training it
    again. ``source`` must be a run of ``config`` but for its length and checkpoint cadence,
    whose epoch cap the checkpoint did not pass: the weights are then those the store would
    train. Its stats log up to that step comes along (the minutes and threads), and the
    completion record says where the model came from. A model already stored, or one that
    ships with demixgan (reports use the shipped one), is refused."""
    if _shipped_model(config) is not None:
        raise DemixganError(f"{config.name}'s model ships with demixgan: reports use that one.")
    steps = config.train.max_steps
    trained = parse_config(read_json(source / CONFIG_FILE, "run config", ""), name=config.name)
    if _learned(trained) != _learned(config):
        raise DemixganError(
            f"The run in {source} was trained from another config than {config.name}'s (more "
            f"than its {', '.join(LENGTH_AND_CADENCE)} differ): it cannot stand in for it."
        )
    kept = {c.step: c for c in checkpoints.list_checkpoints(source / "checkpoints")}
    if steps not in kept:
        raise DemixganError(f"The run in {source} kept no checkpoint at step {steps}.")
    sidecar = checkpoints.read_sidecar(kept[steps].sidecar_path)
    if sidecar["epoch"] > config.train.epochs:
        raise DemixganError(
            f"Step {steps} of {source} is in epoch {sidecar['epoch']}, past {config.name}'s cap "
            f"of {config.train.epochs} epochs: that config stops earlier."
        )
    if separator is not None and not _separator_of(separator, kept[steps].weights_path):
        raise DemixganError(f"{separator} holds no finished separator of step {steps}'s model.")
    target = store / f"{config.name}-{config_key(config)}"
    if target.exists():
        raise DemixganError(f"The store has {config.name}'s model already: {target}.")
    building = target.with_name(target.name + ".adopting")
    shutil.rmtree(building, ignore_errors=True)  # what a stopped adoption left
    (building / "checkpoints").mkdir(parents=True)
    write_resolved_config(config, building / CONFIG_FILE)
    for name in (sidecar["weights_file"], sidecar["resume_file"]):
        _link_or_copy(kept[steps].sidecar_path.parent / name, building / "checkpoints" / name)
    with atomic_path(building / "checkpoints" / kept[steps].sidecar_path.name) as tmp:
        tmp.write_text(checkpoints.sidecar_text({**sidecar, "config": config_to_dict(config)}))
    shutil.copyfile(source / STATS_FILE, building / STATS_FILE)
    StatsLog(building / STATS_FILE, resume_step=steps).close()  # the lines past it dropped
    if separator is not None:
        shutil.copytree(separator, building / SEPARATOR_DIR, copy_function=_link_or_copy)
    minutes = training_minutes(building, config.train.batch_size)
    adopted = f"kept by a GAN-budget grid's run of the same config to {max(kept)} steps"
    _mark_complete(building, steps, minutes, training_threads(building), adopted=adopted)
    building.rename(target)
    return target


def _learned(config: RunConfig) -> dict:
    """A config's settings but its name, length and checkpoint cadence."""
    settings = asdict(config) | {"name": ""}
    settings["train"] = {k: v for k, v in settings["train"].items() if k not in LENGTH_AND_CADENCE}
    return settings


def _separator_of(folder: Path, checkpoint: Path) -> bool:
    """Whether ``folder`` holds a finished separator trained for ``checkpoint``."""
    from demixgan.training.separator_runs import finished_run

    finished = finished_run(folder)
    if finished is None:
        return False
    trained_for = Path(checkpoints.read_sidecar(finished.weights).get("trained_for", ""))
    return trained_for.is_file() and trained_for.samefile(checkpoint)


def _link_or_copy(source: str | Path, destination: str | Path) -> None:
    """A hard link where the file system allows one (checkpoints are never rewritten)."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


#: The floor of denoising and compressive sensing (``Context.mean_training_digit``).
MEAN_DIGIT = "mean training digit"
#: Keys added after stores were first written, with their defaults: a key at its default is
#: left out of the hash, so models stored before the key existed stay valid.
_LATER_COMPONENT_DEFAULTS = {"shares": None}
_LATER_DATA_DEFAULTS = {"resize": None, "crop": None, "validation_share": 0.1}
_LATER_TRAIN_DEFAULTS = {"checkpoint_every_epoch": True, "precision": "float32", "keep_every": 0}
#: A separator's option added later, with the value every separator stored before it had.
_LATER_SEPARATOR_VALUES = {"precision": "float32"}
#: Where a stored model's separators of compressive measurements live (``measured_separator``).
MEASURED_DIR = "measured"


def config_key(config: RunConfig) -> str:
    """A short hash of the resolved config: what a run learns, and how it is logged and kept
    (two configs that differ only in checkpoint cadence train apart)."""
    settings = asdict(config)
    settings["components"] = [
        _without_later_defaults(component, _LATER_COMPONENT_DEFAULTS)
        for component in settings["components"]
    ]
    settings["data"] = _without_later_defaults(settings["data"], _LATER_DATA_DEFAULTS)
    settings["train"] = _without_later_defaults(settings["train"], _LATER_TRAIN_DEFAULTS)
    return _short_hash(settings)


def peers_key(trained: TrainedModel) -> str:
    """A short hash of what a model's peers learn from: the training data (and its seed), the
    parts' names and which of them are learned in any order (``peer_groups``), and the
    operator; not the generators, discriminator or GAN training, which no peer reads."""
    config, model = trained.config, trained.model
    return _short_hash(
        {
            "data": _without_later_defaults(asdict(config.data), _LATER_DATA_DEFAULTS),
            "seed": config.seed,
            "names": list(model.names),
            "exchangeable": peer_groups(model, trained.exchangeable_data),
            "operator": model.operator.name,
        }
    )


def options_key(options: SeparatorOptions) -> str:
    """A short hash of a separator's options: candidates trained side by side keep apart."""
    return _short_hash(_without_later_defaults(asdict(options), _LATER_SEPARATOR_VALUES))


def _short_hash(settings: dict) -> str:
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _without_later_defaults(table: dict, later: dict) -> dict:
    return {k: v for k, v in table.items() if not (k in later and v == later[k])}


def _shipped_model(config: RunConfig) -> str | None:
    """The shipped model trained from ``config`` exactly (names aside), if any."""
    for shipped_config, model in SHIPPED_MODELS.items():
        shipped = load_config(asset(shipped_config))
        if asdict(config) | {"name": ""} == asdict(shipped) | {"name": ""}:
            return model
    return None


def _check_options(recorded: dict | None, options: SeparatorOptions, what: str, folder: Path):
    """Refuse a stored separator trained with other options than the profile's (a field added
    since it was stored counts at the value it then had, else at its default)."""
    known = asdict(SeparatorOptions()) | _LATER_SEPARATOR_VALUES
    if recorded is None or known | recorded != asdict(options):
        raise DemixganError(
            f"The stored {what} in {folder} was trained with other options ({recorded}) than "
            f"this profile's ({asdict(options)}): delete that directory to train it anew."
        )
