"""Write the tables of RESULTS.md and README.md from the committed ``metrics.json`` files.

A table in either that stands between ``<!-- table from PATH -->`` and
``<!-- end table -->`` is generated here from the evaluation recorded in PATH (a
``metrics.json`` of ``demixgan demo`` or ``demixgan evaluate --json``; ``PATH#SETTING`` for
one setting of a ``demixgan reproduce`` report's ``metrics.json``): one row per method,
per part the per-image mean PSNR ± std, the PSNR of the mean MSE and the mean SSIM, and the
time per mixture; a PATH under a report's ``tables/`` ending in ``.md`` is a table that
report's command wrote, copied as it is. ``<!-- margins from PATH ... -->`` (a ``demixgan
reproduce`` report's ``metrics.json``, or several files: reports, of which the architectures
validation chose, and ``demixgan evaluate`` / ``demo`` files) writes the margins table: ours
against the best floor, MixIT and the supervised bound, each target met or missed;
``<!-- targets from PATH ... -->`` (denoise-test's and cs's ``metrics.json``) those reports'
targets, met or missed.
``<!-- budgets from docs/results -->`` writes every report's minutes from an empty checkpoint
store, summed from its provenance. Typing a number is how reports drift from their commands;
this is how they cannot (tools/results_numbers.py checks the numbers outside these tables).

Run ``.venv/bin/python tools/results_tables.py`` to rewrite both, ``--check`` to exit 1
where a table differs from its file (tests/test_results_tables.py runs it).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from demixgan.io.run_files import on_threads

ROOT = Path(__file__).resolve().parents[1]
#: Rows that see the truth or the clean parts: bounds, never the best method.
BOUNDS = ("upper bound", "oracle")
BLOCK = re.compile(
    r"(<!-- (?P<kind>table|margins|targets|budgets) from (?P<path>[^>]+?) -->\n)(?P<body>.*?)"
    r"(<!-- end table -->)",
    re.S,
)
#: How a report's provenance names a model's training (reports/experiment.py writes these):
#: its minutes and threads; what follows them (", over the segments of a resumed run", "; kept
#: by a GAN-budget grid's run ...") is not part of the budget.
REUSED = re.compile(
    r"^(?P<model>[^:]+): reused .*?in (?P<minutes>[\d.]+) min(?P<threads> on [^),;]+)?[^)]*\)$"
)
TRAINED_NOW = re.compile(
    r"^(?P<model>[^:]+): trained now .*\((?P<minutes>[\d.]+) min(?P<threads> on [^),;]+)?[^)]*\)$"
)
SHIPPED = re.compile(r"^(?P<model>[^:]+): the checkpoint that ships")


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


def margins(paths: list[str]) -> str:
    """The margins table (experiments/margins.py) of the files a marker names: one
    ``demixgan reproduce`` report's settings with peers, or, across several files (a glance),
    each report's settings that validation chose and each ``demixgan evaluate`` / ``demo``
    file's evaluation."""
    from demixgan.experiments.margins import margin_table, peered_settings
    from demixgan.experiments.margins import margins as margins_of

    records = _records(paths)
    if len(records) == 1 and "rows" not in records[0]:
        return margin_table(records[0]).markdown()
    evaluations = []
    for record in records:
        if "rows" not in record:  # a report: the architectures validation chose
            evaluations += peered_settings(record, chosen_only=True)
            continue
        evaluations.append(
            (
                f"{record['recipe']}, {record['n']:,} {record['digits']}",
                {row["method"]: row["scores"] for row in record["rows"]},
                record["recipe"],
            )
        )
    return margins_of(evaluations).markdown()


def _records(paths: list[str]) -> list[dict]:
    """The committed ``metrics.json`` files a marker names."""
    return [json.loads((ROOT / path).read_text(encoding="utf-8")) for path in paths]


def targets(paths: list[str]) -> str:
    """The denoising and compressive-sensing targets (experiments/margins.report_targets) of
    the report files a marker names (denoise-test's and cs's ``metrics.json``)."""
    from demixgan.experiments.margins import report_targets

    records = _records(paths)
    return report_targets(records).markdown()


def budgets(folder: str) -> str:
    """Minutes of every report under ``folder`` from an empty checkpoint store: the training
    of the models it reused (from its provenance, each model once) plus its own run, which
    includes the models it trained itself; shipped models are not trained."""
    lines = [
        "| experiment | code | reused models' training | trained in the run | report run "
        "| from an empty store | shipped, not trained |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in sorted((ROOT / folder).glob("*/metrics.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if "provenance" not in record or "minutes" not in record:
            continue
        reused, now, shipped = {}, {}, []
        for line in record["provenance"]:
            if match := REUSED.match(line):
                reused[match["model"]] = (float(match["minutes"]), match["threads"] or "")
            elif match := TRAINED_NOW.match(line):
                now[match["model"]] = (float(match["minutes"]), match["threads"] or "")
            elif match := SHIPPED.match(line):
                shipped.append(match["model"])
            elif "reused" in line:
                reused[line.partition(":")[0]] = (float("nan"), "")  # minutes not recorded
        commit = record.get("code", {}).get("commit")
        earlier = sum(minutes for minutes, _ in reused.values())
        cells = [
            path.parent.name,
            commit[:7] if commit else "before records",
            _sum_of(reused),
            _sum_of(now),
            f"{record['minutes']:.1f}"
            + on_threads([record["threads"]] if "threads" in record else []),
            "unrecorded" if math.isnan(earlier) else f"{earlier + record['minutes']:.1f}",
            ", ".join(shipped),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _sum_of(models: dict[str, tuple[float, str]]) -> str:
    """``total (model minutes [on N threads] + ...)`` of (minutes, threads) by model; '?' where
    a report did not record a model's minutes."""
    if not models:
        return ""
    parts = " + ".join(f"{model} {_minutes(m)}{threads}" for model, (m, threads) in models.items())
    total = sum(m for m, _ in models.values())
    return parts if len(models) == 1 else f"{_minutes(total)} ({parts})"


def _minutes(value: float) -> str:
    return "?" if math.isnan(value) else f"{value:.1f}"


def regenerate(text: str) -> str:
    """``text`` with every marked table written from its file."""

    def written(match: re.Match) -> str:
        kind, path = match["kind"], match["path"]
        if kind == "budgets":
            made = budgets(path)
        elif kind == "margins":
            made = margins(path.split())
        elif kind == "targets":
            made = targets(path.split())
        elif path.endswith(".md"):  # a table the report's own command wrote, as it wrote it
            made = (ROOT / path).read_text(encoding="utf-8")
        else:
            made = table(evaluation(path))
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
