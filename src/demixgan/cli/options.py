"""CLI flags generated from a settings dataclass, so flags and API share defaults and bounds.

Each field becomes ``--field-name`` with its type, choices, default and help from the field
(spec/validation.py); the values parsed are turned back into the dataclass, whose own check
refuses a bad value (an infinite learning rate, a seed past 2^63) with one clear message.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import TypeVar

from demixgan.spec.validation import hints, optional

Settings = TypeVar("Settings")


def add_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    only: Sequence[str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> None:
    """Add one flag per field of ``cls`` (``only`` these fields; ``flags`` renames some)."""
    flags = flags or {}
    for spec in fields(cls):
        if only is not None and spec.name not in only:
            continue
        # Choices are checked by the settings class, not argparse: one message and exit
        # status 2 for every bad value, from the CLI and the API alike.
        choices = spec.metadata.get("choices")
        allowed = f"; one of {', '.join(map(str, choices))}" if choices else ""
        parser.add_argument(
            flags.get(spec.name, "--" + spec.name.replace("_", "-")),
            dest=spec.name,
            type=optional(hints(cls)[spec.name]),
            default=spec.default,
            metavar=spec.name.upper() if not choices else "{" + ",".join(choices) + "}",
            help=f"{spec.metadata.get('help', spec.name)} (default {spec.default}{allowed})",
        )


def from_flags(cls: type[Settings], args: argparse.Namespace) -> Settings:
    """The settings object of the flags ``add_flags`` added (fields without a flag: default)."""
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})
