"""One writer per run and output directory (io/locks.py), and readers that ride out a writer.

Real processes contend as users would start them: a second ``train --resume`` while a run
trains, a command writing an output another process holds, a holder killed with SIGKILL,
and a reader loading the run's newest checkpoint in a loop while it trains and rotates them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import finish

from demixgan.cli.main import main
from demixgan.errors import DemixganError
from demixgan.inference.loading import load_model
from demixgan.io import checkpoints, locks
from demixgan.spec.config import load_config
from demixgan.training import loop

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny-demix.toml"
TIMEOUT = 120  # seconds: only there to turn a hang into a failure
LOADS = 200
FAST = ["--iterations", "5", "--restarts", "1"]

#: ``python -c HOLD KIND PATH``: hold run_lock(PATH) or output_lock(PATH) until killed.
HOLD = """
import sys, time
from demixgan.io import locks
hold = locks.run_lock if sys.argv[1] == "run" else locks.output_lock
with hold(sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process ended first:\n{proc.communicate()[1]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: timed out")
        time.sleep(0.01)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()


def _stats_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "stats.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


# Bit-identical resumes need one thread and the global RNG left as found (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


# -- 1. a training run: a second writer, a SIGKILLed holder, readers -----------------------


@pytest.fixture(scope="module")
def contention(tmp_path_factory) -> dict:
    """A trains (a checkpoint every step, 1 kept: the newest is deleted at the next save, the
    harshest rotation for readers); B = 'train --resume' while A holds the run;
    meanwhile this process loads the newest checkpoint LOADS times; then A is SIGKILLed and
    C = 'train --resume' continues the run (its config.json ends it 3 steps later)."""
    root = tmp_path_factory.mktemp("contention")
    run = root / "run"
    settings = ["train.epochs=1000", "train.max_steps=0", "train.checkpoint_every=1"]
    settings += ["train.keep_last=1", "train.log_every=1", "train.snapshot_every_epoch=false"]
    sets = [part for setting in settings for part in ("--set", setting)]
    train = ["-m", "demixgan", "train", "--config", str(TINY), *sets, "--run-dir", str(run)]
    a = _start(*train, "--no-progress", cwd=root)
    try:
        _wait_for(
            lambda: (h := locks.holder(run / locks.LOCK_NAME)) is not None and h.pid == a.pid,
            "A takes the run's lock",
            a,
        )
        _wait_for(lambda: list((run / "checkpoints").glob("*.json")), "A's first checkpoint", a)
        b = _start("-m", "demixgan", "train", "--resume", str(run), "--no-progress", cwd=root)
        failures, steps, attempts = [], set(), []

        def load(checkpoint: checkpoints.Checkpoint):
            attempts.append(checkpoint.step)
            return load_model(checkpoint.weights_path)

        for _ in range(LOADS):
            try:
                found = locks.read_newest(run / "checkpoints", load)
            except DemixganError as exc:  # what a user would see
                failures.append(str(exc))
                continue
            if found is None:
                failures.append("no checkpoint")
            else:
                steps.add(found[0].step)
        b_result = finish(b, TIMEOUT)
        a_running = a.poll() is None
    finally:
        _kill(a)
    stale_lock = (run / locks.LOCK_NAME).exists()
    latest = checkpoints.latest_checkpoint(run / "checkpoints").step
    config = json.loads((run / "config.json").read_text())
    config["train"]["max_steps"] = latest + 3
    (run / "config.json").write_text(json.dumps(config))
    c = _start("-m", "demixgan", "train", "--resume", str(run), "--no-progress", cwd=root)
    return {
        "run": run,
        "a": a,
        "a_running": a_running,
        "b": b_result,
        "failures": failures,
        "steps": steps,
        "attempts": attempts,
        "stale_lock": stale_lock,
        "latest": latest,
        "c": finish(c, TIMEOUT),
    }


def test_a_second_writer_of_a_training_run_is_refused_naming_the_first(contention):
    code, out, err = contention["b"]
    assert contention["a_running"], "A finished before B tried: the test proved nothing"
    assert code == 2, err
    assert f"is in use by another demixgan process (PID {contention['a'].pid}," in err
    assert err.startswith("demixgan: error: ") and len(err.strip().splitlines()) == 1
    assert "run directory:" not in out  # it trained nothing


def test_the_log_has_each_step_once_after_the_contention(contention):
    steps = _stats_steps(contention["run"])
    assert steps == list(range(1, len(steps) + 1))  # log_every 1: every step, once, in order
    assert steps[-1] == contention["latest"] + 3


def test_a_sigkilled_writer_leaves_a_lock_the_next_writer_takes(contention):
    assert contention["stale_lock"]  # SIGKILL could not remove the file...
    code, out, err = contention["c"]
    assert code == 0, err  # ...but the kernel dropped the flock
    assert f"(step {contention['latest'] + 3})" in out
    assert "applying changed train.max_steps: 0 -> " in err
    assert not (contention["run"] / locks.LOCK_NAME).exists()  # removed on its release


def test_loads_during_training_never_fail(contention):
    assert contention["failures"] == []
    assert len(contention["steps"]) > 5  # the loads saw the checkpoints rotate
    # ...and some found their checkpoint deleted under them (about 1 in 6 loads without the
    # retry fails with a misleading "does not exist"): the retry was needed, and it held.
    assert len(contention["attempts"]) > LOADS


# -- 2. reading the newest checkpoint while a writer rotates them ------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny run of 10 steps, checkpoints at 5 and 10."""
    run = tmp_path_factory.mktemp("trained") / "run"
    config = load_config(TINY, ["train.max_steps=10", "train.checkpoint_every=5"])
    with torch.random.fork_rng(devices=[]):
        loop.train(config, run, progress=False)
    return run


def _pruned_once(calls: list[int]):
    """A load that, the first time, finds its checkpoint rotated away (as _prune does)."""

    def load(checkpoint: checkpoints.Checkpoint):
        calls.append(checkpoint.step)
        if len(calls) == 1:
            for path in (checkpoint.sidecar_path, checkpoint.weights_path):
                path.unlink()
        return checkpoints.load_weights(checkpoint.weights_path)

    return load


def _copy_run(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for path in (trained / "checkpoints").iterdir():  # a copy: the fixture's files stay intact
        (run / "checkpoints" / path.name).write_bytes(path.read_bytes())
    return run


def test_read_newest_retries_while_a_writer_holds_the_run(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    holder = _start("-c", HOLD, "run", str(run), cwd=tmp_path)
    try:
        assert holder.stdout.readline() == "held\n"
        calls: list[int] = []
        checkpoint, (weights, sidecar) = locks.read_newest(run / "checkpoints", _pruned_once(calls))
    finally:
        _kill(holder)
    assert calls == [10, 5]  # the vanished step 10, then the newest left
    assert checkpoint.step == sidecar["step"] == 5 and "model" in weights


def test_a_slow_reader_outlasts_many_rotations_then_gives_up(trained, tmp_path, monkeypatch):
    """A loaded machine can make a dozen loads in a row land on a rotation (the flake of
    session 34: six quick retries ran out); the reader keeps choosing again until its patience
    runs out, then reports the load's own error instead of waiting for ever."""
    run = _copy_run(trained, tmp_path)
    calls: list[int] = []

    def rotated_under(times: int):
        def load(checkpoint: checkpoints.Checkpoint):
            calls.append(checkpoint.step)
            if len(calls) <= times:
                raise DemixganError(f"The checkpoint '{checkpoint.weights_path}' does not exist")
            return checkpoint.step

        return load

    holder = _start("-c", HOLD, "run", str(run), cwd=tmp_path)
    try:
        assert holder.stdout.readline() == "held\n"
        found = locks.read_newest(run / "checkpoints", rotated_under(12))
        assert found is not None and found[1] == 10 and len(calls) == 13
        monkeypatch.setattr(locks, "_READ_PATIENCE", 0.5)
        calls.clear()
        started = time.monotonic()
        with pytest.raises(DemixganError, match="does not exist"):
            locks.read_newest(run / "checkpoints", rotated_under(10**6))
        assert time.monotonic() - started < 5 and len(calls) > 3
    finally:
        _kill(holder)


def test_read_newest_fails_at_once_for_a_run_nobody_writes(trained, tmp_path):
    folder = _copy_run(trained, tmp_path) / "checkpoints"
    calls: list[int] = []

    def damaged(checkpoint: checkpoints.Checkpoint):
        calls.append(checkpoint.step)
        raise DemixganError("damaged")

    with pytest.raises(DemixganError, match="damaged"):
        locks.read_newest(folder, damaged)
    assert calls == [10]  # no writer, nothing changed: no retry hides a real error
    assert locks.read_newest(tmp_path / "empty", damaged) is None


# -- 3. the lock itself --------------------------------------------------------------------


def test_a_lock_is_released_on_every_exit_path_and_is_reentrant(tmp_path):
    run = tmp_path / "run"
    for error in (KeyboardInterrupt, DemixganError, ValueError):
        with pytest.raises(error), locks.run_lock(run):
            with locks.run_lock(run):  # the engine inside the CLI's hold: no self-deadlock
                assert locks.holder(run / locks.LOCK_NAME).pid == os.getpid()
            assert (run / locks.LOCK_NAME).exists()  # still held by the outer block
            raise error("stop")
        assert list(run.iterdir()) == []  # released and removed
    holder = _start("-c", HOLD, "run", str(run), cwd=tmp_path)
    try:
        assert holder.stdout.readline() == "held\n"  # another process can take it now
        with pytest.raises(DemixganError) as refused, locks.run_lock(run):
            pass
    finally:
        _kill(holder)
    message = str(refused.value)
    assert message.startswith(f"The run directory '{run}' is in use by another demixgan")
    assert f"PID {holder.pid}, started " in message and "Wait for it to finish" in message
    with locks.run_lock(run):  # after the SIGKILL
        pass
    assert list(run.iterdir()) == []


#: ``python -c CHURN DIR N``: N times, take DIR's run lock if free and log entering and leaving.
CHURN = """
import os, sys, time
from demixgan.errors import DemixganError
from demixgan.io import locks
with open(os.path.join(sys.argv[1], "log"), "a") as log:
    for _ in range(int(sys.argv[2])):
        try:
            with locks.run_lock(os.path.join(sys.argv[1], "run")):
                log.write(f"in {os.getpid()}\\n"); log.flush()
                time.sleep(0.0005)
                log.write(f"out {os.getpid()}\\n"); log.flush()
        except DemixganError:
            pass
"""


def test_removing_the_lock_file_on_release_keeps_writers_exclusive(tmp_path):
    """Writers racing for one lock, each release removing the file: never two inside at once."""
    procs = [_start("-c", CHURN, str(tmp_path), "150", cwd=tmp_path) for _ in range(3)]
    for proc in procs:
        assert finish(proc, TIMEOUT)[0] == 0
    events = [line.split() for line in (tmp_path / "log").read_text().splitlines()]
    inside = None
    for kind, pid in events:
        assert (kind, inside) in (("in", None), ("out", pid)), f"two writers inside: {events}"
        inside = pid if kind == "in" else None
    assert len({pid for _, pid in events}) == 3 and len(events) > 150  # they did contend
    assert list((tmp_path / "run").iterdir()) == []


def test_a_regular_file_is_not_a_run_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DemixganError, match="is a file, not a directory"), locks.run_lock(blocker):
        pass


def _commands(run: Path, tmp_path: Path) -> dict[str, tuple[str, Path, list[str]]]:
    """Each writing command: (lock kind, what is locked, argv), all writing under tmp_path."""
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 28, 28), np.float32))
    out = tmp_path / "out"
    return {
        "demix": ("output", out, ["demix", str(run), str(x), "-o", str(out), *FAST]),
        "evaluate --json": (
            "output",
            tmp_path / "scores.json",
            ["evaluate", str(run), "--n", "2", "--json", str(tmp_path / "scores.json"), *FAST],
        ),
        "data show": ("output", tmp_path / "grid.png", ["data", "show", "digit+sines", "-n", "4"]),
        "reproduce": ("output", out, ["reproduce", "denoise-test", "--profile", "smoke"]),
        "demo": ("output", out, ["demo", "--n", "2", "--no-progress"]),
        "separator": ("run", out, ["separator", str(run), "--steps", "2"]),
        "train": ("run", out, ["train", "--config", str(TINY), "--run-dir", str(out)]),
    }


