"""What ``train --resume`` checks before it writes: the log, the checkpoints' steps, a run whose
checkpoints are all damaged, config.json edited since; and what ``train`` and ``name`` make of
directories and files that are not what they expect.

One tiny run (20 steps; checkpoints at 10, 16 = the epoch's end, and 20) is trained once; each
test damages a copy.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from demixgan.cli.main import main
from demixgan.errors import DemixganError
from demixgan.io.checkpoints import latest_checkpoint, load_resume_state
from demixgan.io.run_files import training_minutes
from demixgan.spec.config import load_config, parse_config
from demixgan.training import loop

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny-demix.toml"
SETTINGS = ["train.max_steps=20", "train.checkpoint_every=10", "train.keep_last=3"]


# Bit-identical resumes need one thread and the global RNG left as found (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the resumed runs (one_thread): bit-identical needs the same
    with torch.random.fork_rng(devices=[]):
        loop.train(load_config(TINY, SETTINGS), run, progress=False)
    torch.set_num_threads(threads)
    return run


@pytest.fixture
def run(finished, tmp_path) -> Path:
    """A copy of the finished run as a kill after step 15 leaves it: checkpoint 10, and the
    log to step 15."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    for step in (16, 20):
        for path in (copy / "checkpoints").glob(f"step-{step:09d}.*"):
            path.unlink()
    stats = copy / "stats.jsonl"
    lines = stats.read_text().splitlines()
    stats.write_text("".join(line + "\n" for line in lines if json.loads(line)["step"] <= 15))
    return copy


def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]


