"""Which GAN loss separates better? Train the same demixing recipe with each loss and seed.

Run: ``.venv/bin/python benchmarks/compare_losses.py [--config configs/tiny-split.toml]
[--steps 600] [--seeds 0 1 2] [--n 100]``. For every (loss, seed) it trains the config for
``--steps`` steps, fits latents to ``--n`` held-out digit + sines test mixtures and prints PSNR
per component (best permutation) next to the trivial split y/2, then the mean per loss. The
evidence behind the default ``train.loss`` (docs/training.md).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from demixgan.data.superposition import build_sampler, make_mixtures
from demixgan.evaluation.separation import reference_scores, score_method
from demixgan.inference.api import load
from demixgan.inference.options import FitOptions
from demixgan.spec.config import load_config
from demixgan.training.loop import train

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny-split.toml"))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()

    sampler = build_sampler("digit+sines", level=1, split="test")
    batch = make_mixtures(sampler, args.n, seed=1)
    split = reference_scores(batch.mixtures, batch.components, sampler.names)[1]
    fit = FitOptions(iterations=200, restarts=4, lr=0.05, seed=0)
    results: dict[str, list[dict[str, float]]] = {}
    print("| loss | seed | " + " | ".join(f"{n} PSNR" for n in sampler.names) + " |")
    print("|---|---|" + "---|" * len(sampler.names))
    for loss in ("paper", "hinge"):
        for seed in args.seeds:
            overrides = [f"train.loss={loss}", f"seed={seed}", f"train.max_steps={args.steps}"]
            config = load_config(args.config, overrides)
            with tempfile.TemporaryDirectory() as tmp:
                run = train(config, Path(tmp) / "run", progress=False)
                trained = load(run.run_dir)
                estimates = trained.demix(batch.mixtures, fit)
            score = score_method(loss, estimates, batch.components, sampler.names)
            psnr = {name: score.scores[name]["psnr"][0] for name in sampler.names}
            results.setdefault(loss, []).append(psnr)
            cells = " | ".join(f"{psnr[name]:.2f}" for name in sampler.names)
            print(f"| {loss} | {seed} | {cells} |", flush=True)
    for loss, runs in results.items():
        means = " | ".join(
            f"{statistics.mean(r[name] for r in runs):.2f}" for name in sampler.names
        )
        print(f"| **{loss}** | mean | {means} |")
    cells = " | ".join(f"{split.scores[name]['psnr'][0]:.2f}" for name in sampler.names)
    print(f"| split y/2 | - | {cells} |")


if __name__ == "__main__":
    main()
