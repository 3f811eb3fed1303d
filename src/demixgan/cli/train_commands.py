"""`demixgan train`: train a vanilla GAN, denoising-GAN or demixing-GAN from a config file."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a GAN run from a config (configs/*.toml); resume a killed run",
        description=(
            "Train from a TOML config into a run directory (resolved config, stats.jsonl, "
            "evolution grids, checkpoints). Multi-process: "
            "torchrun --nproc_per_node N -m demixgan train ..."
        ),
    )
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config", help="TOML run configuration, e.g. configs/paper-demix-digit-sines.toml"
    )
    source.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint"
    )
    add_overrides(train, "override a config value, e.g. --set train.epochs=2 (repeatable)")
    train.add_argument("--run-dir", help="directory of the new run (default runs/<name>-<time>)")
    train.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=run_train)


def add_overrides(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``, as config.load_config takes."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help_text
    )


def run_train(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from demixgan.errors import DemixganError
    from demixgan.io.json_files import read_json
    from demixgan.io.run_files import CONFIG_FILE, default_run_dir
    from demixgan.spec.config import load_config, parse_config
    from demixgan.training.loop import train

    if args.resume:
        if args.overrides or args.run_dir:
            raise DemixganError(
                "--resume continues a run exactly as it was configured, so it takes neither "
                "--set nor --run-dir. Start a new run with --config to change settings."
            )
        run_dir = Path(args.resume)
        config_path = run_dir / CONFIG_FILE
        if run_dir.is_file():
            raise DemixganError(
                f"Cannot resume from '{run_dir}': it is a file, not a run directory. Give the "
                "directory 'demixgan train' wrote (the one holding config.json and checkpoints/)."
            )
        if not config_path.is_file():
            raise DemixganError(
                f"Cannot resume from '{run_dir}': it has no {CONFIG_FILE}, so it is not a "
                "demixgan run directory (or its first write never finished)."
            )
        data = read_json(
            config_path,
            "run configuration",
            "The run's settings are lost; restore the file, or start a new run with --config.",
        )
        config = parse_config(data, name=run_dir.name)
    else:
        config = load_config(args.config, args.overrides)
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config)
    result = train(
        config,
        run_dir,
        resume=bool(args.resume),
        device=args.device,
        progress=not args.no_progress,
    )
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, rank 0 alone reports (and writes the run's files)
    print(f"run directory: {result.run_dir}  (step {result.step})")
    if result.checkpoint:
        print(f"latest checkpoint: {result.checkpoint}")
    return 0