@pytest.mark.parametrize(
    "name", ["demix", "evaluate --json", "data show", "reproduce", "demo", "separator", "train"]
)
def test_every_writer_is_refused_while_its_output_is_held(trained, tmp_path, capsys, name):
    kind, target, argv = _commands(trained, tmp_path)[name]
    if "-o" not in argv and "--json" not in argv and "--run-dir" not in argv:
        argv += ["-o", str(target)]
    holder = _start("-c", HOLD, kind, str(target), cwd=tmp_path)
    try:
        assert holder.stdout.readline() == "held\n"
        before = _files(tmp_path)
        code = main([*argv, "--no-progress"] if name in ("train", "reproduce") else argv)
    finally:
        _kill(holder)
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"is in use by another demixgan process (PID {holder.pid}," in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _files(tmp_path) == before  # nothing written by the refused command


def test_an_output_is_written_once_its_holder_died(trained, tmp_path, capsys):
    kind, out, argv = _commands(trained, tmp_path)["demix"]
    holder = _start("-c", HOLD, kind, str(out), cwd=tmp_path)
    assert holder.stdout.readline() == "held\n"
    _kill(holder)
    assert (tmp_path / ".out.lock").exists()  # SIGKILL left the file behind
    assert main(argv) == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "x.npy"]  # only the output
