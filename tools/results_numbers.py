"""Every number RESULTS.md prints comes from a file of a report that its section cites.

RESULTS.md is read section by section (``## `` headings). A section's sources are the
committed files of every report it links (``docs/results/NAME``: its ``metrics.json``, the
tables its recorded command wrote under ``tables/``, and any other JSON it recorded), the
shipped JSON files it names (``assets/.../method.json``: a separator's choice on validation)
and the paper's own numbers (``experiments/paper.py``). Each decimal number the section prints
outside a generated table (those are rewritten from their files by results_tables.py, whose
``--check`` covers them) must equal a value of one of its sources at the printed rounding; a
percentage, a fraction of them times 100. Integers are counts, steps and seeds, and are not
checked. Typing a number, or rounding a difference of two
rounded numbers, is how a report drifts from its command: this finds it.

Run ``.venv/bin/python tools/results_numbers.py`` to list the numbers that no cited file holds
(exit 1 if any); tests/test_results_tables.py runs it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from results_tables import BLOCK  # the generated tables, which its --check covers

ROOT = Path(__file__).resolve().parents[1]
REPORTS = Path("docs/results")
#: A report link.
LINK = re.compile(r"docs/results/([A-Za-z0-9_-]+)")
#: A shipped file a section cites (a separator's ``method.json``), under ``src/demixgan``.
ASSET = re.compile(r"(?<![\w/])(assets/[\w./-]+\.json)")
PACKAGE = Path("src/demixgan")
#: A decimal number, with a following % if it has one.
NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*\.\d+)(?![\d.])(%?)")
SOURCE_SUFFIXES = (".json", ".jsonl", ".csv", ".md")


@dataclass(frozen=True)
class Untraced:
    line: int
    section: str
    number: str
    text: str

    def __str__(self) -> str:
        return f"RESULTS.md:{self.line} [{self.section}] {self.number}: {self.text.strip()[:120]}"


def values_in(path: Path) -> set[float]:
    """Every number a source file holds: JSON values (and numbers inside its strings), and the
    decimal numbers of a table the report wrote."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".csv", ".md"):
        return {float(m.group(1).replace(",", "")) for m in NUMBER.finditer(text)}
    found: set[float] = set()
    records = (
        [json.loads(line) for line in text.splitlines() if line.strip()]
        if path.suffix == ".jsonl"
        else [json.loads(text)]
    )
    stack: list = list(records)
    while stack:
        item = stack.pop()
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, (int, float)):
            found.add(float(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found.update(float(m.group(1).replace(",", "")) for m in NUMBER.finditer(item))
    return found


def report_values(name: str, root: Path) -> set[float]:
    folder = root / REPORTS / name
    if not folder.is_dir():
        raise SystemExit(f"RESULTS.md cites docs/results/{name}, which does not exist")
    return {
        value
        for path in sorted(folder.rglob("*"))
        if path.suffix in SOURCE_SUFFIXES and path.name != "report.md"
        for value in values_in(path)
    }


def paper_values() -> set[float]:
    from demixgan.experiments import paper

    tables = (paper.TABLE_1, paper.TABLE_2, paper.FIGURE_12)
    return {
        value
        for table in tables
        for methods in table.values()
        for pair in methods.values()
        for value in pair
    }


def printed(number: str, percent: bool, values: set[float]) -> bool:
    """Whether some value, rounded as ``number`` is printed, reads ``number``."""
    digits = len(number.partition(".")[2])
    scale = 100.0 if percent else 1.0
    return any(f"{abs(scale * value):.{digits}f}" == number for value in values)


def sections(text: str) -> Iterator[tuple[str, int, str]]:
    """(heading, first line number, body) of each ``## `` section, generated tables blanked
    line for line so that line numbers still point into the file."""
    text = BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    heading, start, body = "top", 1, []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            yield heading, start, "\n".join(body)
            heading, start, body = line[3:].strip(), number, []
        body.append(line)
    yield heading, start, "\n".join(body)


def untraced(text: str, root: Path = ROOT) -> list[Untraced]:
    """The decimal numbers of ``text`` (RESULTS.md) that no file its section cites holds."""
    paper = paper_values()
    cache: dict[str, set[float]] = {}
    missing = []
    for heading, start, body in sections(text):
        values = set(paper)
        for name in sorted(set(LINK.findall(body))):
            if name not in cache:
                cache[name] = report_values(name, root)
            values |= cache[name]
        for asset in sorted(set(ASSET.findall(body))):
            path = root / PACKAGE / asset
            if not path.is_file():
                raise SystemExit(f"RESULTS.md cites {asset}, which src/demixgan does not hold")
            values |= values_in(path)
        for offset, line in enumerate(body.splitlines()):
            for match in NUMBER.finditer(line):
                number = match.group(1).replace(",", "")
                if not printed(number, bool(match.group(2)), values):
                    missing.append(Untraced(start + offset, heading[:60], match.group(0), line))
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=ROOT / "RESULTS.md")
    args = parser.parse_args()
    missing = untraced(args.file.read_text(encoding="utf-8"))
    for item in missing:
        print(item)
    if missing:
        print(f"{len(missing)} numbers that no cited report's file holds")
    return int(bool(missing))


if __name__ == "__main__":
    sys.exit(main())
