"""Checkpoints: exact round trips, pruning, and never a broken or code-running load."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from demixgan.errors import DemixganError
from demixgan.io.checkpoints import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_resume_state,
    load_weights,
    read_sidecar,
    save_checkpoint,
)

METADATA = {
    "architecture": {"generator": "dcgan", "width": 8},
    "latent_sizes": {"digit": 4},
    "components": ["digit", "lines"],
    "recipe": "digit+lines",
    "epoch": 2,
}


class Generator(nn.Module):
    """Conv + BatchNorm (buffers, an int64 counter) + Linear: the tensor kinds a GAN saves."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
        self.head = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))


def build_modules(seed: int | None = None) -> dict[str, nn.Module]:
    """Fresh modules; with a seed, distinct weights and BatchNorm statistics."""
    modules = {"generator": Generator(), "discriminator": nn.Linear(4, 1)}
    if seed is not None:
        source = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in modules.values():
                for parameter in module.parameters():
                    parameter.copy_(torch.randn(parameter.shape, generator=source))
            modules["generator"](torch.randn(2, 1, 6, 6, generator=source))  # updates BN buffers
    return modules


def save(directory: Path, step: int, keep_last: int = 3, **kwargs) -> Checkpoint:
    arguments = {"resume_state": {"step": step, "rng": torch.get_rng_state()}, **kwargs}
    return save_checkpoint(
        directory, step, build_modules(step), METADATA, keep_last=keep_last, **arguments
    )


def assert_weights_of(checkpoint: Checkpoint, seed: int) -> None:
    """The checkpoint verifies, and loads exactly the weights of ``build_modules(seed)``."""
    weights, _ = load_weights(checkpoint.weights_path)
    expected = build_modules(seed)
    for name, module in build_modules().items():
        module.load_state_dict(weights[name], strict=True)
        for key, value in module.state_dict().items():
            assert torch.equal(value, expected[name].state_dict()[key]), f"{name}.{key}"


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_weights_round_trip_exactly_with_a_complete_sidecar(tmp_path: Path) -> None:
    checkpoint = save(tmp_path, 500)
    assert checkpoint.weights_path == tmp_path / "step-000000500.safetensors"
    assert checkpoint.sidecar_path == tmp_path / "step-000000500.json"
    assert checkpoint.resume_path == tmp_path / "step-000000500.resume.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (checkpoint.weights_path, checkpoint.sidecar_path, checkpoint.resume_path)
    )
    assert_weights_of(checkpoint, 500)

    sidecar = read_sidecar(checkpoint.sidecar_path)
    assert sidecar == checkpoint.metadata == read_sidecar(checkpoint.weights_path)
    assert {key: sidecar[key] for key in METADATA} == METADATA
    assert sidecar["format"] == CHECKPOINT_FORMAT
    assert sidecar["format_version"] == FORMAT_VERSION
    assert sidecar["step"] == 500
    modules = build_modules()
    assert sidecar["modules"] == {name: sorted(m.state_dict()) for name, m in modules.items()}
    assert "body.1.num_batches_tracked" in sidecar["modules"]["generator"]
    assert sidecar["weights_file"] == "step-000000500.safetensors"
    assert sidecar["weights_sha256"] == sha256(checkpoint.weights_path)
    assert sidecar["resume_file"] == "step-000000500.resume.pt"
    assert sidecar["resume_sha256"] == sha256(checkpoint.resume_path)
    assert set(sidecar["versions"]) == {"demixgan", "torch", "safetensors", "python"}
    assert datetime.fromisoformat(sidecar["created"]).tzinfo is not None
    assert checkpoint.sidecar_path.read_text().startswith('{\n  "architecture": {')

    # The .json path works too, and the keys carry the module prefix inside the file.
    weights, _ = load_weights(checkpoint.sidecar_path)
    assert set(weights) == {"generator", "discriminator"}
    assert list_checkpoints(tmp_path) == [checkpoint] and latest_checkpoint(tmp_path) == checkpoint


