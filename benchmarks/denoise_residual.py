"""Which residual penalty denoises best on heavier corruption than the denoiser was trained on?

Run: ``.venv/bin/python benchmarks/denoise_residual.py STORE [--n 200] [--levels 1 3 5]
[--restarts 4] [--json OUT]`` with STORE the checkpoint store of ``demixgan reproduce
denoise-test`` (its denoisers and MNIST classifier). Denoises validation digits (the split
carved from each denoiser's training digits) under the corruption draws that choose
denoise-test's level threshold (``validation_corrupted``: other seeds than the test's; the test
split is never read) with each residual penalty (``--residuals``; l2 is the paper's) and prints
the classifier accuracy and the per-pixel error of each. Level 0 fits the clean digits: the
ceiling that the generators' coverage sets. ``--fit-corruption`` fits the known corruption too
(at the true level) and scores both G(z_hat) and u - n_hat of that fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from published import command_line

from demixgan.evaluation.classification import accuracy, load_classifier
from demixgan.experiments.context import Context
from demixgan.experiments.denoising import DENOISERS, validation_corrupted
from demixgan.experiments.profiles import get_profile
from demixgan.inference.api import load
from demixgan.inference.options import RESIDUALS
from demixgan.reports.experiment import run_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--residuals", nargs="+", default=list(RESIDUALS))
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--data-dir")
    parser.add_argument("--fit-corruption", action="store_true")
    parser.add_argument("--smoothing", type=float, help="default: the cpu profile's")
    parser.add_argument("--iterations", type=int, help="default: the cpu profile's")
    parser.add_argument("--families", nargs="+", default=[d.family for d in DENOISERS])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    record = run_record(command_line(STORE=args.store))
    profile = get_profile("cpu")
    context = Context(profile, Path("."), args.store, args.data_dir, progress=False)
    classifier, _ = load_classifier(next(args.store.glob("classifier-embedded-all-*")))
    rows = []
    for denoiser in DENOISERS:
        if denoiser.family not in args.families:
            continue
        digits = context.validation_digits(args.n, denoiser.config)
        trained = load(next(args.store.glob(f"{denoiser.config}-*")))
        for level in args.levels:
            # level 0: the clean digits, the fit's ceiling
            corrupted = (
                validation_corrupted(digits.images, denoiser, level) if level else digits.images
            )
            cells = []
            for residual in args.residuals:
                options = dataclasses.replace(
                    profile.denoise_fit,
                    residual=residual,
                    restarts=args.restarts,
                    smoothing=_given(args.smoothing, profile.denoise_fit.smoothing),
                    iterations=_given(args.iterations, profile.denoise_fit.iterations),
                )
                for name, denoised in _estimates(trained, corrupted, options, level, args):
                    score = accuracy(classifier, denoised, digits.labels)
                    error = (denoised - digits.images).pow(2).mean().item()
                    cells.append(f"{residual}{name}: accuracy {score:.1%}, pixel error {error:.4f}")
                    rows.append(
                        {
                            "family": denoiser.family,
                            "level": level,
                            "residual": residual + name,
                            "accuracy": round(score, 4),
                            "pixel_error": round(error, 5),
                        }
                    )
            print(f"{denoiser.family} level {level}: " + "; ".join(cells), flush=True)
    if args.json:
        figures = {**record, "digits": args.n, "split": "validation", "rows": rows}
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def _given(value, default):
    return default if value is None else value


def _estimates(trained, corrupted, options, level, args):
    """(label, estimate) pairs: G(z_hat) of the paper's fit, or both estimates of the fit with
    the corruption modelled (at the test level)."""
    if not (args.fit_corruption and level):
        return [("", trained.denoise(corrupted, options))]
    fit = trained.fit_with_corruption(corrupted, level, options)
    estimates = trained.denoise_estimates(corrupted, fit)
    return [
        (" + corruption fit, G(z)", estimates["generator"]),
        (" + corruption fit, u - n", estimates["subtract"]),
    ]


if __name__ == "__main__":
    main()
