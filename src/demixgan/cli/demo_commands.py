"""`demixgan demo`: the main job, separating held-out digit + sines mixtures with a report."""

from __future__ import annotations

import argparse

from demixgan.cli.inference_commands import add_device_option
from demixgan.cli.train_commands import add_overrides


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="separate held-out digit + ink mixtures with a demixing-GAN; write a report",
        description=(
            "Separate held-out digit + ink (level 1, clipped) test mixtures of real MNIST digits "
            "with the demixing-GAN and separator that ship with demixgan (or ones trained now "
            "with --train), print the scores next to the best pixel-value rule, ICA and the "
            "trivial split y/2, and write a run directory with the evolution and separation "
            "grids and a self-contained report.html."
        ),
    )
    demo.add_argument("-o", "--output", help="run directory (default runs/demo-<time>)")
    demo.add_argument(
        "--train", action="store_true", help="train the demo config from scratch first (slow)"
    )
    add_overrides(
        demo, "with --train: override a value of the demo config, e.g. --set train.max_steps=2000"
    )
    demo.add_argument("--n", type=int, default=200, help="test mixtures (default 200)")
    demo.add_argument(
        "--method",
        choices=("separator", "fit"),
        default="separator",
        help="separator: the shipped separator and a short fit from its parts (seconds); fit: "
        "the latent fit from the prior's draws (minutes)",
    )
    add_device_option(demo, "the training (--train), the separators and the latent fits")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from demixgan.errors import DemixganError
    from demixgan.experiments.demo import run_demo as demo
    from demixgan.io.locks import output_lock

    if not 1 <= args.n <= 1000:
        raise DemixganError(
            f"--n must be between 1 and 1000 (the embedded MNIST test split), got {args.n}."
        )
    if args.overrides and not args.train:
        raise DemixganError(
            "--set changes the training config, so it needs --train; without --train the demo "
            "uses the shipped checkpoint as it is."
        )
    run_dir = Path(args.output or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    with output_lock(run_dir, "demo directory"):
        result = demo(
            run_dir,
            train_first=args.train,
            overrides=args.overrides,
            n=args.n,
            method=args.method,
            progress=not args.no_progress,
            device=args.device,
        )
    print(result.evaluation.table)
    print(f"\nreport: {result.report}")
    return 0
