"""The 64 x 64 colour demonstration, end to end: mixtures nobody here drew, learned from alone.

    python examples/photo_demo.py WORK [--report docs/results/photo-demo]

1. builds ``WORK/photos`` with examples/photo_mixtures.py (crops of scikit-image's photographs
   under grey strokes; training, validation and test from different photographs);
2. trains a demixing-GAN on ``WORK/photos/train`` alone: ``demixgan train --config
   examples/photo-demo.toml --mixtures WORK/photos/train`` (the truth never enters training);
3. trains a separator for it: ``demixgan separator WORK/run -o WORK/separator`` (the model's
   draws, then remixing the training mixtures);
4. chooses between the latent fit and the separator on the validation photographs (their
   truth), and reports the chosen method on the held-out test photographs beside ICA, the split
   y/2 and the mixture itself: ``REPORT/metrics.json`` and ``REPORT/report.md``.

Training and the separator resume where they stopped (a finished one is kept as it is), so a
stopped demonstration continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from demixgan.evaluation.separation import markdown_table, score_method
from demixgan.inference.amortized import load_separator
from demixgan.inference.api import load
from demixgan.inference.methods import Ica, Mixture, SeparatorNetwork, Split, build_methods
from demixgan.inference.options import FitOptions, SeparatorOptions
from demixgan.inference.tasks import read_inputs
from demixgan.reports.grids import save_panels

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "photo-demo.toml"
PARTS = ("photo", "strokes")
SEPARATOR = SeparatorOptions(steps=1500, remix_steps=500, batch_size=32, width=16)
FIT = FitOptions(iterations=200, restarts=2, lr=0.05, smoothing=2.0, seed=0, chunk=200)
#: Validation mixtures the two candidate methods are compared on (the fit is the slow one).
VALIDATION_CHOICE = 100


def demixgan(*args: str) -> None:
    """Run one demixgan command as a user would, echoing it."""
    print("$ demixgan " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "demixgan", *args], check=True)


def truth(work: Path, split: str) -> torch.Tensor:
    return torch.from_numpy(np.load(work / "photos" / "truth" / f"{split}.npy"))


def scores(method, mixtures: torch.Tensor, parts: torch.Tensor) -> tuple[tuple, float]:
    """A method's (scores, parts) on mixtures with their true parts, and the seconds taken."""
    started = time.perf_counter()
    estimates = method.separate(mixtures)
    seconds = time.perf_counter() - started
    score = score_method(method.name, estimates, parts, list(PARTS), list(method.part_names))
    return (score, estimates), seconds