def test_adam_and_rng_state_resume_bit_identically(tmp_path: Path) -> None:
    def train(model: nn.Module, optimizer: torch.optim.Optimizer, data: torch.Generator) -> None:
        for _ in range(3):
            loss = model(torch.randn(5, 1, 6, 6, generator=data)).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    data = torch.Generator().manual_seed(1)
    model = build_modules(7)["generator"]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.5, 0.999))
    train(model, optimizer, data)
    state = {
        "step": 3,
        "run": "digit+lines",
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "data_rng": data.get_state(),
        "python_rng": random.getstate(),
    }
    checkpoint = save_checkpoint(tmp_path, 3, {"generator": model}, METADATA, state)

    weights, _ = load_weights(checkpoint.weights_path)
    resumed_model = Generator()
    resumed_model.load_state_dict(weights["generator"], strict=True)
    resumed_optimizer = torch.optim.Adam(resumed_model.parameters(), lr=0.5)
    loaded = load_resume_state(checkpoint)
    resumed_optimizer.load_state_dict(loaded["optimizer"])
    resumed_data = torch.Generator()
    resumed_data.set_state(loaded["data_rng"])
    assert (loaded["step"], loaded["run"], loaded["python_rng"]) == (
        3,
        "digit+lines",
        state["python_rng"],
    )
    assert torch.equal(loaded["torch_rng"], state["torch_rng"])

    train(model, optimizer, data)
    train(resumed_model, resumed_optimizer, resumed_data)
    for key, value in model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key


def test_keep_last_leaves_exactly_the_newest_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    for step in (100, 200, 300, 400, 500):
        save(tmp_path, step, keep_last=2)
    names = {p.name for p in tmp_path.iterdir()}
    expected = {
        f"step-000000{s}{ext}"
        for s in (400, 500)
        for ext in (".safetensors", ".json", ".resume.pt")
    }
    assert names == expected | {"notes.txt"}
    assert [c.step for c in list_checkpoints(tmp_path)] == [400, 500]


def test_keep_every_also_keeps_the_milestones(tmp_path: Path) -> None:
    """A run compared at every 400 steps but saved every 100 (a stop loses 100 steps, not
    400) keeps the newest two and each multiple of 400, and nothing else."""
    for step in range(100, 1100, 100):
        save(tmp_path, step, keep_last=2, keep_every=400)
    assert [c.step for c in list_checkpoints(tmp_path)] == [400, 800, 900, 1000]
    assert len(list(tmp_path.iterdir())) == 4 * 3


@pytest.mark.parametrize(
    ("damage", "file"),
    [
        ("flip", "step-000000002.safetensors"),
        ("truncate", "step-000000002.safetensors"),
        ("flip", "step-000000002.resume.pt"),
        ("truncate", "step-000000002.resume.pt"),
    ],
)
def test_damaged_newest_checkpoint_is_refused_and_skipped(
    tmp_path: Path, damage: str, file: str
) -> None:
    save(tmp_path, 1)
    damaged = save(tmp_path, 2)
    path = tmp_path / file
    if damage == "flip":
        flip_last_byte(path)
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    with pytest.warns(UserWarning, match="step-000000002.json"):
        latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.step == 1
    assert_weights_of(latest, 1)
    assert latest_checkpoint(tmp_path, verify=False) == damaged
    if path == damaged.weights_path:
        with pytest.raises(DemixganError, match="tampered or truncated"):
            load_weights(path)
    else:
        with pytest.raises(DemixganError, match="tampered or truncated"):
            load_resume_state(damaged)


def test_unverified_load_still_reports_an_unreadable_weights_file(tmp_path: Path) -> None:
    checkpoint = save(tmp_path, 1)
    path = checkpoint.weights_path
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DemixganError, match="cannot be read as safetensors") as error:
        load_weights(path, verify=False)
    assert str(path) in str(error.value)
    path.unlink()
    with pytest.raises(DemixganError, match="does not exist"):
        load_weights(path, verify=False)


