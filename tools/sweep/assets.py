"""What the cases work on: small real runs trained once per sweep, and good input files.

Everything is made through the public CLI, so the sweep tests the product as a user has it.
The assets directory is read-only to the cases (a case that changes a run copies it first);
the sweep checks at the end that no case changed it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from runner import environment

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "configs" / "tiny-demix.toml"
#: A tiny demixing run: checkpoints every 5 of 20 steps, so kills land between several.
TINY = ["--set", "train.max_steps=20", "--set", "train.checkpoint_every=5"]
#: A separator trained in seconds (no remixing phase, a narrow U-Net).
SMALL_SEPARATOR = ["--remix-steps", "0", "--width", "8", "--batch-size", "8"]
KNOWN_SINES = [
    "--set",
    "components.sines.kind=known",
    "--set",
    "components.sines.family=sines",
    "--set",
    "components.sines.level=1",
]


@dataclass(frozen=True)
class Assets:
    root: Path
    run: Path  # a demixing-GAN run (digit + sines, both learned)
    denoise_run: Path  # a denoising-GAN run (sines known)
    separator: Path  # a finished separator run of ``run``
    mixtures: Path  # x.npy: 3 grey 28 x 28 mixtures in [0, 1]
    truth: Path  # truth.npy: their 2 parts [3, 2, 1, 28, 28]
    config: Path  # the tiny TOML config

    def tokens(self) -> dict[str, str]:
        """Placeholders the cases' command lines use."""
        return {
            "{run}": str(self.run),
            "{denoise_run}": str(self.denoise_run),
            "{separator}": str(self.separator),
            "{x}": str(self.mixtures),
            "{truth}": str(self.truth),
            "{config}": str(self.config),
        }


def demixgan(root: Path, *argv: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "demixgan", *argv],
        cwd=root,
        env=environment(root),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"preparing the sweep failed: demixgan {' '.join(argv)}\n{done.stderr}")


def build_assets(root: Path) -> Assets:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "tiny.toml"
    shutil.copy(TINY_CONFIG, config)
    run, denoise_run, separator = root / "run", root / "denoise-run", root / "separator"
    common = ["--config", str(config), *TINY, "--no-progress"]
    demixgan(root, "train", *common, "--run-dir", str(run))
    demixgan(root, "train", *common, *KNOWN_SINES, "--run-dir", str(denoise_run))
    demixgan(root, "separator", str(run), "-o", str(separator), "--steps", "4", *SMALL_SEPARATOR)
    rng = np.random.default_rng(0)
    parts = (rng.random((3, 2, 1, 28, 28)) * 0.5).astype(np.float32)
    np.save(root / "truth.npy", parts)
    np.save(root / "x.npy", parts.sum(1)[:, 0])
    for entry in (config, root / "x.npy", root / "truth.npy"):
        entry.chmod(0o444)
    return Assets(root, run, denoise_run, separator, root / "x.npy", root / "truth.npy", config)


def copy_run(source: Path, sandbox: Path, name: str = "run") -> Path:
    """A writable copy of a run inside a case's sandbox."""
    target = sandbox / name
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return target
