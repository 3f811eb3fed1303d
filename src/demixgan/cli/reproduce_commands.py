"""`demixgan reproduce NAME|all|list`: the paper's experiments, one command each."""

from __future__ import annotations

import argparse

from demixgan.cli.inference_commands import add_device_option
from demixgan.experiments.profiles import PROFILES


def register(commands: argparse._SubParsersAction) -> None:
    reproduce = commands.add_parser(
        "reproduce",
        help="run one of the paper's experiments (or all) and write its report",
        description=(
            "Run a named experiment of the paper (training what it needs, or reusing a model "
            "trained earlier from the same config) and write a run directory with figures, "
            "tables (CSV and Markdown), metrics.json and a self-contained report.html with the "
            "paper's numbers beside ours. 'all' runs every experiment and writes an index page; "
            "'list' names them."
        ),
    )
    reproduce.add_argument("name", help="experiment name, 'all' or 'list'")
    reproduce.add_argument(
        "--profile",
        default="cpu",
        help="; ".join(f"{p.name}: {p.description}" for p in PROFILES.values()) + " (default cpu)",
    )
    reproduce.add_argument("-o", "--output", help="run directory (default runs/reproduce/...)")
    reproduce.add_argument(
        "--checkpoints",
        default="runs/checkpoints",
        help="where trained models are kept and reused from (default runs/checkpoints)",
    )
    reproduce.add_argument("--data-dir", help="directory holding the MNIST IDX files")
    reproduce.add_argument("--no-progress", action="store_true", help="no progress bars")
    reproduce.add_argument(
        "--train-only",
        action="store_true",
        help="only train (or find) the models the experiment needs, into --checkpoints; a "
        "later run reuses them. Writes no run directory",
    )
    reproduce.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="trainings at once, each in its own process on the cores shared out (default 1): "
        "the models, separators and peers that do not read each other train side by side "
        "before the report runs",
    )
    add_device_option(
        reproduce,
        "the latent fits, separators and peers (the GANs train where their config's "
        "train.device says: auto)",
    )
    reproduce.set_defaults(run=run_reproduce)


def run_reproduce(args: argparse.Namespace) -> int:
    import time

    from demixgan.errors import DemixganError
    from demixgan.experiments.profiles import get_profile
    from demixgan.experiments.registry import (
        DESCRIPTIONS,
        all_experiments,
        get_experiment,
        reproduce,
        reproduce_all,
        train_models,
    )
    from demixgan.io.locks import output_lock

    if args.name == "list":
        for name, (title, paper) in DESCRIPTIONS.items():
            print(f"{name:14s} {title} (paper: {paper})")
        return 0
    from demixgan.spec.device import resolve_device  # torch: not for 'list'

    get_profile(args.profile)
    resolve_device(args.device)  # refused before anything is trained or written
    if args.jobs < 1:
        raise DemixganError(f"--jobs is the trainings run at once: 1 or more, not {args.jobs}.")
    names = [e.name for e in all_experiments()] if args.name == "all" else [args.name]
    if args.name != "all":
        get_experiment(args.name)
    options = dict(
        profile=args.profile,
        checkpoint_store=args.checkpoints,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        jobs=args.jobs,
        device=args.device,
    )
    if args.train_only:
        if args.output:
            raise DemixganError("--train-only writes no run directory; drop -o/--output.")
        for name in names:
            for line in train_models(name, **options):
                print(f"{name}: {line}")
        return 0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = args.output or f"runs/reproduce/{args.name}-{args.profile}-{stamp}"
    with output_lock(output, "report directory"):  # its staging directory is shared
        if args.name == "all":
            report = reproduce_all(output, **options)
        else:
            report = reproduce(args.name, output, **options)
    print(f"report: {report}")
    return 0