def test_checkpoint_without_sidecar_is_incomplete_and_ignored(tmp_path: Path) -> None:
    save(tmp_path, 1)
    incomplete = save(tmp_path, 2)
    incomplete.sidecar_path.unlink()
    assert [c.step for c in list_checkpoints(tmp_path)] == [1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # incomplete is normal after a kill: no warning
        assert latest_checkpoint(tmp_path).step == 1
    with pytest.raises(DemixganError, match="does not exist"):
        read_sidecar(incomplete.weights_path)
    with pytest.raises(DemixganError, match="does not exist"):
        load_weights(incomplete.weights_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "not a demixgan checkpoint"),
        ('{"format": "something-else"}', "not a demixgan checkpoint"),
        ({"format_version": FORMAT_VERSION + 1}, "newer demixgan"),
        ({"format_version": "1"}, "format_version"),
        ({"weights_sha256": "abc"}, "weights_file/weights_sha256"),
        ({"weights_file": "../../elsewhere.safetensors"}, "weights_file/weights_sha256"),
        ({"resume_sha256": None}, "resume_file/resume_sha256"),
        ({"modules": {"generator": "body.0.weight"}}, "modules"),
        ({"step": -1}, "step"),
    ],
)
def test_bad_sidecar_is_ignored_by_listing_and_refused_by_read(
    tmp_path: Path, content: str | dict, message: str
) -> None:
    save(tmp_path, 1)
    bad = save(tmp_path, 2)
    if isinstance(content, dict):
        content = json.dumps({**bad.metadata, **content})
    bad.sidecar_path.write_text(content)
    assert [c.step for c in list_checkpoints(tmp_path)] == [1]
    with pytest.warns(UserWarning, match="step-000000002.json"):
        assert latest_checkpoint(tmp_path).step == 1
    with pytest.raises(DemixganError, match=message):
        read_sidecar(bad.sidecar_path)
    with pytest.raises(DemixganError, match=message):
        load_weights(bad.weights_path)


def test_sidecar_whose_step_disagrees_with_its_name_is_not_listed(tmp_path: Path) -> None:
    save(tmp_path, 1)
    moved = save(tmp_path, 2)
    moved.sidecar_path.write_text(json.dumps({**moved.metadata, "step": 7}))
    assert [c.step for c in list_checkpoints(tmp_path)] == [1]


class Killed(BaseException):
    """Stands in for the process dying: not an Exception, so nothing may swallow it."""


@pytest.mark.parametrize("fatal_replace", [1, 2, 3])
def test_death_at_each_rename_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fatal_replace: int
) -> None:
    previous = save(tmp_path, 1)
    real_replace, calls = os.replace, []

    def dying_replace(source, destination):
        calls.append(destination)
        if len(calls) == fatal_replace:
            raise Killed
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(Killed):
        save(tmp_path, 2)
    monkeypatch.setattr(os, "replace", real_replace)
    order = ("step-000000002.safetensors", "step-000000002.resume.pt", "step-000000002.json")
    assert Path(calls[-1]).name == order[fatal_replace - 1]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        latest = latest_checkpoint(tmp_path)
    assert latest == previous
    assert_weights_of(latest, 1)
    assert load_resume_state(latest)["step"] == 1

    # A real kill also leaves the temp file of the write in progress.
    (tmp_path / ".step-000000002.json.x1y2z3.tmp").write_text("{")
    following = save(tmp_path, 3)
    assert {p.name for p in tmp_path.iterdir()} == {
        p.name
        for c in (previous, following)
        for p in (c.weights_path, c.sidecar_path, c.resume_path)
    }


def test_resaving_a_step_replaces_it(tmp_path: Path) -> None:
    save(tmp_path, 1)
    checkpoint = save_checkpoint(tmp_path, 1, build_modules(99), {}, None)
    assert not checkpoint.resume_path.exists() and checkpoint.metadata["resume_file"] is None
    assert latest_checkpoint(tmp_path) == checkpoint
    assert_weights_of(checkpoint, 99)
    with pytest.raises(DemixganError, match="without optimizer and RNG state"):
        load_resume_state(checkpoint)


