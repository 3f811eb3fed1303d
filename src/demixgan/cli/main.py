"""Entry point of the ``demixgan`` command: parses arguments and turns user errors into messages.

Subcommand modules import torch and the heavy parts of the library only when they run, so
``demixgan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
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
from demixgan.reports.experiment import recorded_command

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process killed by it


class CommandParser(argparse.ArgumentParser):
    """A parser that rejects arguments it does not know itself.

    argparse hands a subcommand's unknown arguments up to the top-level parser, whose error then
    shows ``usage: demixgan COMMAND ...``; rejecting them where they were given shows the usage
    of the command the user typed. Subcommand parsers inherit the class.
    """

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, unknown = super().parse_known_args(args, namespace)
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed, unknown


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
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


OUT_OF_MEMORY = (
    "The command ran out of memory (nothing was written). Ask for less at once: fewer "
    "inputs per call, a smaller --chunk or --batch-size, fewer --restarts, or a smaller "
    "network; or run it on a machine with more memory."
)


class Terminated(BaseException):
    """SIGTERM as an exception, so cleanups (temp files, staged outputs, locks) still run."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = recorded_command(sys.argv[1:] if argv is None else argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
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
    except MemoryError:
        print(f"demixgan: error: {OUT_OF_MEMORY}", file=sys.stderr)
        return EXIT_USER_ERROR
    except RuntimeError as error:
        if "can't allocate memory" not in str(error) and "out of memory" not in str(error):
            raise
        print(f"demixgan: error: {OUT_OF_MEMORY}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Terminated:
        print("demixgan: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
