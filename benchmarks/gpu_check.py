"""GAN training, latent fits and the separator on a CUDA device, checked against the CPU.

Run: ``python benchmarks/gpu_check.py [--device cuda] [--steps 200] [--n 2000] [--checks
training,separation,separator-training] [--json OUT]``. CI has no GPU, so this is what a lent
GPU machine runs (docs/BENCHMARKS.md, "On a GPU"):

* training: the demo's config (digit + ink, demixing-GAN) trained ``--steps`` steps on the
  device without a stop, and again stopped half-way and resumed from its checkpoint; the two
  final weights are compared (bit-identical on the CPU, what tests/test_training.py asserts;
  on CUDA with ``torch.use_deterministic_algorithms`` on); every logged loss must be finite;
* the checkpoint written on the device loads on the CPU, and its generators give the same
  images on both (largest pixel difference);
* separation: the shipped demo separator over ``--n`` embedded test mixtures on both, the
  median of ``--rounds`` passes each, and the largest difference of the parts;
* the latent fit (the demo's fit options) of the first 200 of them on both: seconds and the
  PSNR per part, which must agree within 0.1 dB (the fits' arithmetic differs in rounding);
* separator training (``demixgan separator --device``): the demo model's separator trained
  ``--separator-steps`` + as many remixing steps on the CPU and twice on the device: seconds
  per step, the same weights twice on the device, and the PSNR per part of each on ``--n``
  validation mixtures;
* the inference commands (``--device``), each run by the CLI on the CPU and on the device:
  ``demix`` (latent fit) and ``cs`` (100 measurements) of 50 of the demo's test mixtures,
  ``evaluate`` of 50 with the fit and the shipped separator, and ``denoise --corruption-level
  auto`` (the ink strokes fitted beside G, from the stroke search) by a denoising-GAN trained
  ``--steps`` steps on the device: exit status, seconds and PSNR per part of each; and
  ``demo`` and ``reproduce demix-k3 --profile smoke`` (exit status, seconds, the recorded
  command, which names a device other than the CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from published import command_line, publish
from safetensors.torch import load_file

from demixgan.data.superposition import make_mixtures
from demixgan.evaluation.metrics import psnr
from demixgan.experiments.demo import (
    DEMO_CONFIG,
    DEMO_FIT,
    DEMO_MODEL,
    asset,
    demo_separator,
    shipped_checkpoint,
)
from demixgan.inference.api import load
from demixgan.inference.choice import CHOICE_SEED
from demixgan.inference.options import SeparatorOptions
from demixgan.io import checkpoints
from demixgan.io.run_files import STATS_FILE, read_stats
from demixgan.spec.config import load_config
from demixgan.spec.factory import run_sampler
from demixgan.training import loop
from demixgan.training.separator import train_model_separator

FIT_N = 200


def psnr_per_part(parts: torch.Tensor, truth: torch.Tensor) -> list[float]:
    return [round(psnr(parts[:, k], truth[:, k]).mean().item(), 3) for k in range(parts.shape[1])]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def final_checkpoint(run_dir: Path) -> Path:
    return checkpoints.latest_checkpoint(run_dir / "checkpoints").weights_path


def train_twice(device: torch.device, steps: int, work: Path) -> dict:
    """One run without a stop, one stopped half-way and resumed: the same final weights? And
    does the uninterrupted run's checkpoint give the same generators on the CPU?"""
    settings = (f"train.checkpoint_every={steps // 2}", "train.keep_last=4", "seed=0")
    config = load_config(asset(DEMO_CONFIG), [*settings, f"train.max_steps={steps}"])
    started = time.perf_counter()
    loop.train(config, work / "whole", device=str(device), progress=False)
    whole_seconds = time.perf_counter() - started
    half = load_config(asset(DEMO_CONFIG), [*settings, f"train.max_steps={steps // 2}"])
    loop.train(half, work / "resumed", device=str(device), progress=False)
    loop.train(config, work / "resumed", resume=True, device=str(device), progress=False)
    whole = load_file(final_checkpoint(work / "whole"))
    resumed = load_file(final_checkpoint(work / "resumed"))
    differ = max((whole[k].float() - resumed[k].float()).abs().max().item() for k in whole)
    losses = read_stats(work / "whole" / STATS_FILE)
    return {
        "steps": steps,
        "seconds_per_step": round(whole_seconds / steps, 4),
        "resumed_equals_uninterrupted": differ == 0.0,
        "resumed_largest_weight_difference": differ,
        "losses_finite": all(math.isfinite(r[k]) for r in losses for k in ("loss_d", "loss_g")),
        "generator_largest_difference_cpu_vs_device": generators_agree(
            final_checkpoint(work / "whole"), device
        ),
    }


