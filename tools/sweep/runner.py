"""Run one case of the reliability sweep in its own sandbox and judge what it left behind.

A case is a ``demixgan`` command line (or a Python snippet) run in a fresh directory. Whatever
it does, the sweep asks four questions of it: did a Python traceback reach the user, did it
exit 0 with NaN or inf in what it wrote or printed, did a failure leave files behind (or a
success leave temporary ones), and did it end with the status the case expects.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TRACEBACK = "Traceback (most recent call last)"
#: Names of temporary files and directories of demixgan's writers (atomic files, downloads,
#: staged outputs); none may outlive the command that made them.
TEMP_NAME = re.compile(r"^\..*(\.tmp|\.part|\.partial|\.partial-.*|\.lock)$|^\.write-probe-")
NAN_WORD = re.compile(r"(?<![A-Za-z])(nan|inf)(?![A-Za-z])", re.IGNORECASE)
Prepare = Callable[[Path], None]


@dataclass
class Case:
    """One try: ``argv`` for ``demixgan`` (or ``python`` code), after ``prepare`` ran."""

    category: str  # "bad input", "tampered file", "kill", "concurrency", "api"
    name: str
    argv: list[str] = field(default_factory=list)
    prepare: Prepare | None = None
    expect: str = "error"  # "error" (exit 2), "ok" (exit 0) or "either"
    python: str | None = None  # run ``python -c`` instead of the CLI
    timeout: float = 300.0


@dataclass
class Result:
    category: str
    name: str
    status: int | None
    seconds: float
    traceback: bool = False
    nan_output: bool = False
    leftovers: list[str] = field(default_factory=list)
    wrong_status: bool = False
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.traceback or self.nan_output or bool(self.leftovers) or self.wrong_status


def environment(sandbox: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """No network (mirrors on a closed port), a private cache, one thread per process."""
    env = dict(os.environ)
    env.update(
        DEMIXGAN_CACHE=str(sandbox / ".cache-root"),
        DEMIXGAN_MIRRORS="http://127.0.0.1:9/",
        OMP_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("DEMIXGAN_DATA", None)
    env.update(extra or {})
    return env


def command(case: Case) -> list[str]:
    if case.python is not None:
        return [sys.executable, "-c", case.python, *case.argv]
    return [sys.executable, "-m", "demixgan", *case.argv]


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a digest of its content (directories: "dir")."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if relative.startswith(".cache-root"):
            continue
        if path.is_dir() and not path.is_symlink():
            found[relative] = "dir"
        else:
            try:
                found[relative] = hashlib.sha1(path.read_bytes()).hexdigest()
            except OSError:
                found[relative] = "unreadable"
    return found


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    added = [f"+{p}" for p in after if p not in before]
    removed = [f"-{p}" for p in before if p not in after]
    edited = [f"~{p}" for p in after if p in before and after[p] != before[p]]
    return added + removed + edited


def temporary_files(root: Path) -> list[str]:
    return [
        str(p.relative_to(root))
        for p in root.rglob(".*")
        if TEMP_NAME.match(p.name) and not str(p.relative_to(root)).startswith(".cache-root")
    ]


def non_finite_outputs(root: Path, paths: list[str]) -> list[str]:
    """New ``.npy`` and ``.json`` files holding NaN or inf."""
    bad = []
    for relative in paths:
        path = root / relative.lstrip("+~")
        try:
            if path.suffix == ".npy":
                array = np.load(path, allow_pickle=False)
                if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
                    bad.append(relative)
            elif path.suffix in (".json", ".jsonl"):
                text = path.read_text(encoding="utf-8")
                for line in text.splitlines() if path.suffix == ".jsonl" else [text]:
                    if line.strip():
                        json.loads(line, parse_constant=_refuse_constant)
        except _NonFinite:
            bad.append(relative)
        except (OSError, ValueError):
            continue
    return bad


class _NonFinite(Exception):
    pass


def _refuse_constant(name: str) -> float:
    raise _NonFinite(name)


def judge(
    case: Case, status: int | None, stdout: str, stderr: str, sandbox: Path, before: dict
) -> Result:
    """What a finished case did wrong, if anything."""
    after = snapshot(sandbox)
    changed = changes(before, after)
    result = Result(case.category, case.name, status, 0.0)
    result.traceback = TRACEBACK in stderr or status not in (0, 2)
    if status == 0:
        result.leftovers = temporary_files(sandbox)
        written = [p for p in changed if p[0] in "+~"]
        printed_nan = NAN_WORD.search(stdout) is not None
        result.nan_output = printed_nan or bool(non_finite_outputs(sandbox, written))
    else:
        result.leftovers = changed
    if case.expect == "error":
        result.wrong_status = status != 2
    elif case.expect == "ok":
        result.wrong_status = status != 0
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    result.message = lines[-1][:300] if lines else ""
    return result


def run_case(case: Case, sandbox: Path, env_extra: dict[str, str] | None = None) -> Result:
    """Prepare the sandbox, run the case in it, judge it."""
    sandbox.mkdir(parents=True)
    if case.prepare is not None:
        case.prepare(sandbox)
    before = snapshot(sandbox)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command(case),
            cwd=sandbox,
            env=environment(sandbox, env_extra),
            capture_output=True,
            text=True,
            timeout=case.timeout,
        )
        status, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        status, stdout = None, _text(exc.stdout)
        stderr = _text(exc.stderr) + f"\n(timed out after {case.timeout:g} s)"
    result = judge(case, status, stdout, stderr, sandbox, before)
    result.seconds = time.perf_counter() - start
    return result


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def summarise(results: list[Result]) -> dict:
    """Counts per category and in all, and every failing case by name."""
    by_category: dict[str, dict[str, int]] = {}
    for result in results:
        counts = by_category.setdefault(
            result.category,
            {"cases": 0, "tracebacks": 0, "nan_outputs": 0, "leftovers": 0, "wrong_status": 0},
        )
        counts["cases"] += 1
        counts["tracebacks"] += result.traceback
        counts["nan_outputs"] += result.nan_output
        counts["leftovers"] += bool(result.leftovers)
        counts["wrong_status"] += result.wrong_status
    total = {
        key: sum(c[key] for c in by_category.values())
        for key in ("cases", "tracebacks", "nan_outputs", "leftovers", "wrong_status")
    }
    failures = [
        {
            "category": r.category,
            "name": r.name,
            "status": r.status,
            "traceback": r.traceback,
            "nan_output": r.nan_output,
            "leftovers": r.leftovers[:10],
            "wrong_status": r.wrong_status,
            "message": r.message,
        }
        for r in results
        if r.failed
    ]
    seconds = [r.seconds for r in results]
    return {
        "total": total,
        "by_category": by_category,
        "median_case_seconds": round(float(np.median(seconds)), 2) if seconds else None,
        "failures": failures,
    }
