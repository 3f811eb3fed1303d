"""Entry point of the ``demixgan`` command: parses arguments and turns user errors into messages.

Subcommand modules import torch and the heavy parts of the library only when they run, so
``demixgan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from demixgan import __version__
from demixgan.cli import (
    classifier_commands,
    data_commands,
    demo_commands,
    inference_commands,
    reproduce_commands,
    train_commands,
)
from demixgan.errors import DemixganError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="demixgan",
        description=(
            "Learn generative models of structured signals from their superpositions "
            "(denoising-GAN, demixing-GAN) and use them to denoise and demix."
        ),
    )
    parser.add_argument("--version", action="version", version=f"demixgan {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo_commands.register(commands)
    data_commands.register(commands)
    train_commands.register(commands)
    classifier_commands.register(commands)
    inference_commands.register(commands)
    reproduce_commands.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except DemixganError as error:
        print(f"demixgan: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:
        # The reader went away (e.g. `demixgan data info | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("demixgan: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