def generators_agree(checkpoint: Path, device: torch.device) -> float:
    """Largest pixel difference of G(z) on the device and on the CPU, same weights and z."""
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
        fitter = load(shipped_checkpoint(DEMO_MODEL), where)  # the fits run there
        seconds, fit = timed(
            1, where, lambda fitter=fitter: fitter.demix(test.mixtures[:FIT_N], DEMO_FIT)
        )
        fits[where.type] = psnr_per_part(fit, test.components[:FIT_N])
        figures[f"fit_{where.type}_seconds"] = round(seconds, 2)
        figures[f"fit_{where.type}_psnr"] = fits[where.type]
    figures["fit_psnr_agree"] = all(
        abs(a - b) <= 0.1 for a, b in zip(fits["cpu"], fits[device.type], strict=True)
    )
    return figures


def separator_training(device: torch.device, steps: int, n: int) -> dict:
    """The demo model's separator trained on the CPU and twice on ``device``."""
    trained = load(shipped_checkpoint(DEMO_MODEL))
    options = SeparatorOptions(steps=steps, remix_steps=steps)
    held_out = make_mixtures(run_sampler(trained.config, "validation"), n, seed=CHOICE_SEED)
    figures: dict = {"steps": steps, "remix_steps": steps, "validation_mixtures": n}
    weights = {}
    for label, where in (("cpu", torch.device("cpu")), ("device", device), ("again", device)):
        synchronize(where)
        started = time.perf_counter()
        separator = train_model_separator(trained, options, device=where)
        synchronize(where)
        weights[label] = separator.network.state_dict()
        if label != "again":
            figures[f"{label}_seconds_per_step"] = round(
                (time.perf_counter() - started) / (2 * steps), 4
            )
            parts = trained.separate(held_out.mixtures, separator)
            figures[f"{label}_psnr"] = psnr_per_part(parts, held_out.components)
    figures["device_repeatable"] = all(
        torch.equal(weights["device"][k], weights["again"][k]) for k in weights["device"]
    )
    return figures


