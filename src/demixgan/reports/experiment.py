"""What an experiment hands back, and how it is written: tables, figures, metrics, reports.

Every experiment of `demixgan reproduce` returns an ``Outcome``; ``write_outcome`` turns it into
the same run directory layout for all of them:

    tables/<name>.csv, tables/<name>.md   every table, machine- and human-readable
    figures/<name>.png                    the figures (written by the experiment)
    metrics.json                          every number, with the profile and provenance
    report.md                             Markdown with the figures linked (for docs/results)
    report.html                           one self-contained page (figures inlined)
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from demixgan.io.atomic import atomic_path
from demixgan.reports.html import Figure, Section, Table, Text, write_report


@dataclass(frozen=True)
class ResultTable:
    name: str  # file stem: letters, digits, '-'
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""

    def markdown(self) -> str:
        lines = [
            "| " + " | ".join(self.header) + " |",
            "|" + "---|" * len(self.header),
            *("| " + " | ".join(row) + " |" for row in self.rows),
        ]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return out.getvalue()


@dataclass(frozen=True)
class ResultFigure:
    path: Path  # a PNG inside the run directory
    caption: str


@dataclass
class Outcome:
    """An experiment's results: the prose, the tables and figures, and the raw numbers."""

    summary: str
    tables: list[ResultTable] = field(default_factory=list)
    figures: list[ResultFigure] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Header:
    """Who ran what: shown on top of every report."""

    title: str
    paper: str
    record: dict  # ``run_record``'s, taken when the run started
    profile: str
    provenance: list[str]
    minutes: float


def recorded_command(argv: Sequence[str]) -> str:
    """A command as a report records it: ``demixgan ARGS``, with every absolute path written
    as DIR (no machine's paths in a committed file)."""
    import shlex

    return shlex.join(["demixgan", *("DIR" if Path(a).is_absolute() else a for a in argv)])


def device_arguments(device: object) -> list[str]:
    """``--device X`` for a run made off the CPU, nothing on it: a GPU rounds differently, so
    its report's command must name the device that made its last digits."""
    return [] if str(device) == "cpu" else ["--device", str(device)]


def run_record(command: str) -> dict:
    """What every ``metrics.json`` opens with: the command that wrote it, the code it ran and
    how many threads torch used (its minutes depend on them). Take it when a run starts: the
    code loaded then is what ran, whatever the checkout became meanwhile."""
    import torch

    return {"command": command, "code": code_version(), "threads": torch.get_num_threads()}


def code_version() -> dict[str, str | None]:
    """demixgan's version and, in a git checkout, the commit the code was at ("+changes"
    where the checkout differs from it): what a report's numbers were made with."""
    import subprocess

    import demixgan

    root = Path(demixgan.__file__).resolve().parents[2]
    commit = None
    if not (root / "src" / "demixgan").is_dir():  # installed, not run from a checkout
        return {"version": demixgan.__version__, "commit": commit}
    try:
        git = ["git", "-C", str(root)]
        commit = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        commit += "+changes" if changed else ""
    except (OSError, subprocess.SubprocessError):
        pass  # an installed package: the version alone
    return {"version": demixgan.__version__, "commit": commit}


def write_outcome(run_dir: str | os.PathLike, header: Header, outcome: Outcome) -> Path:
    """Write tables, metrics and both reports into ``run_dir``; return the HTML report."""
    run_dir = Path(run_dir)
    (run_dir / "tables").mkdir(parents=True, exist_ok=True)
    for table in outcome.tables:
        _write(run_dir / "tables" / f"{table.name}.csv", table.csv())
        _write(run_dir / "tables" / f"{table.name}.md", table.markdown())
    metrics = {
        "experiment": header.title,
        "paper": header.paper,
        **header.record,
        "profile": header.profile,
        "provenance": header.provenance,
        "minutes": round(header.minutes, 2),
        **outcome.metrics,
    }
    _write(run_dir / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    _write(run_dir / "report.md", _markdown(run_dir, header, outcome))
    return write_report(run_dir / "report.html", header.title, _sections(header, outcome))


def _about(header: Header) -> list[str]:
    from demixgan.io.run_files import on_threads  # not at import: listing stays torch-free

    return [
        f"Paper: {header.paper}.",
        f"Command: {header.record['command']} (profile {header.profile}, "
        f"{header.minutes:.1f} min{on_threads([header.record['threads']])}).",
        *(f"Model {line}." for line in header.provenance),
    ]


def _sections(header: Header, outcome: Outcome) -> list[Section]:
    sections = [Section("What this is", [Text(outcome.summary), *map(Text, _about(header))])]
    for table in outcome.tables:
        blocks = [Table(table.header, table.rows)]
        sections.append(Section(table.title, blocks + ([Text(table.note)] if table.note else [])))
    sections += [Section(f.caption, [Figure(f.path, f.caption)]) for f in outcome.figures]
    return sections


def _markdown(run_dir: Path, header: Header, outcome: Outcome) -> str:
    parts = [
        f"# {header.title}\n",
        outcome.summary + "\n",
        "\n".join(f"- {a}" for a in _about(header)) + "\n",
    ]
    for table in outcome.tables:
        parts.append(
            f"## {table.title}\n\n{table.markdown()}" + (f"\n{table.note}\n" if table.note else "")
        )
    for figure in outcome.figures:
        relative = figure.path.relative_to(run_dir).as_posix()
        parts.append(f"## {figure.caption}\n\n![{figure.caption}]({relative})\n")
    return "\n".join(parts)


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
