"""Write the tables of RESULTS.md and README.md from the committed ``metrics.json`` files.

A table in either that stands between ``<!-- table from PATH -->`` and
``<!-- end table -->`` is generated here from the evaluation recorded in PATH (a
``metrics.json`` of ``demixgan demo`` or ``demixgan evaluate --json``; ``PATH#SETTING`` for
one setting of a ``demixgan reproduce`` report's ``metrics.json``): one row per method,
per part the per-image mean PSNR ± std, the PSNR of the mean MSE and the mean SSIM, and the
time per mixture. ``<!-- margins from PATH -->`` (a ``demixgan reproduce demix-ink``
report's ``metrics.json``) writes that report's margins table: ours against the best floor,
MixIT and the supervised bound, each target met or missed. Typing a number is how reports
drift from their commands; this is how they cannot.

Run ``.venv/bin/python tools/results_tables.py`` to rewrite both, ``--check`` to exit 1
where a table differs from its file (tests/test_results_tables.py runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Rows that see the truth or the clean parts: bounds, never the best method.
BOUNDS = ("upper bound", "oracle")
BLOCK = re.compile(
    r"(<!-- (?P<kind>table|margins) from (?P<path>[^>]+?) -->\n)(?P<body>.*?)(<!-- end table -->)",
    re.S,
)


def table(record: dict) -> str:
    """The Markdown table of an evaluation's rows (each part's best PSNR in bold, among the
    rows that are not bounds)."""
    rows = record["rows"]
    parts = list(rows[0]["scores"])
    header = ["method"]
    for part in parts:
        header += [f"{part} PSNR (dB)", f"{part} PSNR of mean MSE", f"{part} SSIM"]
    header.append("ms / mixture")
    methods = [row for row in rows if not any(word in row["method"] for word in BOUNDS)]
    best = {part: max(row["scores"][part]["psnr"][0] for row in methods) for part in parts}
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["method"]]
        for part in parts:
            scores = row["scores"][part]
            psnr = f"{scores['psnr'][0]:.2f} ± {scores['psnr'][1]:.2f}"
            cells.append(f"**{psnr}**" if scores["psnr"][0] == best[part] else psnr)
            cells.append(f"{scores['psnr_of_mean_mse'][0]:.2f}")
            cells.append(f"{scores['ssim'][0]:.3f}")
        cells.append(_milliseconds(row.get("seconds")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _milliseconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    ms = 1e3 * seconds
    if ms < 0.005:
        return "0"
    return f"{ms:,.0f}" if ms >= 10 else f"{ms:.2f}"


def evaluation(path: str) -> dict:
    """The evaluation a marker names: a whole file's, or one setting's of a report."""
    name, _, setting = path.partition("#")
    record = json.loads((ROOT / name).read_text(encoding="utf-8"))
    if not setting:
        return record
    found = record[setting]
    seconds = found.get("seconds", {})
    rows = [
        {"method": method, "scores": scores, "seconds": seconds.get(method)}
        for method, scores in found["scores"].items()
    ]
    return {"rows": rows}


def margins(match: re.Match) -> str:
    """The margins table of a demix-ink report (experiments/ink.margin_table): ours against
    the best floor, MixIT and the bound, and each target met or missed."""
    from demixgan.experiments.ink import INK_SETTINGS, margin_table

    record = json.loads((ROOT / match["path"]).read_text(encoding="utf-8"))
    return margin_table(record, INK_SETTINGS).markdown()


def regenerate(text: str) -> str:
    """``text`` with every marked table written from its file."""

    def written(match: re.Match) -> str:
        made = table(evaluation(match["path"])) if match["kind"] == "table" else margins(match)
        return match.group(1) + made + match.group(5)

    return BLOCK.sub(written, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 where a table drifted")
    parser.add_argument(
        "--file", type=Path, nargs="+", default=[ROOT / "RESULTS.md", ROOT / "README.md"]
    )
    args = parser.parse_args()
    drifted = False
    for path in args.file:
        text = path.read_text(encoding="utf-8")
        fresh = regenerate(text)
        if fresh != text and args.check:
            print(f"{path.name}: a table differs from its metrics.json; run {__file__}")
            drifted = True
        elif fresh != text:
            path.write_text(fresh, encoding="utf-8")
    return int(drifted)


if __name__ == "__main__":
    sys.exit(main())