def inference_commands(device: torch.device, steps: int, work: Path) -> dict:
    """``demix``, ``cs``, ``evaluate``, ``denoise``, ``demo`` and ``reproduce demix-k3``
    (smoke profile) by the CLI with ``--device`` cpu and the device: do they finish, how fast,
    do their PSNRs agree, and does the report record the device?"""
    trained = load(shipped_checkpoint(DEMO_MODEL))
    test = make_mixtures(run_sampler(trained.config, "test"), 50, seed=1)
    mixtures, parts = work / "mixtures.npy", work / "parts.npy"
    np.save(mixtures, test.mixtures.numpy())
    np.save(parts, test.components.numpy())
    settings = ("seed=0", f"train.max_steps={steps}", f"train.checkpoint_every={steps}")
    denoiser = work / "denoiser"
    config = load_config(asset("experiments/denoise-digit-ink.toml"), settings)
    loop.train(config, denoiser, device=str(device), progress=False)
    corrupted = work / "corrupted.npy"
    ink = make_mixtures(run_sampler(config, "test"), 20, seed=1)
    np.save(corrupted, ink.mixtures.numpy())
    np.save(work / "clean.npy", ink.components[:, 0].numpy())
    fast = ["--iterations", "100", "--restarts", "4", "--lr", "0.05", "--no-progress"]
    demo = str(shipped_checkpoint(DEMO_MODEL))
    commands = {
        "demix": ["demix", demo, mixtures, "--method", "fit", "--truth", parts, *fast],
        "cs": ["cs", demo, mixtures, "--measurements", "100", "--truth", parts, *fast],
        "denoise": [
            "denoise",
            denoiser,
            corrupted,
            "--corruption-level",
            "auto",
            "--truth",
            work / "clean.npy",
            *fast,
        ],
    }
    figures: dict = {}
    for label, where in (("cpu", "cpu"), ("device", str(device))):
        for name, command in commands.items():
            out = work / f"{name}-{label}"
            done, seconds = _timed_cli([*command, "-o", out, "--device", where])
            psnrs = None
            if done.returncode == 0:
                metrics = json.loads((out / "metrics.json").read_text())["metrics"]
                psnrs = [round(m["psnr"]["mean"], 3) for m in metrics.values()]
            figures[f"{name}_{label}"] = _outcome(done, seconds, psnr=psnrs)
        scores = work / f"evaluate-{label}.json"
        done, seconds = _timed_cli(
            [
                "evaluate",
                demo,
                "--n",
                "50",
                "--methods",
                "fit,separator",
                "--no-ica",
                "--json",
                scores,
                "--device",
                where,
                *fast,
            ],
        )
        figures[f"evaluate_{label}"] = _outcome(done, seconds)
        done, seconds = _timed_cli(
            ["demo", "-o", work / f"demo-{label}", "--n", "50", "--device", where]
        )
        rows = {}
        if done.returncode == 0:
            record = json.loads((work / f"demo-{label}" / "metrics.json").read_text())
            rows = {
                row["method"]: [round(s["psnr"][0], 3) for s in row["scores"].values()]
                for row in record["rows"]
            }
        figures[f"demo_{label}"] = _outcome(done, seconds, psnr=rows)
        report = work / f"demix-k3-{label}"
        smoke = ["--profile", "smoke", "--checkpoints", work / f"store-{label}", "--no-progress"]
        done, seconds = _timed_cli(
            ["reproduce", "demix-k3", *smoke, "-o", report, "--device", where]
        )
        command = None
        if done.returncode == 0:
            command = json.loads((report / "metrics.json").read_text())["command"]
        figures[f"reproduce_{label}"] = _outcome(done, seconds, command=command)
    figures["all_finished"] = all(v["exit"] == 0 for v in figures.values())
    return figures


def _timed_cli(arguments: list) -> tuple[subprocess.CompletedProcess, float]:
    """A CLI call and its seconds: the figure each device is compared by."""
    started = time.perf_counter()
    done = _cli(arguments)
    return done, round(time.perf_counter() - started, 2)


def _outcome(done: subprocess.CompletedProcess, seconds: float, **figures: object) -> dict:
    """One command's row of the check: its exit, seconds, figures and the end of its stderr."""
    return {
        "exit": done.returncode,
        "seconds": seconds,
        **figures,
        "stderr_tail": done.stderr[-300:],
    }


def _cli(arguments: list) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "demixgan", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)


CHECKS = ("training", "separation", "separator-training", "inference-commands")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--separator-steps", type=int, default=300)
    parser.add_argument("--checks", default=",".join(CHECKS), help="comma-separated")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    checks = args.checks.split(",")
    if unknown := set(checks) - set(CHECKS):
        parser.error(f"unknown checks {sorted(unknown)}: choose from {', '.join(CHECKS)}")
    figures: dict = {
        "command": command_line(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
    }
    if "training" in checks:
        with tempfile.TemporaryDirectory() as tmp:
            figures["training"] = train_twice(device, args.steps, Path(tmp))
    if "separation" in checks:
        figures["separation"] = separation(device, args.n, args.rounds)
    if "separator-training" in checks:
        figures["separator_training"] = separator_training(device, args.separator_steps, args.n)
    if "inference-commands" in checks:
        with tempfile.TemporaryDirectory() as tmp:
            figures["inference_commands"] = inference_commands(device, args.steps, Path(tmp))
    return publish(figures, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
