"""Does a denoiser's separator, never told the corruption level, let the MNIST classifier read
the digits? Measured on validation digits, never on the test's.

Run: ``.venv/bin/python benchmarks/denoise_separator.py STORE [--n 200] [--data-dir DIR]
[--json OUT]`` with STORE the checkpoint store of ``demixgan reproduce denoise-test`` (its
denoisers, each with the separator ``demixgan separator RUN --max-level 6`` trains into
``RUN/separator``, and the MNIST classifier). For each denoiser, ``--n`` digits of the
validation split are corrupted at every level of ``inference/options.LEVELS`` by the draws that
choose denoise-test's level threshold (``validation_corrupted``); per level: the classifier's
accuracy on the corrupted digits and on the separator's digit part, and the separator's
milliseconds per image.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from published import publish

from demixgan.evaluation.classification import accuracy, load_classifier
from demixgan.experiments.context import Context
from demixgan.experiments.denoising import DENOISERS, validation_corrupted
from demixgan.experiments.profiles import get_profile
from demixgan.inference.amortized import load_separator
from demixgan.inference.api import load
from demixgan.inference.choice import separator_dir
from demixgan.inference.options import LEVELS
from demixgan.reports.experiment import run_record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--data-dir")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    record = run_record(
        f"python benchmarks/denoise_separator.py STORE --n {args.n}"
        + (" --data-dir DIR" if args.data_dir else "")
    )
    context = Context(get_profile("cpu"), Path("."), args.store, args.data_dir, progress=False)
    classifier, _ = load_classifier(next(args.store.glob("classifier-embedded-all-*")))
    families = {}
    for denoiser in DENOISERS:
        trained = load(next(args.store.glob(f"{denoiser.config}-*")))
        folder = separator_dir(trained.checkpoint)
        if not folder.is_dir():
            continue  # its separator is not trained yet
        separator, metadata = load_separator(folder)
        digits = context.validation_digits(args.n, denoiser.config)
        by_level = {}
        for level in LEVELS:
            corrupted = validation_corrupted(digits.images, denoiser, level)
            start = time.perf_counter()
            separated = trained.separate(corrupted, separator)[:, 0]
            seconds = time.perf_counter() - start
            by_level[str(level)] = {
                "input": round(accuracy(classifier, corrupted, digits.labels), 4),
                "separator": round(accuracy(classifier, separated, digits.labels), 4),
                "ms_per_image": round(1000 * seconds / len(digits), 3),
            }
        families[denoiser.family] = {
            "separator_options": metadata["options"],
            "clean_accuracy": round(accuracy(classifier, digits.images, digits.labels), 4),
            "accuracy_by_level": by_level,
        }
        print(denoiser.family, families[denoiser.family], flush=True)
    figures = {
        **record,
        "validation": {"digits": args.n, "split": "validation", "levels": list(LEVELS)},
        "families": families,
    }
    return publish(figures, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
