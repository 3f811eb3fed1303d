"""Training-step throughput of a run on one's own mixtures at 1x28x28, 1x64x64 and 3x64x64, and
the peak resident memory of a 100,000-image 3x64x64 folder run.

Run: ``.venv/bin/python benchmarks/bench_sizes.py [--steps 12] [--rounds 3] [--memory]
[--no-throughput]``.
Prints a Markdown table.

Throughput: for each size a ``.npy`` stack of 512 uint8 mixtures (a blob plus grey curves)
is the run's ``data.mixtures``, trained by the paper's demixing architecture (two DCGAN
generators, z in R^100, DCGAN discriminator, batch 64) built for that size. The FLOPs of one
``Trainer.train_step()`` are counted by ``FlopCounterMode``; the step is timed ``--steps``
times after two warm-up steps, per round, and the median over all rounds is reported beside
the fp32 matmul rate measured in the same process. The time ratio between sizes is set beside
their FLOP ratio: equal ratios mean the larger images cost what their arithmetic costs.

Memory (``--memory``): 100,000 RGB PNGs of 64 x 64 are written to a temp folder (or
``--memory-folder``, kept for the next run) and runs train 4 steps on them in child processes
(``MEMORY_RUNS``), whose peak resident set (``ru_maxrss``) is read. The target is 2 GB: the
pixels stay uint8 (1.2 GB) and become floats one batch at a time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from demixgan.data.superposition import draw_family
from demixgan.spec.config import load_config
from demixgan.spec.image import ImageSpec
from demixgan.training.loop import Trainer

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "paper-demix-digit-sines.toml"
SIZES = (ImageSpec(1, 28, 28), ImageSpec(1, 64, 64), ImageSpec(3, 64, 64))
MEMORY_IMAGES = 100_000
MEMORY_TARGET_GB = 2.0


def blob_mixtures(image: ImageSpec, n: int, seed: int = 0) -> np.ndarray:
    """Mixtures [n, C, H, W] in [0, 1] a user might have: a coloured blob plus grey curves
    (the tests' own mixtures too)."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.arange(image.height).view(1, -1, 1) / image.height
    cols = torch.arange(image.width).view(1, 1, -1) / image.width
    centre = torch.rand(n, 2, 1, 1, generator=g) * 0.6 + 0.2
    blob = torch.exp(-((rows - centre[:, :1]) ** 2 + (cols - centre[:, 1:]) ** 2) / 0.02)
    colour = torch.rand(n, image.channels, 1, 1, generator=g) * 0.5
    return (blob * colour + 0.5 * draw_family("sines", n, 1, g, image)).clamp(0, 1).numpy()


def mixtures(image: ImageSpec, n: int, seed: int = 0) -> np.ndarray:
    """``blob_mixtures`` as uint8, as images are stored."""
    return np.round(blob_mixtures(image, n, seed) * 255).astype(np.uint8)


def matmul_gflops(size: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times) / 1e9


def trainer_for(image: ImageSpec, folder: Path) -> Trainer:
    stack = folder / f"{image.channels}x{image.height}x{image.width}.npy"
    np.save(stack, mixtures(image, 512))
    config = load_config(
        CONFIG, [f"data.mixtures={stack}", "data.level=", "train.max_steps=100000"]
    )
    return Trainer(config, folder / "run")


def step_flops(trainer: Trainer) -> float:
    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    return counter.get_total_flops()


def timed_steps(trainer: Trainer, steps: int) -> list[float]:
    for _ in range(2):
        trainer.train_step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - started)
    return times