def mean_psnr(score) -> float:
    return sum(values["psnr"][0] for values in score.scores.values()) / len(score.scores)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="working directory (data, run, separator)")
    parser.add_argument("--report", type=Path, default=Path("docs/results/photo-demo"))
    args = parser.parse_args(argv)
    work = args.work
    photos, run, separator_dir = work / "photos", work / "run", work / "separator"
    if not photos.exists():
        subprocess.run([sys.executable, str(HERE / "photo_mixtures.py"), str(photos)], check=True)
    if (run / "config.json").exists():  # continued where it stopped; a finished run stays
        demixgan("train", "--resume", str(run), "--no-progress")
    else:
        demixgan("train", "--config", str(CONFIG), "--mixtures", str(photos / "train"),
                 "--run-dir", str(run), "--no-progress")  # fmt: skip
    if separator_dir.exists():
        demixgan("separator", "--resume", str(separator_dir))
    else:
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in asdict(SEPARATOR).items()]
        demixgan("separator", str(run), "-o", str(separator_dir), *flags)
    trained = load(run)
    separator = load_separator(separator_dir)[0]
    candidates = {
        "latent fit": build_methods(["fit"], trained, FIT)[0],
        "separator": SeparatorNetwork(trained, separator),
    }
    validation = read_inputs(trained, [photos / "validation"]).floats()[:VALIDATION_CHOICE]
    validation_parts = truth(work, "validation")[:VALIDATION_CHOICE]
    chosen_on = {}
    for label, method in candidates.items():
        (score, _), seconds = scores(method, validation, validation_parts)
        chosen_on[label] = {"mean_psnr": mean_psnr(score), "scores": score.scores, "s": seconds}
    chosen = max(chosen_on, key=lambda label: chosen_on[label]["mean_psnr"])
    test = read_inputs(trained, [photos / "test"]).floats()
    test_parts = truth(work, "test")
    rows, seconds, parts = [], {}, {}
    for method in (candidates[chosen], Ica(2), Split(2), Mixture(2)):
        (score, parts[method.name]), seconds[method.name] = scores(method, test, test_parts)
        rows.append(score)
    split = next(r for r in rows if r.method == Split(2).name)
    gains = {
        part: rows[0].scores[part]["psnr"][0] - split.scores[part]["psnr"][0] for part in PARTS
    }
    command = f"python examples/photo_demo.py WORK --report {args.report}"
    metrics = {
        "command": command,
        "data": "examples/photo_mixtures.py defaults: 6,000 training, 500 validation, 500 test "
        "mixtures 0.6 photo + 0.4 sines (level 1), 3 x 64 x 64; training photographs astronaut, "
        "coffee, hubble_deep_field, ihc, motorcycle_left, retina; validation chelsea; test "
        "rocket (scikit-image's data folder)",
        "training": json.loads((run / "config.json").read_text())["train"],
        "training_minutes": _minutes(run),
        "separator": asdict(SEPARATOR),
        "fit": asdict(FIT),
        "choice": {
            "between": list(candidates),
            "on": f"the first {VALIDATION_CHOICE} validation mixtures (mean PSNR of the parts)",
            "validation": chosen_on,
            "chosen": chosen,
        },
        "test": {
            "n": int(test.shape[0]),
            "scores": {row.method: row.scores for row in rows},
            "matching": {row.method: row.matching for row in rows},
            "seconds": seconds,
            "gain_over_split": gains,
        },
    }
    args.report.mkdir(parents=True, exist_ok=True)
    shown, chosen_parts = 8, parts[rows[0].method][:8]
    names = list(candidates[chosen].part_names)
    order = [names.index(rows[0].matching[name]) for name in PARTS]  # estimate of each part
    save_panels(
        [("test mixture", test[:shown])]
        + [(f"{name}: truth", test_parts[:shown, k]) for k, name in enumerate(PARTS)]
        + [(f"{name}: {chosen}", chosen_parts[:, order[k]]) for k, name in enumerate(PARTS)],
        args.report / "separations.png",
        ncol=1,
        title=f"{shown} of the {test.shape[0]} test mixtures (rocket.jpg)",
    )
    (args.report / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    table = markdown_table(rows, list(PARTS), int(test.shape[0]))
    (args.report / "report.md").write_text(_report(metrics, table), encoding="utf-8")
    print(table)
    return 0


def _minutes(run: Path) -> float:
    from demixgan.io.run_files import training_minutes

    return round(training_minutes(run, json.loads((run / "config.json").read_text())["train"]
                                  ["batch_size"]), 1)  # fmt: skip


def _report(metrics: dict, table: str) -> str:
    choice = metrics["choice"]
    lines = [
        "# 64 x 64 colour mixtures learned from alone (examples/photo_demo.py)",
        "",
        f"Command: `{metrics['command']}`.",
        "",
        f"Data: {metrics['data']}. The truth is written apart and read only to score.",
        "",
        f"Training: `demixgan train --config examples/photo-demo.toml --mixtures "
        f"WORK/photos/train`, {metrics['training']['max_steps']} steps of batch "
        f"{metrics['training']['batch_size']} ({metrics['training_minutes']} min). Separator: "
        f"{metrics['separator']['steps']} steps on the model's draws, then "
        f"{metrics['separator']['remix_steps']} of remixing the training mixtures.",
        "",
        f"Choice on validation ({choice['on']}): "
        + ", ".join(f"{k} {v['mean_psnr']:.2f} dB" for k, v in choice["validation"].items())
        + f" -> **{choice['chosen']}**.",
        "",
        f"Held-out test mixtures ({metrics['test']['n']}, another photograph):",
        "",
        table,
        "",
        "Gain of the chosen method over the split y/2 (PSNR, dB): "
        + ", ".join(f"{k} {v:+.2f}" for k, v in metrics["test"]["gain_over_split"].items())
        + ".",
        "",
        "![test separations](separations.png)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
