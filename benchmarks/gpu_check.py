"""GAN training, latent fits and the separator on a CUDA device, checked against the CPU.

Run: ``python benchmarks/gpu_check.py [--device cuda] [--steps 200] [--n 2000] [--json OUT]``.
CI has no GPU, so this is what a lent GPU machine runs (docs/BENCHMARKS.md, "On a GPU"):

* training: the demo's config (digit + ink, demixing-GAN) trained ``--steps`` steps on the
  device without a stop, and again stopped half-way and resumed from its checkpoint; the two
  final weights are compared (bit-identical on the CPU, what tests/test_training.py asserts;
  on CUDA with ``torch.use_deterministic_algorithms`` on); every logged loss must be finite;
* the checkpoint written on the device loads on the CPU, and its generators give the same
  images on both (largest pixel difference);
* separation: the shipped demo separator over ``--n`` embedded test mixtures on both, the
  median of ``--rounds`` passes each, and the largest difference of the parts;
* the latent fit (the demo's fit options) of the first 200 of them on both: seconds and the
  PSNR per part, which must agree within 0.1 dB (the fits' arithmetic differs in rounding).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from published import publish

from demixgan.data.superposition import make_mixtures
from demixgan.experiments.demo import (
    DEMO_CONFIG,
    DEMO_FIT,
    DEMO_MODEL,
    asset,
    demo_separator,
    shipped_checkpoint,
)
from demixgan.inference.api import load
from demixgan.io.run_files import STATS_FILE
from demixgan.spec.config import load_config
from demixgan.spec.factory import run_sampler
from demixgan.training import loop

FIT_N = 200


def psnr_per_part(parts: torch.Tensor, truth: torch.Tensor) -> list[float]:
    mse = (parts - truth).pow(2).flatten(2).mean(2).clamp(min=1e-10)
    return [round(v, 3) for v in (10 * torch.log10(1 / mse)).mean(0).tolist()]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    latest = sorted((run_dir / "checkpoints").glob("step-*.safetensors"))[-1]
    return load_file(latest)


def train_twice(device: str, steps: int, work: Path) -> dict:
    """One run without a stop, one stopped half-way and resumed: the same final weights?"""
    settings = (f"train.checkpoint_every={steps // 2}", "train.keep_last=4", "seed=0")
    config = load_config(asset(DEMO_CONFIG), [*settings, f"train.max_steps={steps}"])
    started = time.perf_counter()
    loop.train(config, work / "whole", device=device, progress=False)
    whole_seconds = time.perf_counter() - started
    half = load_config(asset(DEMO_CONFIG), [*settings, f"train.max_steps={steps // 2}"])
    loop.train(half, work / "resumed", device=device, progress=False)
    loop.train(config, work / "resumed", resume=True, device=device, progress=False)
    whole, resumed = final_weights(work / "whole"), final_weights(work / "resumed")
    differ = max((whole[k].float() - resumed[k].float()).abs().max().item() for k in whole)
    losses = [
        json.loads(line)
        for line in (work / "whole" / STATS_FILE).read_text().splitlines()
        if line.strip()
    ]
    finite = all(
        torch.isfinite(torch.tensor([r["loss_d"], r["loss_g"]])).all().item() for r in losses
    )
    return {
        "steps": steps,
        "seconds_per_step": round(whole_seconds / steps, 4),
        "resumed_equals_uninterrupted": differ == 0.0,
        "resumed_largest_weight_difference": differ,
        "losses_finite": finite,
        "run": str(work / "whole"),
    }


def generators_agree(run_dir: Path, device: torch.device) -> float:
    """Largest pixel difference of G(z) on the device and on the CPU, same weights and z."""
    checkpoint = sorted((run_dir / "checkpoints").glob("step-*.json"))[-1]
    trained = load(checkpoint)  # loads on the CPU, whatever device wrote it
    model = trained.model.eval()
    latents = model.sample_latents(64, torch.Generator().manual_seed(0))
    with torch.no_grad():
        on_cpu = model.components(latents)
        model.to(device)
        on_device = model.components({k: v.to(device) for k, v in latents.items()}).cpu()
    return (on_cpu - on_device).abs().max().item()


def timed(rounds: int, device: torch.device, work) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(rounds):
        synchronize(device)
        started = time.perf_counter()
        result = work()
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def separation(device: torch.device, n: int, rounds: int) -> dict:
    trained = load(shipped_checkpoint(DEMO_MODEL))
    test = make_mixtures(run_sampler(trained.config, "test"), n, seed=1)
    separator = demo_separator()
    figures: dict = {"mixtures": n}
    parts = {}
    for where in (torch.device("cpu"), device):
        separator.network.to(where)
        seconds, parts[where.type] = timed(
            rounds, where, lambda: trained.separate(test.mixtures, separator)
        )
        figures[f"separator_{where.type}_seconds"] = round(seconds, 3)
        figures[f"separator_{where.type}_psnr"] = psnr_per_part(parts[where.type], test.components)
    figures["separator_largest_difference"] = (parts["cpu"] - parts[device.type]).abs().max().item()
    fits = {}
    for where in (torch.device("cpu"), device):
        trained.model.to(where)
        seconds, fit = timed(1, where, lambda: trained.demix(test.mixtures[:FIT_N], DEMO_FIT))
        fits[where.type] = psnr_per_part(fit.cpu(), test.components[:FIT_N])
        figures[f"fit_{where.type}_seconds"] = round(seconds, 2)
        figures[f"fit_{where.type}_psnr"] = fits[where.type]
    figures["fit_psnr_agree"] = all(
        abs(a - b) <= 0.1 for a, b in zip(fits["cpu"], fits[device.type], strict=True)
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    figures: dict = {
        "command": "python benchmarks/gpu_check.py "
        f"--device {args.device} --steps {args.steps} --n {args.n} --rounds {args.rounds}",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        figures["training"] = train_twice(args.device, args.steps, Path(tmp))
        figures["training"]["generator_largest_difference_cpu_vs_device"] = generators_agree(
            Path(figures["training"].pop("run")), device
        )
    figures["separation"] = separation(device, args.n, args.rounds)
    return publish(figures, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
