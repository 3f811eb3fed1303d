"""All 10,000 MNIST-test mixtures of the demo's setting separated by the shipped separator.

Run: ``.venv/bin/python benchmarks/separate_10k.py --data-dir DIR [--rounds 3] [--fit-n 1000]
[--json OUT]``, DIR holding MNIST's test files (``t10k-images-idx3-ubyte[.gz]``): the 10,000
test digits, each crossed by a fresh ink stroke (digit + ink, level 1, clipped, as the demo's
model trained). The separator's wall time (median of ``--rounds``) covers the whole pass over
the 10,000 mixtures: the U-Net in chunks and nothing else. Its PSNR per part stands beside the
split y/2 and the best pixel-value rule (fitted on 2,000 mixtures of the validation split
with their truth, as in the demo); the latent fit of the demo's ``--method fit`` budget
is timed on the first ``--fit-n`` mixtures and scaled to 10,000.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
from published import publish

from demixgan.data.superposition import make_mixtures
from demixgan.experiments.demo import DEMO_FIT, DEMO_MODEL, demo_separator, shipped_checkpoint
from demixgan.inference.api import load
from demixgan.inference.methods import Split
from demixgan.inference.tasks import validation_pixel_rule
from demixgan.spec.factory import run_sampler

TEST_MIXTURES = 10_000


def psnr_per_part(parts: torch.Tensor, truth: torch.Tensor) -> list[float]:
    mse = (parts - truth).pow(2).flatten(2).mean(2).clamp(min=1e-10)
    return [round(v, 2) for v in (10 * torch.log10(1 / mse)).mean(0).tolist()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="MNIST's test files")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fit-n", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    trained = load(shipped_checkpoint(DEMO_MODEL))
    separator = demo_separator()
    config = trained.config
    full_mnist = replace(
        config, data=replace(config.data, digit_source="mnist", data_dir=args.data_dir)
    )
    test_sampler = run_sampler(full_mnist, "test")
    if test_sampler.size != TEST_MIXTURES:
        raise SystemExit(f"{args.data_dir} holds {test_sampler.size} test digits, not 10,000")
    test = make_mixtures(test_sampler, TEST_MIXTURES, seed=1)
    rule = validation_pixel_rule(run_sampler(trained.config, "validation"))
    seconds = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        parts = trained.separate(test.mixtures, separator)
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    started = time.perf_counter()
    trained.demix(test.mixtures[: args.fit_n], DEMO_FIT)
    fit_seconds = (time.perf_counter() - started) * TEST_MIXTURES / args.fit_n
    figures = {
        "command": "python benchmarks/separate_10k.py --data-dir MNIST_DIR "
        f"--rounds {args.rounds} --fit-n {args.fit_n}",
        "mixtures": TEST_MIXTURES,
        "threads": torch.get_num_threads(),
        "parts": list(trained.component_names),
        "separator_seconds": [round(s, 2) for s in seconds],
        "separator_median_seconds": round(median, 2),
        "mixtures_per_second": round(TEST_MIXTURES / median),
        "psnr": {
            "separator": psnr_per_part(parts, test.components),
            "split y/2": psnr_per_part(Split(2).separate(test.mixtures), test.components),
            "pixel-value rule (fitted with truth)": psnr_per_part(
                rule.separate(test.mixtures), test.components
            ),
        },
        "latent_fit": {
            "options": DEMO_FIT.__dict__,
            "timed_on": args.fit_n,
            "seconds_scaled_to_10000": round(fit_seconds),
        },
    }
    return publish(figures, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
