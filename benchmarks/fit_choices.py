"""The latent fit's learning rate and smoothing chosen on validation mixtures; its budget measured.

Run: ``python benchmarks/fit_choices.py [--models MODEL ...] [--n 50] [--fit fit|survey_fit]
[--candidates ITERATIONS:RESTARTS:LR:SMOOTHING ...] [--json OUT]``. Each candidate fits every
learned part (``TrainedModel.demix``, the reports' "demixing-GAN" row: the fitted parts made
consistent with the mixture) to the first ``--n`` of the validation mixtures that choose a
run's method (inference/choice.py, seed 4,000,037) of each model: by default the two shipped
ones, the paper's binary digit + sines (``demo``) and the demo's digit + ink (``demo-ink``).
A MODEL is a checkpoint or a run directory. Per model and candidate: each part's mean PSNR,
their mean, the mean gain over the cpu profile's fit on the same mixtures with its paired
standard error, and the fit's seconds. ``--fit`` names which of the profile's fits is the
reference: ``fit`` (300 x 10, demix-test's and demix-k3's) or ``survey_fit`` (300 x 4, the
reports that separate several models).

Two questions, kept apart. The options: among the candidates with the profile's budget
(iterations x restarts), the highest mean over the models wins, but the profile's own options
stay unless another beats them by more than ``--tie`` dB. The budget: the other candidates show
what a shorter or longer fit gains for its seconds; it is a cost the reports' time sets, so it
is measured here, not chosen by the highest score. The test split is never read.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

from published import command_line, publish

from demixgan.errors import DemixganError
from demixgan.experiments.demo import DEMO_MODEL, shipped_checkpoint
from demixgan.experiments.profiles import get_profile
from demixgan.inference.api import load
from demixgan.inference.choice import CHOICE_SEED, per_mixture_psnr, validation_mixtures
from demixgan.inference.options import FitOptions
from demixgan.reports.experiment import run_record

#: The grid of the recorded choice: the cpu profile's fit as it was then (300 x 10, lr 0.05,
#: smoothing 2), one change at a time.
CANDIDATES = (
    "300:10:0.05:2",
    "300:10:0.01:2",
    "300:10:0.1:2",
    "300:10:0.05:0",
    "300:10:0.05:4",
    "150:10:0.05:2",
    "600:10:0.05:2",
    "300:4:0.05:2",
)


def candidate(text: str, base: FitOptions) -> FitOptions:
    """Fit options from ``ITERATIONS:RESTARTS:LR:SMOOTHING`` over ``base``."""
    try:
        iterations, restarts, lr, smoothing = text.split(":")
        return replace(
            base,
            iterations=int(iterations),
            restarts=int(restarts),
            lr=float(lr),
            smoothing=float(smoothing),
        )
    except (TypeError, ValueError) as error:
        raise DemixganError(
            f"a fit candidate is ITERATIONS:RESTARTS:LR:SMOOTHING, got {text!r} ({error})"
        ) from None


def label(fit: FitOptions) -> str:
    """A candidate as its command line names it."""
    return f"{fit.iterations}:{fit.restarts}:{fit.lr:g}:{fit.smoothing:g}"


def options_chosen(means: list[dict], base: FitOptions, tie: float) -> dict:
    """Among the candidates with ``base``'s budget, the best mean over the models; ``base``
    itself unless the best beats it by more than ``tie`` dB."""
    budget = base.iterations * base.restarts
    same = [row for row in means if row["iterations"] * row["restarts"] == budget]
    best = max(same, key=lambda row: row["mean_psnr"])
    own = next(row for row in same if row["candidate"] == label(base))
    return best if best["mean_psnr"] > own["mean_psnr"] + tie else own


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["demo", DEMO_MODEL])
    parser.add_argument("--n", type=int, default=50, help="validation mixtures per model")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--tie", type=float, default=0.1, help="dB that count as no gain")
    parser.add_argument(
        "--fit", choices=("fit", "survey_fit"), default="fit", help="the profile's fit compared"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    record = run_record(command_line())
    base = getattr(get_profile("cpu"), args.fit)
    rows = []
    try:
        options = [candidate(text, base) for text in args.candidates]
        # The gains are measured against the profile's fit, so it is fitted first.
        options = [base, *(fit for fit in options if label(fit) != label(base))]
        for name in args.models:
            path = shipped_checkpoint(name) if name in ("demo", DEMO_MODEL) else name
            trained = load(path)
            mixtures, truth = validation_mixtures(trained, args.n)
            scores = {}
            for fit in options:
                started = time.perf_counter()
                scores[label(fit)] = per_mixture_psnr(trained, trained.demix(mixtures, fit), truth)
                seconds = time.perf_counter() - started
                gain = (scores[label(fit)] - scores[label(base)]).mean(1)
                means = scores[label(fit)].mean(0).tolist()
                rows.append(
                    {
                        "model": name,
                        "candidate": label(fit),
                        "validation_psnr": {
                            k: round(v, 4)
                            for k, v in zip(trained.component_names, means, strict=True)
                        },
                        "mean_psnr": round(sum(means) / len(means), 4),
                        "gain_over_profile": round(gain.mean().item(), 4),
                        "gain_standard_error": round(gain.std().item() / len(gain) ** 0.5, 4),
                        "seconds": round(seconds, 1),
                    }
                )
                print(rows[-1], flush=True)
    except DemixganError as error:
        parser.error(str(error))
    means = [
        {
            "candidate": label(fit),
            "iterations": fit.iterations,
            "restarts": fit.restarts,
            "lr": fit.lr,
            "smoothing": fit.smoothing,
            "mean_psnr": round(
                sum(row["mean_psnr"] for row in rows if row["candidate"] == label(fit))
                / len(args.models),
                4,
            ),
        }
        for fit in options
    ]
    figures = {
        **record,
        "validation": {"mixtures": args.n, "seed": CHOICE_SEED, "split": "validation"},
        "profile_fit": {"field": args.fit, **asdict(base)},
        "tie_db": args.tie,
        "rows": rows,
        "means": means,
        "options_chosen": options_chosen(means, base, args.tie),
    }
    return publish(figures, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
