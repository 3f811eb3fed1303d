"""Package a trained demo model and its separator into ``src/demixgan/assets/demo-ink``.

Run: ``.venv/bin/python tools/ship_demo.py RUN SEPARATOR_RUN`` with RUN the run directory
of ``demixgan train --config src/demixgan/assets/experiments/demix-digit-ink.toml`` and
SEPARATOR_RUN the directory ``demixgan separator RUN`` wrote. The generators are exported in
float16 (inference needs nothing else), the run's last evolution grid is copied, the separator
is saved again with its metadata free of this machine's paths, and the default method is
chosen on validation mixtures (inference/choice.py) and recorded beside it.

``tools/ship_demo.py --peers DIR...`` adds the peers (``demixgan separator RUN --peer KIND``
directories, trained for the shipped model) into ``assets/demo-ink/peers/KIND`` and leaves
the model and its separator as they are.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, nargs="?")
    parser.add_argument("separator_run", type=Path, nargs="?")
    parser.add_argument("--peers", type=Path, nargs="+", default=[])
    args = parser.parse_args()
    if args.peers:
        return ship_peers(args.peers)
    target = asset(DEMO_MODEL)
    if target.exists():
        shutil.rmtree(target)
    exported = export_generators(args.run, target, half=True)
    grids = sorted((args.run / "evolution").glob("epoch-*.png"))
    shutil.copyfile(grids[-1], target / "evolution.png")
    separator, sidecar = load_separator(args.separator_run)
    metadata = {
        key: sidecar[key] for key in ("observes", "options", "remixed", "seconds") if key in sidecar
    }
    metadata["trained_for"] = f"demixgan/assets/{DEMO_MODEL}/{exported.name}"
    save_separator(separator, target / SEPARATOR_DIR, metadata)
    trained = load(exported)
    choice = choose(trained, separator)
    write_choice(target / SEPARATOR_DIR, choice)
    print(f"shipped {exported} and its separator; default method {choice['method']}: {choice}")
    return 0


def ship_peers(folders: list[Path]) -> int:
    """Each peer separator into the shipped model's ``peers/KIND``, free of machine paths."""
    from demixgan.inference.choice import PEERS_DIR
    from demixgan.io.checkpoints import latest_checkpoint

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