CHILD = textwrap.dedent(
    """
    import sys
    import torch
    from demixgan.io.checkpoints import save_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 26 * 26, 64)
    )
    optimizer = torch.optim.Adam(net.parameters())
    for step in range(1, 201):
        loss = net(torch.randn(4, 1, 28, 28)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        state = {"optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}
        save_checkpoint(sys.argv[1], step, {"net": net}, {"epoch": 0}, state, keep_last=2)
    """
)


def test_sigkill_at_any_moment_leaves_a_loadable_latest_checkpoint(tmp_path: Path) -> None:
    runs = []
    for delay in (0.0, 0.047, 0.131):  # each child saves every ~15 ms, so kills land mid-save
        directory = tmp_path / f"run-{delay}"
        command = [sys.executable, "-c", CHILD, str(directory)]
        runs.append((subprocess.Popen(command, stderr=subprocess.PIPE), directory, delay))
    try:
        for child, directory, delay in runs:
            deadline = time.monotonic() + 60
            while len(list(directory.glob("step-*.json"))) < 2:
                assert child.poll() is None, child.stderr.read().decode()
                assert time.monotonic() < deadline, "the child wrote no checkpoints"
                time.sleep(0.005)
            time.sleep(delay)
            assert child.poll() is None, "the child finished before it could be killed"
            child.send_signal(signal.SIGKILL)
            child.wait()
    finally:
        for child, _, _ in runs:
            child.kill()
            child.wait()
            child.stderr.close()

    for _, directory, _ in runs:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            latest = latest_checkpoint(directory)
        assert latest is not None and latest.step >= 2
        weights, sidecar = load_weights(latest.weights_path)
        net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 26 * 26, 64))
        net.load_state_dict(weights["net"], strict=True)
        torch.optim.Adam(net.parameters()).load_state_dict(load_resume_state(latest)["optimizer"])
        assert sidecar["epoch"] == 0


class RunsCode:
    """A pickle payload: unpickling it calls os.mkdir(marker)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_code_running_resume_file_is_refused_without_running_it(tmp_path: Path) -> None:
    checkpoint = save(tmp_path / "checkpoints", 1)
    marker = tmp_path / "code-ran"
    torch.save({"optimizer": RunsCode(marker)}, checkpoint.resume_path)
    sidecar = {**checkpoint.metadata, "resume_sha256": sha256(checkpoint.resume_path)}
    checkpoint.sidecar_path.write_text(json.dumps(sidecar))

    forged = latest_checkpoint(tmp_path / "checkpoints")  # its hashes now verify
    assert forged is not None and forged.step == 1
    with pytest.raises(DemixganError, match="can run arbitrary code") as error:
        load_resume_state(forged)
    assert "mkdir" in str(error.value)
    assert not marker.exists()

    # The payload is live: an unsafe load would have run it.
    torch.load(checkpoint.resume_path, weights_only=False)
    assert marker.is_dir()


def test_a_pickle_in_place_of_the_weights_is_not_unpickled(tmp_path: Path) -> None:
    checkpoint = save(tmp_path, 1)
    marker = tmp_path / "code-ran"
    torch.save({"net": RunsCode(marker)}, checkpoint.weights_path)
    with pytest.raises(DemixganError, match="cannot be read as safetensors"):
        load_weights(checkpoint.weights_path, verify=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("metadata", "resume_state", "error"),
    [
        ({"config": object()}, None, TypeError),
        ({"loss": float("nan")}, None, TypeError),
        ({1: "x"}, None, TypeError),
        ({"step": 5}, None, ValueError),
        ({}, {"numpy_rng": np.random.get_state()}, TypeError),
    ],
)
def test_programming_errors_raise_before_any_file_is_written(
    tmp_path: Path, metadata: dict, resume_state: dict | None, error: type[Exception]
) -> None:
    previous = save(tmp_path, 1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(error):
        save_checkpoint(tmp_path, 2, build_modules(2), metadata, resume_state)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert latest_checkpoint(tmp_path) == previous


def test_no_checkpoints_yet(tmp_path: Path) -> None:
    assert list_checkpoints(tmp_path / "missing") == []
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None
    with pytest.raises(DemixganError, match="not a checkpoint file"):
        read_sidecar(tmp_path / "step-000000001.resume.pt")