def _losses(run: Path) -> list[dict]:
    """The log without the throughput (the one value a resumed segment measures anew)."""
    lines = (run / "stats.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "observations_per_s"} for x in lines]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _resume(run: Path) -> int:
    return main(["train", "--resume", str(run), "--no-progress"])


def _one_paragraph(err: str, *needles: str) -> None:
    assert err.startswith("demixgan: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    for needle in needles:
        assert needle in err


def _refused_writing_nothing(run: Path, capsys, *needles: str) -> str:
    before = _snapshot(run)
    assert _resume(run) == 2
    err = capsys.readouterr().err
    _one_paragraph(err, *needles)
    assert _snapshot(run) == before
    return err


# -- the log ------------------------------------------------------------------------------


def test_a_half_written_last_log_line_is_dropped_and_the_run_resumes(finished, run, capsys):
    with (run / "stats.jsonl").open("a") as log:
        log.write('{"d_fake": 0.49, "d_real": 0.5')  # killed mid-line
    with pytest.warns(UserWarning, match=r"Dropping line 4 of .*stats\.jsonl"):
        assert _resume(run) == 0, capsys.readouterr().err
    assert _steps(run) == [5, 10, 15, 20]
    assert _losses(run) == _losses(finished)  # continued from step 10 exactly


def test_a_damaged_line_inside_the_log_is_refused(run, capsys):
    lines = (run / "stats.jsonl").read_text().splitlines()
    lines[1] = lines[1][:20]
    (run / "stats.jsonl").write_text("\n".join(lines) + "\n")
    _refused_writing_nothing(run, capsys, "stats.jsonl", "is damaged: line 2 of 3")


def test_training_minutes_skip_a_cut_last_line_and_refuse_a_damaged_one(tmp_path):
    log = tmp_path / "stats.jsonl"
    log.write_text('{"step": 100, "observations_per_s": 64.0}\n{"step": 2')
    with pytest.warns(UserWarning, match="Dropping line 2"):
        assert training_minutes(tmp_path, batch_size=64) == pytest.approx(100 / 60)
    log.write_text('{"step": 1\n{"step": 100, "observations_per_s": 64.0}\n')
    with pytest.raises(DemixganError, match="line 1 of 2"):
        training_minutes(tmp_path, batch_size=64)


# -- the checkpoints ----------------------------------------------------------------------


def test_a_run_whose_checkpoints_are_all_damaged_is_not_restarted(run, capsys):
    for path in (run / "checkpoints").glob("*.safetensors"):
        path.write_bytes(path.read_bytes()[:100])
    err = _refused_writing_nothing(run, capsys, "none of its 1 checkpoints can be used")
    assert "step-000000010.json" in err and "would silently discard its training" in err, err


def test_a_run_stopped_before_its_first_checkpoint_starts_from_step_0(run, capsys):
    shutil.rmtree(run / "checkpoints")
    with pytest.warns(UserWarning, match="no complete checkpoint yet"):
        assert _resume(run) == 0, capsys.readouterr().err
    assert _steps(run) == [5, 10, 15, 20]


def _rewrite(run: Path, sidecar_step: int, state_step: int) -> None:
    """The step-10 checkpoint renamed to ``sidecar_step``, its resume state saying
    ``state_step``, every hash updated: files that verify but do not fit together."""
    folder = run / "checkpoints"
    old = latest_checkpoint(folder)
    state = load_resume_state(old)
    state["step"] = state_step
    stem = folder / f"step-{sidecar_step:09d}"
    torch.save(state, f"{stem}.resume.pt")
    sidecar = json.loads(old.sidecar_path.read_text())
    sidecar.update(
        step=sidecar_step,
        weights_file=f"{stem.name}.safetensors",
        resume_file=f"{stem.name}.resume.pt",
        resume_sha256=hashlib.sha256(Path(f"{stem}.resume.pt").read_bytes()).hexdigest(),
    )
    if sidecar_step != old.step:
        old.weights_path.rename(f"{stem}.safetensors")
        old.resume_path.unlink()
        old.sidecar_path.unlink()
    Path(f"{stem}.json").write_text(json.dumps(sidecar))


@pytest.mark.parametrize(
    ("sidecar_step", "state_step", "needle"),
    [
        (10, 10**9, "its sidecar records step 10 but its resume state step 1000000000"),
        (10**9, 10**9, "step 1000000000 lies outside this run's steps 0..20"),
        (10, -1, "its sidecar records step 10 but its resume state step -1"),
        (15, 10, "its sidecar records step 15 but its resume state step 10"),
        (10, 10.0, "its resume state records step 10.0, not a whole number"),
    ],
)
def test_resume_steps_that_do_not_fit_the_run_are_refused(
    run, capsys, sidecar_step, state_step, needle
):
    _rewrite(run, sidecar_step, state_step)
    _refused_writing_nothing(run, capsys, needle, "Cannot resume from the checkpoint")


def test_a_checkpoint_past_a_run_shortened_since_is_refused(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    config = json.loads((run / "config.json").read_text())
    config["train"]["max_steps"] = 15
    (run / "config.json").write_text(json.dumps(config))
    _refused_writing_nothing(run, capsys, "step 20 lies outside this run's steps 0..15")


# -- config.json changed since the checkpoint ----------------------------------------------


def _edit_config(run: Path, edit) -> None:
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))


def test_a_changed_learning_rate_and_length_are_applied_and_announced(run, capsys):
    def edit(config):
        config["train"]["lr_g"] = 0.0001
        config["train"]["max_steps"] = 25

    _edit_config(run, edit)
    assert _resume(run) == 0
    err = capsys.readouterr().err
    assert "applying changed train.lr_g: 0.0002 -> 0.0001" in err
    assert "applying changed train.max_steps: 20 -> 25" in err
    latest = latest_checkpoint(run / "checkpoints")
    assert latest.step == 25
    state = load_resume_state(latest)
    assert [g["lr"] for g in state["optimizer_g"]["param_groups"]] == [0.0001]
    assert [g["lr"] for g in state["optimizer_d"]["param_groups"]] == [0.0002]
    recorded = parse_config(latest.metadata["config"], name="x")
    assert (recorded.train.lr_g, recorded.train.max_steps) == (0.0001, 25)


@pytest.mark.parametrize(
    ("key", "edit", "needle"),
    [
        (
            "shape",
            lambda c: c["components"][0].update(hidden=64),
            "components.digit.hidden: 32 -> 64",
        ),
        ("loss", lambda c: c["train"].update(loss="hinge"), 'train.loss: "paper" -> "hinge"'),
        ("data", lambda c: c["data"].update(level=2), "data.level: 1 -> 2"),
        ("batch", lambda c: c["train"].update(batch_size=8), "train.batch_size: 16 -> 8"),
    ],
)
def test_a_change_of_shape_data_or_loss_is_refused(run, capsys, key, edit, needle):
    _edit_config(run, edit)
    err = _refused_writing_nothing(run, capsys, needle, "Restore those values in config.json")
    assert "applying" not in err


# -- train into directories that are not runs ----------------------------------------------


def test_train_into_a_regular_file_or_a_foreign_directory(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    before = _snapshot(tmp_path)
    for target, needle in (
        ("file", "is a file, not a directory"),
        ("notes", "is not empty and is not a demixgan run"),
    ):
        args = ["train", "--config", str(TINY), "--run-dir", str(tmp_path / target)]
        assert main([*args, "--no-progress"]) == 2
        err = capsys.readouterr().err
        _one_paragraph(err, needle, "--run-dir")
        assert "--resume" not in err
    assert main(["train", "--resume", str(tmp_path / "file"), "--no-progress"]) == 2
    _one_paragraph(capsys.readouterr().err, "is a file, not a run directory")
    assert _snapshot(tmp_path) == before


# -- the divergence message ---------------------------------------------------------------


@pytest.mark.parametrize("loss", ["paper", "hinge"])
def test_the_divergence_message_suggests_only_what_is_not_set(tmp_path, monkeypatch, loss):
    real = loop.generator_loss
    monkeypatch.setattr(loop, "generator_loss", lambda kind, x: real(kind, x) * math.nan)
    config = load_config(TINY, [f"train.loss={loss}"])
    with pytest.raises(DemixganError) as error:
        loop.train(config, tmp_path / "run", progress=False)
    message = str(error.value)
    assert ('train.loss = "hinge"' in message) == (loss == "paper")
    assert "discriminator.spectral_norm = true" in message and "learning rates" in message


# -- component names -----------------------------------------------------------------------


def test_naming_components_replaces_a_damaged_names_file(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    names = run / "component-names.json"
    names.write_text("[1]")
    assert main(["name", str(run), "digit=x"]) == 0
    out = capsys.readouterr().out
    assert "replaced the damaged" in out and "digit = x" in out
    assert json.loads(names.read_text()) == {"digit": "x"}
    assert main(["name", str(run)]) == 0
    assert "digit = x" in capsys.readouterr().out
    names.write_text("[1]")
    assert main(["name", str(run)]) == 2  # only reading: the damage is reported, not hidden
    assert "component-names.json" in capsys.readouterr().err
