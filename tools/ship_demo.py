"""Package a trained demo model and its separator into ``src/demixgan/assets/demo-ink``.

Run: ``.venv/bin/python tools/ship_demo.py RUN SEPARATOR_RUN`` with RUN the run directory
of ``demixgan train --config src/demixgan/assets/experiments/demix-digit-ink.toml`` and
SEPARATOR_RUN the directory ``demixgan separator RUN`` wrote. The generators are exported in
float16 (inference needs nothing else), the run's last evolution grid is copied, the separator
is saved again with its metadata free of this machine's paths, and the default method is
chosen on validation mixtures (inference/choice.py) and recorded beside it.

``tools/ship_demo.py --peers DIR...`` adds the peers (``demixgan separator RUN --peer KIND``
directories, trained for the shipped model) into ``assets/demo-ink/peers/KIND`` and leaves
the model and its separator as they are; ``--separator DIR`` replaces the shipped model's
separator alone (and chooses its default method again).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from demixgan.experiments.demo import DEMO_MODEL, asset
from demixgan.inference.amortized import load_separator, save_separator
from demixgan.inference.api import load
from demixgan.inference.choice import SEPARATOR_DIR, choose, write_choice
from demixgan.inference.loading import export_generators
from demixgan.io.checkpoints import latest_checkpoint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, nargs="?")
    parser.add_argument("separator_run", type=Path, nargs="?")
    parser.add_argument("--peers", type=Path, nargs="+", default=[])
    parser.add_argument("--separator", type=Path, help="replace the shipped separator only")
    args = parser.parse_args()
    if args.peers:
        return ship_peers(args.peers)
    target = asset(DEMO_MODEL)
    if args.separator:
        return ship_separator(args.separator, latest_checkpoint(target).weights_path)
    if target.exists():
        shutil.rmtree(target)
    exported = export_generators(args.run, target, half=True)
    grids = sorted((args.run / "evolution").glob("epoch-*.png"))
    shutil.copyfile(grids[-1], target / "evolution.png")
    return ship_separator(args.separator_run, exported)


def ship_separator(folder: Path, model: Path) -> int:
    """A separator run's separator beside the shipped ``model``, free of machine paths, with
    its default method chosen on validation mixtures."""
    separator, sidecar = load_separator(folder)
    metadata = {
        key: sidecar[key] for key in ("observes", "options", "remixed", "seconds") if key in sidecar
    }
    metadata["trained_for"] = f"demixgan/assets/{DEMO_MODEL}/{model.name}"
    target = asset(DEMO_MODEL) / SEPARATOR_DIR
    shutil.rmtree(target, ignore_errors=True)
    save_separator(separator, target, metadata)
    choice = choose(load(model), separator)
    write_choice(target, choice)
    print(f"shipped the separator of {model.name}; default method {choice['method']}: {choice}")
    return 0


def ship_peers(folders: list[Path]) -> int:
    """Each peer separator into the shipped model's ``peers/KIND``, free of machine paths."""
    from demixgan.inference.choice import PEERS_DIR

    model = latest_checkpoint(asset(DEMO_MODEL))
    for folder in folders:
        separator, sidecar = load_separator(folder)
        kind = sidecar["peer"]
        metadata = {key: sidecar[key] for key in ("peer", "options", "seconds") if key in sidecar}
        metadata["trained_for"] = f"demixgan/assets/{DEMO_MODEL}/{model.weights_path.name}"
        target = asset(f"{DEMO_MODEL}/{PEERS_DIR}/{kind}")
        shutil.rmtree(target, ignore_errors=True)
        save_separator(separator, target, metadata)
        print(f"shipped the {kind} peer into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
