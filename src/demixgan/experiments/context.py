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
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from demixgan.experiments.demo import DEMO_CONFIG, asset, shipped_checkpoint
from demixgan.experiments.profiles import Profile
from demixgan.inference.api import TrainedModel, load
from demixgan.io.atomic import atomic_path
from demixgan.training import checkpoints
from demixgan.training.config import RunConfig, load_config

#: Written into a stored run once its training finished: what was trained, in how long.
COMPLETE_FILE = "complete.json"


@dataclass
class Context:
    profile: Profile
    run_dir: Path
    checkpoint_store: Path
    data_dir: str | None = None
    progress: bool = True
    #: Where each model came from, in the words the report prints.
    provenance: list[str] = field(default_factory=list)

    def config(self, name: str, *overrides: str) -> RunConfig:
        """An experiment config shipped with demixgan, with the profile's overrides applied."""
        return load_config(
            asset(f"experiments/{name}.toml"), [*self.profile.train_overrides, *overrides]
        )

    def trained(self, config: RunConfig) -> TrainedModel:
        """A model trained from ``config``: the shipped one, a stored one, or trained now."""
        if _same_as_shipped_demo(config):
            self.provenance.append(
                f"{config.name}: the checkpoint that ships with demixgan (trained by 'demixgan "
                "train' from the same config)"
            )
            return load(shipped_checkpoint())
        run = self.checkpoint_store / f"{config.name}-{config_key(config)}"
        done = run / COMPLETE_FILE
        if done.is_file():
            record = json.loads(done.read_text(encoding="utf-8"))
            self.provenance.append(
                f"{config.name}: reused {run} (trained earlier from the same config: "
                f"{record['steps']} steps in {record['minutes']:.1f} min)"
            )
            return load(run)
        minutes = self._train(config, run)
        self.provenance.append(f"{config.name}: trained now into {run} ({minutes:.1f} min)")
        return load(run)

    def _train(self, config: RunConfig, run: Path) -> float:
        from demixgan.training.loop import train

        resume = checkpoints.latest_checkpoint(run / "checkpoints") is not None
        if run.exists() and not resume:
            shutil.rmtree(run)  # stopped before its first checkpoint: nothing worth keeping
        started = time.perf_counter()
        result = train(config, run, resume=resume, progress=self.progress)
        minutes = (time.perf_counter() - started) / 60
        with atomic_path(run / COMPLETE_FILE) as tmp:
            tmp.write_text(json.dumps({"steps": result.step, "minutes": minutes}), "utf-8")
        return minutes


def config_key(config: RunConfig) -> str:
    """A short hash of everything that decides what a run learns."""
    text = json.dumps(asdict(config), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _same_as_shipped_demo(config: RunConfig) -> bool:
    shipped = load_config(asset(DEMO_CONFIG))
    return asdict(config) | {"name": ""} == asdict(shipped) | {"name": ""}
