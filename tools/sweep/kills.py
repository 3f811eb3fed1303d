"""Kills: SIGKILL at chosen moments of training, separator training, demixing and downloads,
then what a user does next (resume, or run the command again).

A killed-and-resumed training run must end bit-identical to the uninterrupted one (weights,
optimiser and RNG state, the log's losses); a killed command run again must succeed and leave
no temporary file of the dead process behind.
"""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from assets import SMALL_SEPARATOR, TINY, Assets
from runner import Result, environment, temporary_files

#: ``demixgan ARGS`` with os.replace patched to SIGKILL the process instead of the rename
#: whose destination's name is argv[1]: a kill in the middle of a checkpoint write. The name
#: picks the rename robustly (evolution PNGs and config files are renamed too). The tests'
#: ``kill_at_rename`` fixture (tests/conftest.py) is this script.
KILL_AT_RENAME = """
import os, signal, sys
target, real_replace = sys.argv[1], os.replace
def replace(src, dst, *args, **kwargs):
    if os.path.basename(os.fspath(dst)) == target:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
from demixgan.cli.main import main
sys.exit(main(sys.argv[2:]))
"""
RENAME_TARGETS = [
    "config.json",
    "step-000000005.safetensors",
    "step-000000005.resume.pt",
    "step-000000005.json",
    "step-000000010.json",
    "step-000000015.safetensors",
    "step-000000016.json",
    "step-000000020.resume.pt",
    "epoch-0001.png",
]
#: Seconds into training (from the moment its stats.jsonl is opened), so a kill lands
#: mid-training whatever the machine's load: a step, a checkpoint's write, an epoch's end.
TIMED_KILLS = [0.0, 0.1, 0.2, 0.3, 0.5, 0.8]


@dataclass
class Kill:
    name: str
    argv: list[str]  # the command to kill
    at_rename: str | None = None
    after: float | None = None  # seconds after start
    after_log: float | None = None  # seconds after the run opens its stats.jsonl


def _start(argv: list[str], sandbox: Path, at_rename: str | None) -> subprocess.Popen:
    if at_rename is not None:
        args = [sys.executable, "-c", KILL_AT_RENAME, at_rename, *argv]
    else:
        args = [sys.executable, "-m", "demixgan", *argv]
    return subprocess.Popen(
        args,
        cwd=sandbox,
        env=environment(sandbox),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill(kill: Kill, sandbox: Path) -> tuple[bool, str]:
    """Run ``kill.argv`` and SIGKILL it; returns (killed, stderr)."""
    process = _start(kill.argv, sandbox, kill.at_rename)
    if kill.after_log is not None:
        log = sandbox / "k" / "stats.jsonl"
        while process.poll() is None and not log.is_file():
            time.sleep(0.01)
        time.sleep(kill.after_log)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
    if kill.after is not None:
        try:
            process.wait(timeout=kill.after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=600)
    return process.returncode == -signal.SIGKILL, stderr


def _demixgan(argv: list[str], sandbox: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "demixgan", *argv],
        cwd=sandbox,
        env=environment(sandbox),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path)


