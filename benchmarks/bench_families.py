"""Time each signal family: a batch of 64 at level 5, median over many calls after warm-up.

Run: ``.venv/bin/python benchmarks/bench_families.py [--batch 64] [--level 5] [--calls 200]``.
Prints a Markdown table; the target is < 5 ms per batch of 64 at level 5 on 2 CPU cores, so
that sampling corruptions never dominates a training step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from demixgan.data.families import FAMILIES, SignalFamily

TARGET_MS = 5.0


def time_family(family: SignalFamily, batch: int, level: int, calls: int, warmup: int) -> float:
    """Median wall time of one ``sample`` call in milliseconds."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(warmup):
        family.sample(batch, level, generator)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        family.sample(batch, level, generator)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--level", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, 28x28 images\n")
    print("| family | level | batch | median ms | samples/s |")
    print("|---|---:|---:|---:|---:|")
    slow = []
    for name, family in FAMILIES.items():
        ms = time_family(family, args.batch, args.level, args.calls, args.warmup)
        print(f"| {name} | {args.level} | {args.batch} | {ms:.3f} | {args.batch / ms * 1e3:,.0f} |")
        if ms >= TARGET_MS:
            slow.append(name)
    if slow:
        print(f"\nover the {TARGET_MS} ms target: {', '.join(slow)}")


if __name__ == "__main__":
    main()