def throughput(steps: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {image: trainer_for(image, Path(tmp)) for image in SIZES}
        flops = {image: step_flops(trainer) for image, trainer in trainers.items()}
        times: dict[ImageSpec, list[float]] = {image: [] for image in SIZES}
        rates = []
        for _ in range(rounds):  # sizes interleaved, so a busy spell hits all of them
            rates.append(matmul_gflops())
            for image, trainer in trainers.items():
                times[image] += timed_steps(trainer, steps)
        rate = statistics.median(rates)
    base = SIZES[0]
    batch = 64
    print(f"fp32 matmul 1024 (median of {rounds} rounds): {rate:.1f} GFLOP/s; "
          f"{torch.get_num_threads()} threads\n")  # fmt: skip
    print("| image | GFLOP / step | median step (ms) | mixtures/s | % of matmul rate | "
          "FLOP ratio | time ratio |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for image in SIZES:
        median = statistics.median(times[image])
        achieved = flops[image] / median / 1e9
        print(
            f"| {image.channels}x{image.height}x{image.width} | {flops[image] / 1e9:.2f} | "
            f"{median * 1e3:.0f} | {batch / median:.0f} | {100 * achieved / rate:.1f}% | "
            f"{flops[image] / flops[base]:.2f} | "
            f"{median / statistics.median(times[base]):.2f} |"
        )


#: The memory runs: components (the paper's two DCGANs; a curve generator) and batch size.
MEMORY_RUNS = (("digit=dcgan,strokes=dcgan", 64), ("digit=dcgan,strokes=dcgan", 32),
               ("digit=dcgan,strokes=curve", 64))  # fmt: skip


def write_folder(folder: Path) -> float:
    """100,000 RGB 64 x 64 PNGs in ``folder`` (kept if it is complete); seconds taken."""
    names = [f"{i:06d}.png" for i in range(MEMORY_IMAGES)]
    if folder.is_dir() and len(list(folder.iterdir())) == MEMORY_IMAGES:
        return 0.0
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for chunk in range(0, MEMORY_IMAGES, 1000):
        for i, pixels in enumerate(mixtures(SIZES[-1], 1000, seed=chunk)):
            Image.fromarray(pixels.transpose(1, 2, 0)).save(folder / names[chunk + i])
    return time.perf_counter() - started


def peak_memory(folder: Path, components: str, batch: int, run: Path) -> tuple[str, float, int]:
    """``train --mixtures`` for 4 steps in a child: (exit status, seconds, peak RSS in bytes)."""
    code = (
        "import resource, time\n"
        "from demixgan.cli.main import main\n"
        "started = time.perf_counter()\n"
        f"code = main(['train', '--mixtures', {str(folder)!r}, '--components', {components!r}, "
        f"'--set', 'train.max_steps=4', '--set', 'train.batch_size={batch}', '--run-dir', "
        f"{str(run)!r}, '--no-progress'])\n"
        "print(code, time.perf_counter() - started, "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    status, seconds, peak_kb = out.stdout.split()[-3:]
    return status, float(seconds), int(peak_kb) * 1024  # ru_maxrss is in KiB on Linux


def memory(folder: Path | None, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = folder or Path(tmp) / "mixtures"
        written = write_folder(folder)
        print(f"\n{MEMORY_IMAGES:,} RGB 64x64 PNGs ({folder.name}; written in {written:.0f} s); "
              f"peak resident memory of `train --mixtures` for 4 steps (target <= "
              f"{MEMORY_TARGET_GB} GB; the uint8 pixels alone are "
              f"{MEMORY_IMAGES * SIZES[-1].pixels / 1e9:.2f} GB):\n")  # fmt: skip
        print(f"| components | batch | exit | seconds (read + 4 steps) | peak RSS, median of "
              f"{rounds} (GiB) | (GB) | rounds (GiB) |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---|")
        for index, (components, batch) in enumerate(MEMORY_RUNS):
            runs = [
                peak_memory(folder, components, batch, Path(tmp) / f"r{index}-{r}")
                for r in range(rounds)
            ]
            status = ",".join(sorted({run[0] for run in runs}))
            seconds = statistics.median(run[1] for run in runs)
            peaks = [run[2] for run in runs]
            peak = statistics.median(peaks)
            shown = " / ".join(f"{p / 2**30:.3f}" for p in peaks)
            print(f"| {components} | {batch} | {status} | {seconds:.0f} | {peak / 2**30:.3f} | "
                  f"{peak / 1e9:.3f} | {shown} |")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per size and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="also the 100,000-image run")
    parser.add_argument("--no-throughput", action="store_true", help="skip the step timings")
    parser.add_argument("--memory-folder", type=Path, help="keep the 100,000 PNGs here")
    parser.add_argument("--memory-rounds", type=int, default=3, help="runs per memory row")
    args = parser.parse_args()
    if not args.no_throughput:
        throughput(args.steps, args.rounds)
    if args.memory:
        memory(args.memory_folder, args.memory_rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
