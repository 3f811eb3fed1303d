"""How much does the stroke search help denoising digits under heavy ``sines`` corruption?

Run: ``.venv/bin/python benchmarks/stroke_search.py STORE [--n 100] [--level 5] [--data-dir
../shared/data/mnist]`` with STORE the checkpoint store of ``demixgan reproduce denoise-test``
(its sines denoiser and MNIST classifier). On validation digits under the curves that choose
denoise-test's level threshold (never the test's), fits G and the curves (the cpu profile's
denoise fit) four ways: curves from the prior, curves from one search (round 1 only), and
``fit_with_stroke_search`` with two rounds and three (what ``denoise --corruption-level`` does);
``--ways`` picks; ``--json OUT`` also writes the figures. Prints per way the share of true
curves that a fitted curve overlaps by more than 30% of the true curve's energy, the
classifier accuracy of u - n_hat and of G(z_hat), and the seconds taken; first, the share that
the search alone finds, on the curves alone and over the digits.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from published import command_line

from demixgan.data.families import SINE_PARAMETERS, sines_image
from demixgan.evaluation.classification import accuracy, load_classifier
from demixgan.experiments.context import Context
from demixgan.experiments.denoising import DENOISERS, validation_seed
from demixgan.experiments.profiles import get_profile
from demixgan.inference.api import load
from demixgan.inference.solver import fit_latents
from demixgan.inference.stroke_search import fit_with_stroke_search, search_strokes
from demixgan.reports.experiment import run_record

#: A fitted curve "finds" a true one when it holds this share of the true curve's energy.
FOUND = 0.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--level", type=int, default=5)
    parser.add_argument("--data-dir")
    parser.add_argument("--ways", nargs="+", help="only these ways (default: all)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = {
        **run_record(command_line(STORE=args.store)),
        "digits": args.n,
        "level": args.level,
        "split": "validation",
        "search_alone": {},
        "ways": {},
    }
    profile = get_profile("cpu")
    context = Context(profile, Path("."), args.store, args.data_dir, progress=False)
    digits = context.validation_digits(args.n, "denoise-digit-sines")
    index = next(i for i, d in enumerate(DENOISERS) if d.family == "sines")
    # the curves of denoise-test's validation draws (validation_corrupted), never the test's
    seed = validation_seed(DENOISERS[index], args.level)
    truth = torch.rand(
        args.n, args.level, SINE_PARAMETERS, generator=torch.Generator().manual_seed(seed)
    )
    observed = digits.images + sines_image(truth, 28, 28)
    classifier, _ = load_classifier(next(args.store.glob("classifier-embedded-all-*")))
    trained = load(next(args.store.glob(f"{DENOISERS[index].config}-*")))
    model = trained.model.with_known_fitted(args.level)
    curves_name = next(name for name in model.learned if name not in trained.model.learned)
    options = profile.denoise_fit
    ways = {
        "curves from the prior": lambda: fit_latents(model, observed, options),
        "one search (round 1)": lambda: fit_latents(
            model,
            observed,
            options,
            initial={curves_name: search_strokes(model.generators[curves_name], observed)},
        ),
        "two searches": lambda: fit_with_stroke_search(
            model, observed, trained.model.learned, options, rounds=2
        ),
        "three searches (denoise)": lambda: fit_with_stroke_search(
            model, observed, trained.model.learned, options
        ),
    }
    curves = model.generators[curves_name]
    for name, images in (("curves alone", observed - digits.images), ("over the digits", observed)):
        found = _found(
            truth, ((search_strokes(curves, images).view(args.n, args.level, -1) + 1) / 2)
        )
        print(f"the search alone, {name}: curves found {found:.1%}", flush=True)
        figures["search_alone"][name] = {"curves_found": round(found, 4)}
    for way, fit_it in ways.items():
        if args.ways and way not in args.ways:
            continue
        start = time.perf_counter()
        fit = fit_it()
        seconds = time.perf_counter() - start
        fitted = (fit.latents[curves_name].view(args.n, args.level, -1) + 1) / 2
        estimates = trained.denoise_estimates(observed, fit)
        scores = {name: accuracy(classifier, x, digits.labels) for name, x in estimates.items()}
        found = _found(truth, fitted.clamp(0, 1))
        print(
            f"{way}: curves found {found:.1%}, accuracy u - n "
            f"{scores['subtract']:.1%}, G(z) {scores['generator']:.1%}, {seconds:.0f} s",
            flush=True,
        )
        figures["ways"][way] = {
            "curves_found": round(found, 4),
            "accuracy_subtract": round(scores["subtract"], 4),
            "accuracy_generator": round(scores["generator"], 4),
            "seconds": round(seconds, 1),
        }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def _found(truth: torch.Tensor, fitted: torch.Tensor) -> float:
    """Share of true curves [n, k, p] that some fitted curve overlaps (energy share > FOUND)."""
    n, k, p = truth.shape
    true_images = sines_image(truth.reshape(-1, 1, p), 28, 28).view(n, k, -1)
    fitted_images = sines_image(fitted.reshape(-1, 1, p), 28, 28).view(n, k, -1)
    overlap = torch.einsum("nid,njd->nij", true_images, fitted_images)
    share = overlap / true_images.pow(2).sum(2, keepdim=True)
    return (share.amax(2) > FOUND).float().mean().item()


if __name__ == "__main__":
    main()
