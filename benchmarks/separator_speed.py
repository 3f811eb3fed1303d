"""Seconds per mixture: a separator network's one pass against the latent fit it replaces.

Run: ``.venv/bin/python benchmarks/separator_speed.py RUN [--n 50]``, RUN a demixing run (the
timing does not depend on how well either is trained, so the separator here is untrained, of
the default width). The fit is the cpu profile's survey fit (300 Adam iterations x 4
restarts). Both run on the same N test-sized mixtures drawn from the run's own model.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from demixgan.experiments.profiles import get_profile
from demixgan.inference.amortized import Separator
from demixgan.inference.api import load
from demixgan.inference.options import SeparatorOptions
from demixgan.networks.separators import UNetSeparator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args()
    trained = load(args.run)
    model = trained.model.eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mixtures = model.components(model.sample_latents(args.n, g)).sum(1)
    options = SeparatorOptions()
    network = UNetSeparator(len(model.names), width=options.width)
    separator = Separator(network, model.names, options.chunk)
    timings = {}
    start = time.perf_counter()
    trained.separate(mixtures, separator)
    timings["separator (one pass + projection)"] = time.perf_counter() - start
    fit = dataclasses.replace(get_profile("cpu").survey_fit, chunk=4096)
    start = time.perf_counter()
    trained.demix(mixtures, fit)
    timings[f"latent fit ({fit.iterations} iterations x {fit.restarts} restarts)"] = (
        time.perf_counter() - start
    )
    fastest = min(timings.values())
    for name, seconds in timings.items():
        print(
            f"{name}: {seconds / args.n * 1000:.2f} ms per mixture "
            f"({seconds / fastest:.0f}x the fastest), {args.n} mixtures, "
            f"{torch.get_num_threads()} threads"
        )


if __name__ == "__main__":
    main()
