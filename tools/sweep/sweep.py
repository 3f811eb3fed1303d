"""The reliability sweep: try what users and accidents do to every command and the Python API.

    python tools/sweep/sweep.py --out docs/results/reliability/metrics.json

It trains two tiny runs and a separator (about a minute), then runs every case in a sandbox of
its own: bad inputs to every command (arrays, images, option values generated from the CLI's
parser, outputs, configs, names), tampered checkpoints, resume files, run files and data files,
SIGKILLs of training, separator training, demixing and downloads, and bad values to the Python
API. It counts tracebacks, NaN or inf written or printed with exit status 0, files left behind
(by a failure, or temporary ones by a success), unexpected exit statuses and, for kills, runs
that did not resume bit-identical. Exit status 1 when any count is not 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import api_cases
import bad_inputs
import kills
import tampered
from assets import Assets, build_assets, demixgan
from runner import Case, Result, run_case, snapshot, summarise

CATEGORIES = ("bad input", "tampered file", "api", "kill")


def substitute(case: Case, tokens: dict[str, str]) -> Case:
    argv = [tokens.get(word, word) for word in case.argv]
    return Case(
        case.category, case.name, argv, case.prepare, case.expect, case.python, case.timeout
    )


def static_cases(assets: Assets) -> list[Case]:
    tokens = assets.tokens()
    cases = [*bad_inputs.all_cases(), *tampered.all_cases(), *api_cases.all_cases()]
    return [substitute(case, tokens) for case in cases]


def kill_jobs(assets: Assets, references: dict[str, Path]):
    """Callables taking a sandbox, one per kill."""
    jobs = []
    for kill in kills.training_kills(assets):
        jobs.append(
            (kill.name, lambda box, k=kill: kills.run_kill(k, box, assets, references["train"], 20))
        )
    for kill in kills.separator_kills(assets):
        jobs.append(
            (
                kill.name,
                lambda box, k=kill: kills.run_kill(k, box, assets, references["separator"], 12),
            )
        )
    for name, seconds in kills.demix_kills():
        jobs.append((name, lambda box, n=name, s=seconds: kills.run_demix_kill(n, s, box, assets)))
    for seconds in (2.5, 3.5):
        name = f"download killed after {seconds:g} s, next download"
        jobs.append((name, lambda box, n=name, s=seconds: kills.run_download_kill(n, s, box)))
    return jobs


def _slug(index: int, name: str) -> str:
    safe = "".join(c if c.isalnum() else "-" for c in name)[:60].strip("-")
    return f"{index:04d}-{safe}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", help="working directory (default: a new temporary one)")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--out", help="write the counts and every failure to this JSON file")
    parser.add_argument("--only", action="append", choices=CATEGORIES, help="these categories")
    parser.add_argument(
        "--match", action="append", help="only cases whose name contains this text (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--doc", help="write the counts table into this Markdown file")
    args = parser.parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="demixgan-sweep-"))
    categories = set(args.only or CATEGORIES)
    started = time.perf_counter()

    assets = build_assets(work / "assets")
    reference_separator = work / "assets" / "separator-reference"
    if "kill" in categories:
        demixgan(
            work / "assets",
            "separator",
            str(assets.run),
            "-o",
            str(reference_separator),
            *kills.SEPARATOR_STEPS,
        )
    tampered.SOURCES.update(run=assets.run, separator=assets.separator)
    assets_before = snapshot(assets.root)

    cases = [c for c in static_cases(assets) if c.category in categories]
    if args.match:
        cases = [c for c in cases if any(m in c.name for m in args.match)]
    boxes = work / "cases"
    print(f"{len(cases)} cases, {args.jobs} at a time, in {work}", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        results: list[Result] = list(
            pool.map(
                lambda pair: _report(run_case(pair[1], boxes / _slug(*pair[0]))),
                [((i, c.name), c) for i, c in enumerate(cases)],
            )
        )
    if "kill" in categories:
        jobs = kill_jobs(assets, {"train": assets.run, "separator": reference_separator})
        if args.match:
            jobs = [j for j in jobs if any(m in j[0] for m in args.match)]
        offset = len(cases)
        with ThreadPoolExecutor(args.jobs) as pool:
            results += list(
                pool.map(
                    lambda pair: _report(pair[1][1](work / "kills" / _slug(pair[0], pair[1][0]))),
                    [(offset + i, job) for i, job in enumerate(jobs)],
                )
            )
    if snapshot(assets.root) != assets_before:
        results.append(
            Result(
                "bad input", "a case changed the shared assets", None, 0.0, leftovers=["assets/"]
            )
        )

    summary = summarise(results)
    summary["minutes"] = round((time.perf_counter() - started) / 60, 1)
    summary["command"] = "python tools/sweep/sweep.py " + " ".join(
        shlex.quote(a) for a in _without_work(argv if argv is not None else sys.argv[1:])
    )
    summary["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    _print(summary)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    if args.doc:
        write_table(Path(args.doc), summary)
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(summary["total"][k] for k in summary["total"] if k != "cases") else 0


def _without_work(argv: list[str]) -> list[str]:
    """The command line less ``--work DIR`` (a scratch path of this machine, not a setting)."""
    if "--work" not in argv:
        return list(argv)
    at = argv.index("--work")
    return argv[:at] + argv[at + 2 :]


def _report(result: Result) -> Result:
    if result.failed:
        what = [
            w
            for w, bad in (
                ("traceback", result.traceback),
                ("NaN output", result.nan_output),
                ("leftovers", bool(result.leftovers)),
                ("status", result.wrong_status),
            )
            if bad
        ]
        print(
            f"FAIL [{result.category}] {result.name}: {', '.join(what)} (exit "
            f"{result.status}) {result.message}",
            flush=True,
        )
    return result


TABLE_BEGIN, TABLE_END = "<!-- sweep table: begin -->", "<!-- sweep table: end -->"


def table(summary: dict) -> str:
    """The counts as a Markdown table (what docs/reliability.md shows)."""
    lines = [
        "| category | cases | tracebacks | NaN or inf with exit 0 | leftovers | wrong exit status "
        "(kills: not bit-identical) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = [*summary["by_category"].items(), ("**all**", summary["total"])]
    for name, c in rows:
        lines.append(
            f"| {name} | {c['cases']} | {c['tracebacks']} | {c['nan_outputs']} | "
            f"{c['leftovers']} | {c['wrong_status']} |"
        )
    lines.append("")
    lines.append(
        f"`{summary['command']}`: {summary['minutes']} min on {summary['machine']['cpus']}"
        f" CPUs, Python {summary['machine']['python']}."
    )
    return "\n".join(lines)


def write_table(doc: Path, summary: dict) -> None:
    """Replace the table between the markers of ``doc`` with this sweep's counts."""
    text = doc.read_text(encoding="utf-8")
    start, end = text.index(TABLE_BEGIN) + len(TABLE_BEGIN), text.index(TABLE_END)
    doc.write_text(text[:start] + "\n" + table(summary) + "\n" + text[end:], encoding="utf-8")


def _print(summary: dict) -> None:
    header = f"{'category':<15}{'cases':>7}{'tracebacks':>12}{'NaN out':>9}{'leftovers':>11}"
    print("\n" + header + f"{'wrong exit':>12}")
    rows = [*summary["by_category"].items(), ("all", summary["total"])]
    for name, c in rows:
        print(
            f"{name:<15}{c['cases']:>7}{c['tracebacks']:>12}{c['nan_outputs']:>9}"
            f"{c['leftovers']:>11}{c['wrong_status']:>12}"
        )
    print(f"({summary['minutes']} min)")


if __name__ == "__main__":
    sys.exit(main())
