"""How to estimate how many curves corrupt each image: fit every level, or fit the largest once and
drop surplus curves? Chosen on validation digits, never on the test's.

Run: ``.venv/bin/python benchmarks/level_estimation.py STORE [--n 50]
[--data-dir ../shared/data/mnist] [--json OUT] [--ways WAY ...]`` with STORE the checkpoint store of
``demixgan reproduce denoise-test`` (its denoiser and MNIST classifier). On ``--n`` digits of
the validation split corrupted at each level of ``inference/options.LEVELS`` (1..6, the levels
denoise-test tries) by the draws that choose denoise-test's threshold
(``validation_corrupted``), each way (inference/level.py) is run with the cpu profile's
denoise fit: ``every level`` fits G beside k items for every such k (``LevelFits``),
``largest level, pruned`` fits the largest k once and drops items (``PrunedItems``). Per way: the
share of levels recovered at each threshold, and at the best one the classifier accuracy of
u - n_hat per true level, beside the fit at the true level (level given), and the seconds.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

from published import publish

from demixgan.evaluation.classification import accuracy, load_classifier
from demixgan.experiments.context import Context
from demixgan.experiments.denoising import DENOISERS, validation_corrupted
from demixgan.experiments.profiles import get_profile
from demixgan.inference.api import load
from demixgan.inference.level import LevelFits, PrunedItems, choose_threshold
from demixgan.inference.options import LEVELS
from demixgan.reports.experiment import run_record

WAYS = ("every level", "largest level, pruned")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--data-dir")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=WAYS, help="default: both")
    args = parser.parse_args()
    record = run_record(
        f"python benchmarks/level_estimation.py STORE --n {args.n}"
        + (" --data-dir DIR" if args.data_dir else "")
        + ("" if set(args.ways) == set(WAYS) else " --ways " + " ".join(map(repr, args.ways)))
    )
    profile = get_profile("cpu")
    context = Context(profile, Path("."), args.store, args.data_dir, progress=False)
    digits = context.validation_digits(args.n, "denoise-digit-sines")
    classifier, _ = load_classifier(next(args.store.glob("classifier-embedded-all-*")))
    denoiser = next(d for d in DENOISERS if d.family == "sines")  # lines count themselves
    trained = load(next(args.store.glob(f"{denoiser.config}-*")))
    options = profile.denoise_fit
    corrupted = {level: validation_corrupted(digits.images, denoiser, level) for level in LEVELS}

    def every_level(images) -> LevelFits:
        fits = {k: trained.fit_with_corruption(images, k, options) for k in LEVELS}
        return LevelFits(LEVELS, fits)

    def pruned(images) -> PrunedItems:
        return trained.fit_levels(images, LEVELS, options)

    def read(images, fit) -> float:
        estimate = trained.denoise_estimates(images, fit)["subtract"]
        return round(accuracy(classifier, estimate, digits.labels), 4)

    ways = {}
    for way, fit_levels in zip(WAYS, (every_level, pruned), strict=True):
        if way not in args.ways:
            continue
        start = time.perf_counter()
        by_level = {level: fit_levels(images) for level, images in corrupted.items()}
        seconds = time.perf_counter() - start
        threshold, shares = choose_threshold([(fits, level) for level, fits in by_level.items()])
        selected = {level: fits.select(threshold) for level, fits in by_level.items()}
        ways[way] = {
            "seconds": round(seconds, 1),
            "threshold": threshold,
            "share_right": {str(t): round(share, 4) for t, share in shares.items()},
            "accuracy_estimated": {
                str(level): read(corrupted[level], fit) for level, (_, fit) in selected.items()
            },
            "accuracy_given": {
                str(level): read(corrupted[level], fits.fits[level])
                for level, fits in by_level.items()
                if level in fits.fits
            },
        }
        print(way, ways[way], flush=True)
    figures = {
        **record,
        "validation": {"digits": len(digits), "split": "validation", "levels": list(LEVELS)},
        "clean_accuracy": round(accuracy(classifier, digits.images, digits.labels), 4),
        "fit": asdict(options),
        "ways": ways,
    }
    return publish(figures, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
