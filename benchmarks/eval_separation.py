"""Quick latent-fit check of a demixing run: PSNR per component on held-out test mixtures.

Run: .venv/bin/python benchmarks/eval_separation.py RUN_DIR [--n 200] [--iterations 300]
Digits come from the MNIST test set in ../shared/data/mnist when present, else from the
embedded test split; the other component is drawn fresh (seeded). Prints mean +- std PSNR per
component (best permutation), next to the trivial split y/2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from demixgan.data.superposition import build_sampler, make_mixtures
from demixgan.evaluation.metrics import match_components, psnr
from demixgan.inference.loading import load_model
from demixgan.inference.options import FitOptions
from demixgan.inference.solver import fit_latents

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    model, config = load_model(args.run)
    use_shared = SHARED_MNIST.is_dir()
    sampler = build_sampler(
        config.data.recipe,
        level=config.data.level,
        split="test",
        digit_source="mnist" if use_shared else "mnist-embedded",
        data_dir=SHARED_MNIST if use_shared else None,
    )
    batch = make_mixtures(sampler, args.n, args.seed)
    fit = fit_latents(
        model,
        batch.mixtures,
        FitOptions(iterations=args.iterations, restarts=args.restarts, seed=args.seed),
    )
    order = match_components(fit.components, batch.components)
    result = {"run": args.run, "n": args.n, "digits": "mnist-test" if use_shared else "embedded"}
    for t, name in enumerate(sampler.names):
        est = psnr(fit.components[:, order[t]], batch.components[:, t])
        half = psnr(batch.mixtures / 2, batch.components[:, t])
        result[name] = {
            "psnr": round(est.mean().item(), 2),
            "std": round(est.std().item(), 2),
            "split_psnr": round(half.mean().item(), 2),
            "generator": model.learned[order[t]],
        }
    result["fit_mse"] = round(fit.measurement_error.mean().item(), 5)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