def _same(a, b) -> bool:
    """Deep equality of resume states: tensors bit for bit, the rest by value."""
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _losses(run: Path) -> list[dict]:
    lines = (run / "stats.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return [{k: v for k, v in r.items() if k != "observations_per_s"} for r in records]


def identical_runs(run: Path, reference: Path, step: int) -> str:
    """'' when ``run`` ends as ``reference`` did at ``step``; else what differs."""
    import torch

    stem = f"checkpoints/step-{step:09d}"
    if not (run / f"{stem}.safetensors").is_file():
        return f"no checkpoint of step {step}"
    mine, theirs = (
        _tensors(run / f"{stem}.safetensors"),
        _tensors(reference / f"{stem}.safetensors"),
    )
    if mine.keys() != theirs.keys() or not all(torch.equal(mine[k], theirs[k]) for k in mine):
        return "weights differ"
    resume = [torch.load(r / f"{stem}.resume.pt", weights_only=True) for r in (run, reference)]
    if not _same(*resume):
        return "optimiser or RNG state differs"
    if (reference / "stats.jsonl").is_file() and _losses(run) != _losses(reference):
        return "stats.jsonl differs (duplicated, missing or other losses)"
    return ""


def _continue(kill: Kill, sandbox: Path, resume: list[str], target: Path) -> tuple[int, str]:
    """What a user does after the kill: resume the run, or start it again if it never began."""
    stderr = ""
    for _ in range(3):
        started = (target / "config.json").is_file() or (target / "separator-job.json").is_file()
        done = _demixgan(resume if started else kill.argv, sandbox)
        stderr += done.stderr
        if done.returncode == 0:
            return 0, stderr
    return done.returncode, stderr


def training_kills(assets: Assets) -> Iterator[Kill]:
    train = ["train", "--config", str(assets.config), *TINY, "--no-progress", "--run-dir", "k"]
    for target in RENAME_TARGETS:
        yield Kill(f"train killed at the rename of {target}", train, at_rename=target)
    for seconds in TIMED_KILLS:
        name = f"train killed {seconds:g} s into training"
        yield Kill(name, train, after_log=seconds)


SEPARATOR_STEPS = ["--steps", "12", "--checkpoint-every", "3", "--log-every", "3", *SMALL_SEPARATOR]


def separator_kills(assets: Assets) -> Iterator[Kill]:
    argv = ["separator", str(assets.run), "-o", "k", *SEPARATOR_STEPS]
    yield Kill(
        "separator killed at the rename of step-000000003.json",
        argv,
        at_rename="step-000000003.json",
    )
    yield Kill(
        "separator killed at the rename of separator-job.json", argv, at_rename="separator-job.json"
    )
    for seconds in (0.1, 0.4):
        yield Kill(f"separator killed {seconds:g} s into training", argv, after_log=seconds)


def run_kill(kill: Kill, sandbox: Path, assets: Assets, reference: Path, steps: int) -> Result:
    """Kill, continue, compare with the uninterrupted ``reference``."""
    sandbox.mkdir(parents=True)
    start = time.perf_counter()
    killed, _ = _kill(kill, sandbox)
    target = sandbox / "k"
    resume = (
        ["train", "--resume", "k", "--no-progress"]
        if kill.argv[0] == "train"
        else ["separator", "--resume", "k"]
    )
    status, stderr = _continue(kill, sandbox, resume, target)
    result = Result("kill", kill.name, status, time.perf_counter() - start)
    result.traceback = "Traceback (most recent call last)" in stderr
    result.leftovers = temporary_files(sandbox)
    difference = identical_runs(target, reference, steps) if status == 0 else "did not finish"
    if not killed:
        difference = difference or "the process ended before the kill"
    result.wrong_status = bool(difference)
    result.message = difference or ("killed, resumed, bit-identical" if killed else "")
    return result


def demix_kills() -> Iterator[tuple[str, float]]:
    for seconds in (2.5, 3.5, 5.0):
        yield f"demix killed after {seconds:g} s, run again", seconds


def run_demix_kill(name: str, seconds: float, sandbox: Path, assets: Assets) -> Result:
    sandbox.mkdir(parents=True)
    start = time.perf_counter()
    long_fit = ["--iterations", "3000", "--restarts", "4"]
    argv = ["demix", str(assets.run), str(assets.mixtures), "-o", "out", *long_fit]
    killed, _ = _kill(Kill(name, argv, after=seconds), sandbox)
    again = _demixgan(
        ["demix", str(assets.run), str(assets.mixtures), "-o", "out", "--iterations", "2"], sandbox
    )
    result = Result("kill", name, again.returncode, time.perf_counter() - start)
    result.traceback = "Traceback (most recent call last)" in again.stderr
    result.leftovers = temporary_files(sandbox)
    result.wrong_status = again.returncode != 0 or not killed
    result.message = again.stderr.strip().splitlines()[-1][:300] if again.stderr.strip() else ""
    return result


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Serves an endless file one byte at a time: a download to kill half-way."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10**9))
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"\x1f")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            return

    def log_message(self, *args) -> None:
        return


DOWNLOAD = """
import sys
from demixgan.data.catalog import DATASETS
from demixgan.data.download import download_files
dataset = DATASETS["mnist"]
try:
    download_files(dataset, dataset.files[:1], "cache", mirrors=[sys.argv[1]])
except Exception as error:
    print(type(error).__name__, error, file=sys.stderr)
"""


def run_download_kill(name: str, seconds: float, sandbox: Path) -> Result:
    """Kill a download half-way; the next download into the folder must clear its .part."""
    sandbox.mkdir(parents=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    start = time.perf_counter()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", DOWNLOAD, url],
            cwd=sandbox,
            env=environment(sandbox),
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(seconds)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        left_by_kill = temporary_files(sandbox)
        again = subprocess.run(
            [sys.executable, "-c", DOWNLOAD, "http://127.0.0.1:9/"],
            cwd=sandbox,
            env=environment(sandbox),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.shutdown()
    result = Result("kill", name, again.returncode, time.perf_counter() - start)
    result.traceback = "Traceback (most recent call last)" in again.stderr
    result.leftovers = temporary_files(sandbox)
    result.message = f"the kill left {len(left_by_kill)} temporary file(s); the next call cleared "
    result.message += "them" if not result.leftovers else "not all"
    return result
