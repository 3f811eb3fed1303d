"""`demixgan train`: train a vanilla GAN, denoising-GAN or demixing-GAN from a config file."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a GAN run from a config or your own mixtures; resume a killed run",
        description=(
            "Train from a TOML config, or from your own mixtures (--mixtures DIR --components "
            "digit=dcgan,strokes=curve), into a run directory (resolved config, stats.jsonl, "
            "evolution grids, checkpoints). Multi-process: "
            "torchrun --nproc_per_node N -m demixgan train ..."
        ),
    )
    source = train.add_mutually_exclusive_group()
    source.add_argument(
        "--config", help="TOML run configuration, e.g. configs/paper-demix-digit-sines.toml"
    )
    source.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint"
    )
    train.add_argument(
        "--mixtures",
        metavar="DIR",
        help="your own observed mixtures: a folder of images (PNG, JPEG, TIFF; grey or RGB) "
        "or .npy stacks, or one .npy file (data.mixtures); no --config needed with --components",
    )
    train.add_argument(
        "--components",
        metavar="SPEC",
        help="the model's components, e.g. digit=dcgan,strokes=curve (NAME=ARCH learned, "
        "NAME=OTHER shares OTHER's generator, NAME=FAMILY:LEVEL a known family)",
    )
    for flag, what in (("--resize", "scale every mixture to"), ("--crop", "cut every mixture to")):
        train.add_argument(flag, nargs=2, type=int, metavar=("H", "W"), help=f"{what} H x W pixels")
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


def _command_line_tables(args: argparse.Namespace) -> dict:
    """The config tables the flags set: data.mixtures / resize / crop and the components."""
    from pathlib import Path

    from demixgan.spec.config import components_from_spec

    data = {
        key: list(value) if isinstance(value, list) else value
        for key, value in (
            # absolute: the separator and evaluate read them again from anywhere
            ("mixtures", None if args.mixtures is None else str(Path(args.mixtures).resolve())),
            ("resize", args.resize),
            ("crop", args.crop),
        )
        if value is not None
    }
    tables: dict = {"data": data} if data else {}
    if args.components is not None:
        tables["components"] = components_from_spec(args.components)
    return tables


def run_train(args: argparse.Namespace) -> int:
    import os
    import re
    from pathlib import Path

    from demixgan.errors import DemixganError
    from demixgan.io.json_files import read_json
    from demixgan.io.run_files import CONFIG_FILE, default_run_dir
    from demixgan.spec.config import load_config, parse_config
    from demixgan.training.loop import train

    tables = _command_line_tables(args)
    if args.resume:
        if args.overrides or args.run_dir or tables:
            raise DemixganError(
                "--resume continues a run exactly as it was configured, so it takes none of "
                "--set, --run-dir, --mixtures, --components, --resize, --crop. Start a new run "
                "with --config or --mixtures to change settings."
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
    elif args.config:
        config = load_config(args.config, args.overrides, tables)
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config)
    else:
        if args.mixtures is None or args.components is None:
            raise DemixganError(
                "Give a run to train: --config FILE (a TOML run configuration), --resume "
                "RUN_DIR, or your own mixtures with their components: --mixtures DIR "
                "--components digit=dcgan,strokes=curve."
            )
        name = re.sub(r"[^A-Za-z0-9._+-]", "-", Path(args.mixtures).resolve().name).lstrip("._+-")
        config = parse_config(
            tables, name=name or "mixtures", overrides=args.overrides, source="the command line"
        )
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
