"""Budgets chosen on validation mixtures: each trained separator and bound, and the GAN behind it.

Run: ``.venv/bin/python benchmarks/separator_budget.py DIR [DIR ...] [--json OUT]``. Each DIR
is a finished separator or supervised bound, as ``demixgan separator CHECKPOINT -o DIR --steps
S --remix-steps R [--peer supervised]`` leaves it, or a shipped one
(``src/demixgan/assets/demo-ink/separator``, ``.../peers/supervised``). Each is scored with the
model it was trained for (its sidecar's ``trained_for``: the shipped demo model, or a
checkpoint of a run, such as one kept at each GAN budget of a longer run), on the same 500
mixtures of that model's validation split that choose a run's method (inference/choice.py):
per part the mean PSNR (the parts matched to the truth as the reports match them), the mean
over the parts, the separator's budget, the GAN's steps and training seconds as the sidecars
recorded them, and for a run's own separator the lead of the supervised bound trained with
the same steps for the same model, where one is given. The test split is never read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from published import publish

from demixgan.errors import DemixganError
from demixgan.experiments.demo import DEMO_MODEL, asset, shipped_checkpoint
from demixgan.inference.amortized import Separator, load_separator
from demixgan.inference.api import TrainedModel, load
from demixgan.inference.choice import (
    CHOICE_MIXTURES,
    CHOICE_SEED,
    part_psnr,
    validation_mixtures,
)
from demixgan.io.checkpoints import read_sidecar
from demixgan.reports.experiment import run_record

BOUND = "supervised"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("separators", type=Path, nargs="+", help="finished separator directories")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    names = " ".join(str(folder) for folder in args.separators)
    record = run_record(f"python benchmarks/separator_budget.py {names}")
    rows = []
    for folder in args.separators:
        try:
            rows.append(score(folder))
        except DemixganError as error:
            parser.error(f"{folder}: {error}")
    for row in rows:
        bound = [
            other
            for other in rows
            if other["kind"] == BOUND
            and (other["model"], other["steps"], other["remix_steps"])
            == (row["model"], row["steps"], row["remix_steps"])
        ]
        if row["kind"] == "ours" and bound:
            lead = {
                k: v - row["validation_psnr"][k] for k, v in bound[0]["validation_psnr"].items()
            }
            row["bound_lead"] = {k: round(v, 4) for k, v in lead.items()}
    figures = {
        **record,
        "validation": {"mixtures": CHOICE_MIXTURES, "seed": CHOICE_SEED, "split": "validation"},
        "rows": rows,
    }
    return publish(figures, args.json)


def score(folder: Path) -> dict:
    """A finished separator (or supervised bound) scored on the validation mixtures of the
    model it was trained for: per part the mean PSNR, their mean, its budget and the GAN's
    steps. A MixIT or RemixIT peer is refused before anything is scored."""
    separator, sidecar = load_separator(folder)
    kind = sidecar.get("peer") or "ours"
    if kind not in ("ours", BOUND):  # MixIT's outputs need their grouping: refused unscored
        raise DemixganError(f"it is a {kind} peer; give the run's separators and bounds")
    return scored(folder, separator, sidecar, model_of(sidecar))


def scored(folder: Path, separator: Separator, sidecar: dict, trained: TrainedModel) -> dict:
    """``score``'s row for a separator already loaded with its sidecar and model (a caller
    that scores it further loads them once)."""
    kind = sidecar.get("peer") or "ours"
    mixtures, truth = validation_mixtures(trained)
    values = part_psnr(trained, trained.separate(mixtures, separator), truth)
    scores = {
        name: round(value, 4) for name, value in zip(trained.component_names, values, strict=True)
    }
    options = sidecar["options"]
    return {
        "separator": str(folder),
        "kind": kind,
        "model": _shown(trained.checkpoint),
        "gan_steps": read_sidecar(trained.checkpoint)["step"],
        "steps": options["steps"],
        "remix_steps": options["remix_steps"],
        "remix_fraction": options["remix_fraction"],
        "seed": options["seed"],
        "precision": options.get("precision", "float32"),  # float32 before the option existed
        "seconds": sidecar.get("seconds"),
        "validation_psnr": scores,
        "mean_psnr": round(sum(scores.values()) / len(scores), 4),
    }


def model_of(sidecar: dict) -> TrainedModel:
    """The model a separator was trained for: the shipped demo model, or a run's checkpoint."""
    trained_for = sidecar.get("trained_for", "")
    if Path(trained_for).exists():
        return load(trained_for)
    if Path(trained_for).parts[:3] == ("demixgan", "assets", DEMO_MODEL):
        return load(shipped_checkpoint(DEMO_MODEL))
    raise DemixganError(f"the model it was trained for ({trained_for!r}) is not here")


def _shown(checkpoint: Path) -> str:
    """A checkpoint's path as the record shows it: inside the package or the working tree."""
    path = Path(checkpoint).resolve()
    for root, shown in ((asset(""), Path("demixgan/assets")), (Path.cwd(), Path("."))):
        if path.is_relative_to(root.resolve()):
            return (shown / path.relative_to(root.resolve())).as_posix()
    return path.name


if __name__ == "__main__":
    raise SystemExit(main())
