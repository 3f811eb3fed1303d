"""Training as a user relies on it: exact resume after SIGKILL, divergence stops, torchrun/DDP,
the run directory's files, and the train command's errors.

Runs use configs/tiny-demix.toml (tiny networks; 256 mixtures, batch 16 = 16 steps per epoch)
in real processes with OMP_NUM_THREADS=1, so that CPU results are bitwise reproducible.
Independent processes run concurrently to keep the file quick on two cores.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.distributed
from conftest import finish

from demixgan.cli.main import main
from demixgan.errors import DemixganError
from demixgan.io.checkpoints import (
    latest_checkpoint,
    list_checkpoints,
    load_resume_state,
    load_weights,
)
from demixgan.spec.config import load_config, parse_config, write_resolved_config
from demixgan.training import engine, loop
from demixgan.training.distributed import Distributed

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny-demix.toml"
TIMEOUT = 300  # seconds; generous for a loaded CI machine, only there to turn hangs into failures

# 2 epochs of 16 steps; checkpoints at 7, 14, 16 (epoch end), 21, 28, 32; the last 2 are kept.
RESUME_SETTINGS = ("train.max_steps=32", "train.checkpoint_every=7", "train.keep_last=2")
TOTAL_STEPS = 32

# The 2nd checkpoint (step 14): its weights are renamed into place first, its sidecar last.
KILL_TARGETS = {"C-weights": "step-000000014.safetensors", "C-sidecar": "step-000000014.json"}


@pytest.fixture(autouse=True)
def one_thread():
    """In-process training on one thread (several are slower on a busy 2-core machine), and
    the global RNG that training seeds restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        yield
    torch.set_num_threads(threads)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        args, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@contextmanager
def _processes() -> Iterator[dict[str, subprocess.Popen]]:
    """Processes started into the dict; any still running at exit (a failure) are killed."""
    procs: dict[str, subprocess.Popen] = {}
    try:
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "demixgan", *args]


def _train_args(run_dir: Path, settings: tuple[str, ...]) -> list[str]:
    sets = [part for setting in settings for part in ("--set", setting)]
    return ["train", "--config", str(TINY), *sets, "--run-dir", str(run_dir), "--no-progress"]


def _sidecar_steps(run_dir: Path) -> list[int]:
    names = (run_dir / "checkpoints").glob("step-*.json") if run_dir.exists() else ()
    return sorted(int(re.fullmatch(r"step-(\d+)\.json", p.name)[1]) for p in names)


def _checkpoint_files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


