"""Latent-fit throughput: the batched solver against fitting one latent at a time.

Run: ``.venv/bin/python benchmarks/bench_solver.py [--checkpoint RUN_OR_FILE] [--n 1000]``
(default model: the paper's demixing architecture of
``configs/paper-demix-digit-sines.toml``, freshly initialised: the timing does not depend on
the weights). Prints a Markdown table.

Measured in one process, with the same thread count:

* matmul: ``torch.mm`` of 1024 x 1024 float32 matrices (best GFLOP/s), before and after;
* FLOPs of one solver iteration (forward and backward of the demixing objective) counted with
  ``torch.utils.flop_counter.FlopCounterMode`` for the batched chunk;
* batched: ``fit_latents`` on ``--sample`` observations x ``--restarts`` restarts in one
  tensor; loop: the same observations and restarts fitted one latent at a time (a Python loop
  over images and restarts, batch 1) with the same iterations; the ratio is of latent-iterations
  per second;
* alternating: the same batched fit with the paper's block-coordinate updates (one Adam step per
  generator, the other generators' outputs held constant), against the joint updates;
* the wall time of ``fit_latents`` on ``--n`` digit + sines test mixtures (MNIST test digits in
  ../shared/data/mnist when present) with ``--restarts`` restarts and ``--iterations``.

Targets: batched >= 8x the loop; the batched iteration >= 60% of the matmul rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import cpu_model, load_average, matmul_rate

from demixgan.data.superposition import build_sampler, make_mixtures
from demixgan.inference.loading import load_model
from demixgan.inference.options import FitOptions
from demixgan.inference.solver import fit_latents
from demixgan.spec.config import load_config
from demixgan.spec.factory import build_model
from demixgan.spec.image import MNIST_IMAGE

REPO = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
TARGET_SPEEDUP = 8.0
TARGET_MATMUL = 0.60


def iteration_flops(model, latents: int) -> float:
    """FLOPs of one forward + backward of the objective for ``latents`` latents at once.

    The generators are frozen as in the solver: no weight gradients are computed or counted.
    """
    model.requires_grad_(False)
    z = {k: torch.rand(latents, d, requires_grad=True) for k, d in model.latent_dims().items()}
    target = torch.rand(latents, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        total = sum(model.generators[k](z[k]) for k in model.learned)
        (total - target).pow(2).sum().backward()
    model.requires_grad_(True)
    return float(counter.get_total_flops())


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", help="trained run or .safetensors (default: fresh model)")
    parser.add_argument("--sample", type=int, default=8, help="observations in the ratio test")
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--n", type=int, default=1000, help="mixtures in the wall-time test")
    parser.add_argument("--wall-iterations", type=int, default=500)
    args = parser.parse_args()

    torch.manual_seed(0)
    if args.checkpoint:
        model, _ = load_model(args.checkpoint)
    else:
        config = load_config(REPO / "configs" / "paper-demix-digit-sines.toml")
        model = build_model(config, MNIST_IMAGE)
    model.eval()
    use_shared = SHARED_MNIST.is_dir()
    sampler = build_sampler(
        "digit+sines",
        level=1,
        split="test",
        digit_source="mnist" if use_shared else "mnist-embedded",
        data_dir=SHARED_MNIST if use_shared else None,
    )
    device = torch.device("cpu")
    matmul_before = matmul_rate(1024, 10, device)[0]

    y = make_mixtures(sampler, args.sample, seed=0).mixtures
    latents = args.sample * args.restarts
    iters = args.iterations
    fit_latents(model, y[:1], FitOptions(iterations=3, restarts=2))  # warm-up
    batched = timed(
        lambda: fit_latents(model, y, FitOptions(iterations=iters, restarts=args.restarts))
    )

    alternating = timed(
        lambda: fit_latents(
            model, y, FitOptions(iterations=iters, restarts=args.restarts, update="alternating")
        )
    )

    def one_at_a_time() -> None:
        for i in range(args.sample):
            for r in range(args.restarts):
                fit_latents(model, y[i : i + 1], FitOptions(iterations=iters, restarts=1, seed=r))

    looped = timed(one_at_a_time)
    flops = iteration_flops(model, latents)
    matmul_after = matmul_rate(1024, 10, device)[0]
    matmul = max(matmul_before, matmul_after)
    achieved = flops * iters / batched / 1e9

    rows = [
        ("machine", f"{cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}"),
        ("load average at the end", load_average()),
        ("fp32 matmul 1024 (best, before / after)", f"{matmul_before:.1f} / {matmul_after:.1f}"),
        ("FLOPs per iteration, batched chunk", f"{flops / 1e9:.3f} GFLOP for {latents} latents"),
        (
            f"batched: {args.sample} observations x {args.restarts} restarts, {iters} iterations",
            f"{batched:.2f} s = {latents * iters / batched:,.0f} latent-iterations/s",
        ),
        (
            "alternating updates (the paper's: one Adam step per generator), same work",
            f"{alternating:.2f} s = {alternating / batched:.2f}x the joint updates' time",
        ),
        (
            "loop: one latent at a time, same work",
            f"{looped:.2f} s = {latents * iters / looped:,.0f} latent-iterations/s",
        ),
        (
            "**batched / loop**",
            f"**{looped / batched:.1f}x** (target >= {TARGET_SPEEDUP:.0f}x)",
        ),
        (
            "**batched GFLOP/s**",
            f"**{achieved:.1f} = {achieved / matmul:.1%} of the matmul rate** "
            f"(target >= {TARGET_MATMUL:.0%})",
        ),
    ]
    print("| quantity | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |", flush=True)
    wall_batch = make_mixtures(sampler, args.n, seed=1).mixtures
    wall = timed(
        lambda: fit_latents(
            model, wall_batch, FitOptions(iterations=args.wall_iterations, restarts=args.restarts)
        )
    )
    digits = "MNIST test" if use_shared else "embedded"
    print(
        f"| demix {args.n} test mixtures, {args.restarts} restarts, {args.wall_iterations} "
        f"iterations | {wall:.1f} s ({digits} digits; load average {load_average()}) |"
    )


if __name__ == "__main__":
    main()