def _final_weights(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    assert checkpoint is not None, f"no checkpoint in {run_dir}"
    weights, _ = load_weights(checkpoint.weights_path)
    return weights


def _stats_lines(run_dir: Path) -> list[str]:
    return (run_dir / "stats.jsonl").read_text().splitlines()


def _stats(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in _stats_lines(run_dir)]


def _losses(run_dir: Path) -> list[tuple]:
    """Everything in stats.jsonl that training determines (not the throughput)."""
    keys = ("step", "epoch", "loss_d", "loss_g", "d_real", "d_fake")
    return [tuple(record[k] for k in keys) for record in _stats(run_dir)]


def _assert_same_weights(expected: dict, actual: dict, what: str) -> None:
    assert expected.keys() == actual.keys()
    for module, tensors in expected.items():
        assert tensors.keys() == actual[module].keys()
        for key, tensor in tensors.items():
            assert torch.equal(tensor, actual[module][key]), f"{what}: {module}.{key} differs"


# -- 1. exact resume after SIGKILL --------------------------------------------------------


@pytest.fixture(scope="module")
def resumed_runs(tmp_path_factory, kill_at_rename) -> dict:
    """A: uninterrupted; B: SIGKILLed by the test after a checkpoint past step 10; C-*: killed
    inside the 2nd checkpoint's write. B and C-* are then resumed with --resume."""
    root = tmp_path_factory.mktemp("resume")
    dirs = {name: root / name for name in ("A", "B", *KILL_TARGETS)}
    killed = {}
    with _processes() as procs:
        procs["B"] = _start(_cli(*_train_args(dirs["B"], RESUME_SETTINGS)), root)
        procs["A"] = _start(_cli(*_train_args(dirs["A"], RESUME_SETTINGS)), root)
        for name, target in KILL_TARGETS.items():
            kill_args = [sys.executable, "-c", kill_at_rename, target]
            procs[name] = _start([*kill_args, *_train_args(dirs[name], RESUME_SETTINGS)], root)

        deadline = time.monotonic() + TIMEOUT
        while procs["B"].poll() is None and time.monotonic() < deadline:
            if any(step >= 10 for step in _sidecar_steps(dirs["B"])):
                os.kill(procs["B"].pid, signal.SIGKILL)
                break
            time.sleep(0.002)
        for name, proc in procs.items():
            code, _, err = finish(proc, TIMEOUT)
            if name == "A":
                assert code == 0, err
                continue
            assert code == -signal.SIGKILL, f"{name} was not killed (exit {code}): {err}"
            latest = latest_checkpoint(dirs[name] / "checkpoints").step
            killed[name] = {
                "files": _checkpoint_files(dirs[name]),
                "latest": latest,
                "stats_steps": [record["step"] for record in _stats(dirs[name])],
                # The lines a resume must keep as they are (their throughput is the killed run's).
                "kept_lines": [
                    line for line in _stats_lines(dirs[name]) if json.loads(line)["step"] <= latest
                ],
            }

    with _processes() as procs:
        for name in killed:
            procs[name] = _start(_cli("train", "--resume", str(dirs[name]), "--no-progress"), root)
        for name, proc in procs.items():
            code, out, err = finish(proc, TIMEOUT)
            assert code == 0, f"resuming {name} failed: {err}"
            assert f"(step {TOTAL_STEPS})" in out
    return {"dirs": dirs, "killed": killed}


def test_killed_run_was_killed_mid_training(resumed_runs):
    killed = resumed_runs["killed"]["B"]
    assert 10 <= killed["latest"] < TOTAL_STEPS


@pytest.mark.parametrize("name", list(KILL_TARGETS))
def test_kill_during_checkpoint_write_keeps_the_previous_checkpoint(resumed_runs, name):
    killed = resumed_runs["killed"][name]
    assert killed["latest"] == 7
    files = killed["files"]
    assert "step-000000007.json" in files
    assert "step-000000014.json" not in files  # the interrupted checkpoint is not complete
    if name == "C-weights":
        assert "step-000000014.safetensors" not in files
        assert any(re.fullmatch(r"\.step-000000014\.safetensors\..+\.tmp", f) for f in files)
    else:
        assert {"step-000000014.safetensors", "step-000000014.resume.pt"} <= set(files)
    assert killed["stats_steps"] == [5, 10]  # logged past the checkpoint: dropped on resume


@pytest.mark.parametrize("name", ["B", *KILL_TARGETS])
def test_resumed_run_ends_with_the_same_weights_and_log(resumed_runs, name):
    dirs = resumed_runs["dirs"]
    _assert_same_weights(_final_weights(dirs["A"]), _final_weights(dirs[name]), name)
    expected = _losses(dirs["A"])
    assert [row[0] for row in expected] == [*range(5, TOTAL_STEPS, 5), TOTAL_STEPS]
    assert _losses(dirs[name]) == expected
    # It continued from its checkpoint (a rerun from step 0 would rewrite these lines).
    kept = resumed_runs["killed"][name]["kept_lines"]
    assert _stats_lines(dirs[name])[: len(kept)] == kept
    # The same files as the uninterrupted run: no leftovers of the interrupted writes.
    assert _checkpoint_files(dirs[name]) == _checkpoint_files(dirs["A"])
    assert sorted(os.listdir(dirs[name] / "evolution")) == sorted(
        os.listdir(dirs["A"] / "evolution")
    )


# -- 4. the run directory ----------------------------------------------------------------


def test_run_directory_holds_what_a_user_relies_on(resumed_runs):
    run = resumed_runs["dirs"]["A"]
    config = load_config(TINY, RESUME_SETTINGS)
    files = {p.name for p in run.iterdir()} - {"tensorboard"}  # with the optional extra only
    assert files == {"checkpoints", "config.json", "evolution", "stats.jsonl"}
    resolved = json.loads((run / "config.json").read_text())
    assert parse_config(resolved, name="other") == config

    stats = _stats(run)
    for record in stats:
        assert {"step", "epoch", "loss_d", "loss_g"} <= record.keys()
        assert all(math.isfinite(record[k]) for k in ("loss_d", "loss_g"))
    epoch_at = {record["step"]: record["epoch"] for record in stats}
    assert epoch_at[15] == 1 and epoch_at[20] == 2 and epoch_at[TOTAL_STEPS] == 2

    evolution = sorted((run / "evolution").iterdir())
    assert [p.name for p in evolution] == ["epoch-0001.png", "epoch-0002.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in evolution)

    # keep_last = 2: the checkpoints of steps 28 and 32, three files each, nothing else.
    kept = list_checkpoints(run / "checkpoints")
    assert [c.step for c in kept] == [28, TOTAL_STEPS]
    assert len(_checkpoint_files(run)) == 6
    for checkpoint in kept:
        sidecar = checkpoint.metadata
        assert sidecar["step"] == checkpoint.step
        assert sidecar["epoch"] == 2  # as in stats.jsonl: steps 17..32 are the 2nd epoch
        assert sidecar["trained_on"] == {"device": "cpu", "threads": 1}  # where bit-identity holds
        assert parse_config(sidecar["config"], name="other") == config
        assert [(c["name"], c["latent_dim"]) for c in sidecar["components"]] == [
            ("digit", 8),
            ("sines", 8),
        ]
        assert load_resume_state(checkpoint)["step"] == checkpoint.step


@pytest.mark.parametrize("name", ["A", "B"])
def test_tensorboard_gets_the_logged_losses(resumed_runs, name):
    """Run B was killed and resumed: the events its first life logged past the checkpoint are
    purged, so TensorBoard shows each step once, with the uninterrupted run's values."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(resumed_runs["dirs"][name] / "tensorboard"))
    events.Reload()
    logged = {record["step"]: record["loss_d"] for record in _stats(resumed_runs["dirs"]["A"])}
    steps = [event.step for event in events.Scalars("loss_d")]
    scalars = {event.step: event.value for event in events.Scalars("loss_d")}
    assert sorted(steps) == sorted(logged)
    assert all(math.isclose(scalars[s], logged[s], rel_tol=1e-6) for s in logged)


# -- 2. divergence -----------------------------------------------------------------------

NAN_FROM_STEP = 12  # after the checkpoint of step 10, before the epoch ends at step 16


@pytest.fixture
def nan_from_step_12(monkeypatch):
    """generator_loss turns NaN from the 13th training step on (one call per step)."""
    real, calls = loop.generator_loss, []

    def diverging(kind, logits):
        calls.append(None)
        loss = real(kind, logits)
        return loss * math.nan if len(calls) > NAN_FROM_STEP else loss

    monkeypatch.setattr(loop, "generator_loss", diverging)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, nan_from_step_12):
    config = load_config(TINY)  # 20 steps, checkpoint_every 10
    run = tmp_path / "run"
    with pytest.raises(DemixganError) as error:
        loop.train(config, run, progress=False)
    latest = latest_checkpoint(run / "checkpoints")
    assert latest is not None and latest.step == 10
    message = str(error.value)
    assert "NaN" in message and f"step {NAN_FROM_STEP + 1}" in message
    assert str(latest.weights_path) in message
    assert [c.step for c in list_checkpoints(run / "checkpoints")] == [10]
    weights, _ = load_weights(latest.weights_path)
    assert all(torch.isfinite(t).all() for m in weights.values() for t in m.values())
    assert max(record["step"] for record in _stats(run)) == 10


def test_nan_loss_from_the_cli_is_a_clear_error(tmp_path, nan_from_step_12, capsys):
    run = tmp_path / "run"
    code = main(["train", "--config", str(TINY), "--run-dir", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("demixgan: error: ") and "Traceback" not in err
    assert "NaN" in err and "step-000000010.safetensors" in err


# -- 3. torchrun ---------------------------------------------------------------------------


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="this torch build has no gloo backend, so torchrun cannot train on CPU",
)
def test_torchrun_two_processes_match_one_process(tmp_path):
    # Two epochs of 4 steps (256 mixtures, batch 64) end the run before its max_steps of 9: the
    # warning that says so comes once, from rank 0.
    settings = (
        "train.max_steps=9",
        "train.epochs=2",
        "train.batch_size=64",
        "train.checkpoint_every=4",
        "train.log_every=1",
    )
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    outputs = {}
    with _processes() as procs:
        procs["ddp"] = _start(
            [*torchrun, "--nproc_per_node", "2", "-m", "demixgan", *_train_args(ddp, settings)],
            tmp_path,
        )
        procs["single"] = _start(_cli(*_train_args(single, settings)), tmp_path)
        for name, proc in procs.items():
            code, out, err = finish(proc, TIMEOUT)
            assert code == 0, f"{name}: {err}"
            assert err.count("will not be reached") == 1, f"{name}: {err}"
            outputs[name] = out

    # Only rank 0 writes: one log line per step, each checkpoint once, one summary printed.
    assert [record["step"] for record in _stats(ddp)] == list(range(1, 9))
    assert [c.step for c in list_checkpoints(ddp / "checkpoints")] == [4, 8]
    assert _checkpoint_files(ddp) == _checkpoint_files(single)
    assert outputs["ddp"].count("run directory:") == 1

    # The logged losses are the global batch's (averaged over the processes).
    for got, want in zip(_losses(ddp), _losses(single), strict=True):
        assert got[:2] == want[:2]
        assert got[2:] == pytest.approx(want[2:], rel=1e-4)

    config = load_config(TINY, settings)
    with pytest.warns(UserWarning, match="will not be reached"):
        initial = loop.Trainer(config, tmp_path / "unused", device="cpu").modules()
    trained, reference = _final_weights(ddp), _final_weights(single)
    for module, tensors in reference.items():
        for key, tensor in tensors.items():
            got = trained[module][key]
            assert torch.allclose(got, tensor, rtol=1e-4, atol=1e-6), f"{module}.{key}"
            start = initial[module].state_dict()[key]
            assert not torch.allclose(got, start), f"{module}.{key} did not train"


# -- 5. errors of the train command ------------------------------------------------------


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory holding an existing run ('run') and a non-run directory."""
    monkeypatch.chdir(tmp_path)
    write_resolved_config(load_config(TINY), tmp_path / "run" / "config.json")
    (tmp_path / "run" / "stats.jsonl").write_text("")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not a run\n")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{ not json")
    return tmp_path


CLI_ERRORS = {
    "unknown key": (["--config", str(TINY), "--set", "train.bogus=1"], "train.bogus"),
    "bad value": (["--config", str(TINY), "--set", "train.batch_size=0"], "train.batch_size"),
    "missing config": (["--config", "missing.toml"], "missing.toml"),
    "resume a non-run": (["--resume", "notes"], "not a demixgan run"),
    "resume a missing dir": (["--resume", "nowhere"], "nowhere"),
    "resume a damaged run": (["--resume", "broken"], "config.json"),
    "run dir holds a run": (["--config", str(TINY), "--run-dir", "run"], "--resume run"),
    "resume with --set": (["--resume", "run", "--set", "seed=3"], "--set"),
    "resume with --run-dir": (["--resume", "run", "--run-dir", "new"], "--run-dir"),
    "no CUDA": (["--config", str(TINY), "--device", "cuda"], "CUDA is not available"),
    "unknown device": (["--config", str(TINY), "--device", "tpu"], "Device 'tpu' is not one"),
}


@pytest.mark.parametrize("case", list(CLI_ERRORS))
def test_train_errors_are_one_paragraph_and_write_nothing(workdir, capsys, monkeypatch, case):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only machine
    args, needle = CLI_ERRORS[case]  # without --run-dir: the default runs/<name>-<time>
    before = _snapshot(workdir)
    code = main(["train", *args, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("demixgan: error: ") and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _snapshot(workdir) == before


def test_batch_that_does_not_split_over_the_processes_is_an_error(workdir, capsys, monkeypatch):
    monkeypatch.setattr(loop, "init_distributed", lambda device: Distributed(0, 3, 0))
    code = main(["train", "--config", str(TINY), "--run-dir", "new", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "train.batch_size 16 must divide evenly over 3 processes" in err
    assert not (workdir / "new").exists()


def test_train_error_exit_status_from_a_real_process(tmp_path):
    code, _, err = finish(
        _start(_cli("train", "--config", str(TINY), "--set", "train.bogus=1"), tmp_path), TIMEOUT
    )
    assert code == 2 and "Traceback" not in err and "train.bogus" in err
    assert list(tmp_path.iterdir()) == []


def test_training_minutes_add_up_every_resumed_segment(tmp_path: Path) -> None:
    """A run stopped after step 300 and resumed from its step-200 checkpoint took 100 s + 100 s
    before the stop (step 300's window is redone) and 200 s after: 400 s, not the last 200 s."""
    from demixgan.io.run_files import StatsLog, training_minutes

    first = StatsLog(tmp_path / "stats.jsonl")
    for step in (100, 200, 300):
        first.write({"step": step, "observations_per_s": 64.0})  # 100 steps x 64 in 100 s
    first.close()
    resumed = StatsLog(tmp_path / "stats.jsonl", resume_step=200)
    resumed.write({"step": 300, "observations_per_s": 32.0})  # slower machine: 200 s
    resumed.close()
    assert training_minutes(tmp_path, batch_size=64) == pytest.approx(400 / 60)
    # A budget grid's largest candidate inside the run: the minutes of its steps alone.
    assert training_minutes(tmp_path, batch_size=64, until=200) == pytest.approx(200 / 60)


def test_an_epoch_cap_short_of_max_steps_is_announced(tmp_path):
    """``max_steps`` is a config's budget; when its epochs end the run first (256 observations
    in batches of 16: 16 steps an epoch), the user is told where the run will stop and the
    epochs that reach the budget, instead of a shorter run than the config says."""
    config = load_config(
        TINY, ("train.epochs=1", "train.max_steps=20", "train.snapshot_every_epoch=false")
    )
    with pytest.warns(
        UserWarning,
        match=r"end the run at step 16\. Set train\.epochs to at "
        r"least 2 to train 20 steps",
    ):
        result = loop.train(config, tmp_path / "capped", progress=False)
    assert result.step == 16
    with warnings.catch_warnings(record=True) as caught:  # a budget the epochs reach: silent
        warnings.simplefilter("always")
        loop.Trainer(load_config(TINY, ("train.epochs=2",)), tmp_path / "unused", device="cpu")
    assert not [w for w in caught if "max_steps" in str(w.message)]


def test_epoch_checkpoints_can_be_turned_off_without_changing_what_is_learned(tmp_path):
    """On a GPU a checkpoint costs more than an epoch's steps: with
    ``train.checkpoint_every_epoch = false`` only every ``checkpoint_every`` steps and the end
    are saved, and the model is the same as with the epoch-end checkpoints."""
    base = ("train.max_steps=20", "train.checkpoint_every=7", "train.keep_last=10")
    final = {}
    for every_epoch in (True, False):
        setting = f"train.checkpoint_every_epoch={str(every_epoch).lower()}"
        config = load_config(TINY, (*base, setting, "train.snapshot_every_epoch=false"))
        run = tmp_path / setting
        loop.train(config, run, progress=False)
        steps = [c.step for c in list_checkpoints(run / "checkpoints")]
        assert steps == ([7, 14, 16, 20] if every_epoch else [7, 14, 20])
        final[every_epoch], _ = load_weights(latest_checkpoint(run / "checkpoints").weights_path)
    for module, weights in final[True].items():
        assert all(torch.equal(w, final[False][module][k]) for k, w in weights.items())


def test_a_gpu_run_uses_deterministic_kernels_only_while_it_runs(tmp_path, monkeypatch):
    """A seeded run must give the same weights on a GPU too, whose fastest kernels may differ
    run to run: the engine turns deterministic kernels on for a CUDA run (seen here through a
    stand-in for the device check, as CI has no GPU) and restores the setting after; on the
    CPU the kernels are deterministic already, so the weights are those of a plain run."""
    config = load_config(TINY, ("train.max_steps=6", "train.snapshot_every_epoch=false"))
    loop.train(config, tmp_path / "plain", progress=False)
    monkeypatch.setattr(engine, "on_gpu", lambda modules: True)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)  # restored after the test
    during = []
    loop.train(
        config,
        tmp_path / "gpu",
        progress=lambda steps: during.append(torch.are_deterministic_algorithms_enabled()),
    )
    assert during == [True] * 6 and not torch.are_deterministic_algorithms_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == engine.CUBLAS_DETERMINISTIC
    plain, _ = load_weights(latest_checkpoint(tmp_path / "plain" / "checkpoints").weights_path)
    gpu, _ = load_weights(latest_checkpoint(tmp_path / "gpu" / "checkpoints").weights_path)
    for module, weights in plain.items():
        assert all(torch.equal(w, gpu[module][k]) for k, w in weights.items())


def test_a_run_of_many_short_epochs_writes_a_bounded_number_of_epoch_outputs(tmp_path, monkeypatch):
    """A small dataset makes thousands of epochs of a few steps (367 digit 8s: 1,800 of 5); a
    grid and a checkpoint at each end would cost a third again of the steps. Runs of more than
    ``EPOCH_OUTPUTS`` epochs show the first epoch and every k-th, up to that many, and learn the
    same model as a run that writes none (the cap lowered to 10 here, so the runs are short)."""
    monkeypatch.setattr(loop, "EPOCH_OUTPUTS", 10)
    epochs = 2 * loop.EPOCH_OUTPUTS + 1  # one step each: 256 observations in one batch
    base = (
        "train.batch_size=256",
        f"train.epochs={epochs}",
        f"train.max_steps={epochs}",
        f"train.checkpoint_every={10 * epochs}",
        f"train.keep_last={epochs}",
    )
    final = {}
    for outputs in (True, False):
        flag = str(outputs).lower()
        flags = (f"train.snapshot_every_epoch={flag}", f"train.checkpoint_every_epoch={flag}")
        run = tmp_path / str(outputs)
        loop.train(load_config(TINY, (*base, *flags)), run, progress=False)
        final[outputs], _ = load_weights(latest_checkpoint(run / "checkpoints").weights_path)
        if outputs:
            shown = [1, *range(3, epochs + 1, 3)]  # every 3rd: 21 epochs -> 8 outputs
            grids = sorted(p.name for p in (run / "evolution").iterdir())
            assert grids == [f"epoch-{e:04d}.png" for e in shown]
            assert [c.step for c in list_checkpoints(run / "checkpoints")] == shown
    for module, weights in final[True].items():
        assert all(torch.equal(w, final[False][module][k]) for k, w in weights.items())


def test_a_bfloat16_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    """``train.precision = "bfloat16"`` runs the step's forward passes in bfloat16, and keeps the
    resume guarantee: 10 steps, and 4 steps resumed to 10, end with the same weights, which
    differ from float32's (the arithmetic did change)."""
    settings = ("train.snapshot_every_epoch=false", "train.checkpoint_every=4")

    def run(name: str, steps: int, precision: str, resume: bool = False) -> Path:
        chosen = (*settings, f"train.max_steps={steps}", f"train.precision={precision}")
        loop.train(load_config(TINY, chosen), tmp_path / name, resume=resume, progress=False)
        return tmp_path / name

    whole = _final_weights(run("whole", 10, "bfloat16"))
    run("resumed", 4, "bfloat16")
    _assert_same_weights(whole, _final_weights(run("resumed", 10, "bfloat16", True)), "resumed")
    full = _final_weights(run("float32", 10, "float32"))
    assert any(
        not torch.equal(tensor, full["model"][key]) for key, tensor in whole["model"].items()
    )
