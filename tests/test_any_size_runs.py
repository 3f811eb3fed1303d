"""Runs at other image sizes than the paper's, end to end: a user's own observed mixtures at
1 x 32 x 32 and 3 x 64 x 64 train a demixing-GAN, resume exactly, and are separated by the latent
fit and by a separator network; `demixgan demix` writes parts of the input's size and channels.
A killed `demixgan separator` run resumes to the weights of an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import blob_mixtures_of
from PIL import Image

import demixgan
from demixgan.cli.main import main
from demixgan.inference.amortized import load_separator
from demixgan.inference.options import FitOptions, SeparatorOptions
from demixgan.io.checkpoints import latest_checkpoint, load_weights
from demixgan.io.run_files import training_minutes
from demixgan.spec.config import config_to_dict as config_dict
from demixgan.spec.config import parse_config
from demixgan.spec.image import ImageSpec
from demixgan.training.loop import train
from demixgan.training.separator import train_model_separator

SIZES = {"grey-32": ImageSpec(1, 32, 32), "rgb-64": ImageSpec(3, 64, 64)}
TINY_SEPARATOR = SeparatorOptions(steps=3, remix_steps=2, batch_size=4, width=8)


def _observed(image: ImageSpec, n: int, seed: int) -> np.ndarray:
    """Mixtures a user might have, saved as uint8."""
    return np.round(blob_mixtures_of(image, n, seed) * 255).astype(np.uint8)


def _config(mixtures: Path, steps: int):
    network = {"latent_dim": 8, "hidden": 32}
    return parse_config(
        {
            "data": {"mixtures": str(mixtures)},
            "components": [
                {"name": "blob", "kind": "learned", "channels": 8, **network},
                {"name": "curves", "kind": "learned", "arch": "curve", **network},
            ],
            "discriminator": {"channels": 8},
            "train": {"batch_size": 8, "max_steps": steps, "checkpoint_every": 2, "log_every": 1},
        },
        name="own-mixtures",
    )


@pytest.fixture(scope="module", params=list(SIZES), ids=list(SIZES))
def own_run(request, tmp_path_factory) -> dict:
    """One run trained 4 steps, and one trained 2 steps then resumed to 4, on one thread (as
    the resume guarantee is stated: same thread count, same result; docs/training.md)."""
    image = SIZES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    np.save(root / "mixtures.npy", _observed(image, 24, seed=0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        whole = train(_config(root / "mixtures.npy", 4), root / "whole", progress=False)
        train(_config(root / "mixtures.npy", 2), root / "resumed", progress=False)
        train(_config(root / "mixtures.npy", 4), root / "resumed", resume=True, progress=False)
    torch.set_num_threads(threads)
    return {"image": image, "root": root, "run": whole.run_dir}


def test_a_run_on_own_mixtures_is_built_for_their_size(own_run):
    trained = demixgan.load(own_run["run"])
    image = own_run["image"]
    assert trained.model.image == image
    sidecar = json.loads(latest_checkpoint(own_run["run"] / "checkpoints").sidecar_path.read_text())
    assert sidecar["image"] == image.to_dict()
    assert sidecar["operator"] == {"name": "identity"} == trained.model.operator.to_dict()
    with torch.no_grad():
        parts = trained.model.components(trained.model.sample_latents(2, torch.Generator()))
    assert parts.shape == (2, 2, *image.shape)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(own_run):
    root = own_run["root"]
    whole, _ = load_weights(latest_checkpoint(root / "whole" / "checkpoints").weights_path)
    resumed, _ = load_weights(latest_checkpoint(root / "resumed" / "checkpoints").weights_path)
    assert whole.keys() == resumed.keys()
    for module, tensors in whole.items():
        for key, tensor in tensors.items():
            assert torch.equal(tensor, resumed[module][key]), f"{module}.{key}"


def test_fit_and_separator_return_parts_that_sum_to_the_mixtures(own_run):
    trained = demixgan.load(own_run["run"])
    image = own_run["image"]
    mixtures = torch.from_numpy(_observed(image, 3, seed=1)).float() / 255
    fitted = trained.demix(mixtures, FitOptions(iterations=3, restarts=1))
    separator = train_model_separator(trained, TINY_SEPARATOR)
    separated = trained.separate(mixtures, separator)
    for parts in (fitted, separated):
        assert parts.shape == (3, 2, *image.shape)
        assert torch.allclose(parts.sum(1), mixtures, atol=1e-4)  # consistent with each y


def test_demix_writes_parts_of_the_inputs_size_and_channels(own_run, tmp_path):
    image = own_run["image"]
    inputs = tmp_path / "new.npy"
    np.save(inputs, _observed(image, 2, seed=2))
    out = tmp_path / "parts"
    args = ["demix", own_run["run"], inputs, "-o", out, "--iterations", "2", "--restarts", "1"]
    assert main([str(a) for a in args]) == 0
    for name in ("blob", "curves"):
        assert np.load(out / f"{name}.npy").shape == (2, *image.shape)
        with Image.open(out / name / "new-00000.png") as png:
            assert png.size == (image.width, image.height)
            assert png.mode == ("RGB" if image.channels == 3 else "L")


def test_mixtures_of_another_size_than_the_run_are_refused(own_run, tmp_path, capsys):
    other = ImageSpec(1, 28, 28) if own_run["image"].height != 28 else ImageSpec(1, 32, 32)
    inputs = tmp_path / "other.npy"
    np.save(inputs, _observed(other, 2, seed=3))
    out = tmp_path / "parts"
    assert main(["demix", str(own_run["run"]), str(inputs), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert own_run["image"].describe() in err and "Traceback" not in err
    assert not out.exists()


def test_clipped_mixtures_are_observed_through_the_clip_operator(own_run):
    """A run on saturated images models the saturation: its observations are clipped like its
    data (an unclipped run's are the exact sum)."""
    from demixgan.spec.factory import build_model

    config = config_dict(_config(own_run["root"] / "mixtures.npy", 1))
    bright = torch.full((2, *own_run["image"].shape), 1.5)
    for clip, brightest in ((True, 1.0), (False, 1.5)):
        run = parse_config({**config, "data": {"clip": clip}}, name="c")
        model = build_model(run, own_run["image"])
        assert model.operator(bright).max().item() == brightest
        with torch.no_grad():
            latents = model.sample_latents(2, torch.Generator().manual_seed(0))
            assert torch.equal(model(latents), model.operator(model.components(latents).sum(1)))


# -- a killed separator run resumes exactly ------------------------------------------------

SEPARATOR_FLAGS = (
    "--steps", "6", "--remix-steps", "6", "--batch-size", "8", "--width", "8",
    "--checkpoint-every", "2", "--teacher-every", "4", "--log-every", "1",
)  # fmt: skip


def _killed_separator(script: str, target: str, *args: str | Path) -> int:
    """The exit status of ``demixgan separator ARGS`` in a process on one thread that
    ``script`` kills at the rename onto ``target``."""
    done = subprocess.run(
        [sys.executable, "-c", script, target, "separator", *map(str, args)],
        env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        capture_output=True,
        timeout=300,
    )
    return done.returncode


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_killed_separator_run_resumes_to_the_same_weights(
    tiny_runs, tmp_path, kill_at_rename, precision, one_thread, quick_choice
):
    """Killed while writing its step-10 checkpoint (remixing, a teacher in the checkpoint):
    resumed from step 8, it ends where the uninterrupted run ends, weights and log alike, in
    either precision of its steps. The kill is another process's; the uninterrupted run and
    the resume are this one's, on one thread as the killed one."""
    run = tiny_runs["demix"]
    flags = (*SEPARATOR_FLAGS, "--precision", precision)
    assert main(["separator", str(run), "-o", str(tmp_path / "whole"), *flags]) == 0
    killed = tmp_path / "killed"
    code = _killed_separator(kill_at_rename, "step-000000010.json", run, "-o", killed, *flags)
    assert code == -signal.SIGKILL
    assert latest_checkpoint(killed / "checkpoints").step == 8
    assert "teacher" in load_weights(latest_checkpoint(killed / "checkpoints").weights_path)[0]
    assert main(["separator", "--resume", str(killed)]) == 0
    whole, resumed = load_separator(tmp_path / "whole")[0], load_separator(killed)[0]
    for (key, a), (_, b) in zip(
        whole.network.state_dict().items(), resumed.network.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), key

    def losses(folder: Path) -> list[tuple]:
        lines = (folder / "stats.jsonl").read_text().splitlines()
        return [(r["step"], r["loss"]) for r in map(json.loads, lines)]

    assert losses(killed) == losses(tmp_path / "whole")
    # its recorded minutes are both segments' (the budget tables sum them), not the last one's
    assert load_separator(killed)[1]["seconds"] == round(60 * training_minutes(killed, 8), 1)
    finished = {p.name: p.read_bytes() for p in sorted((killed / "checkpoints").iterdir())}
    assert main(["separator", "--resume", str(killed)]) == 0  # finished: nothing to do
    assert finished == {p.name: p.read_bytes() for p in sorted((killed / "checkpoints").iterdir())}
    assert losses(killed) == losses(tmp_path / "whole")


def test_separator_resume_of_a_directory_that_is_no_run_is_one_clear_error(tmp_path, capsys):
    assert main(["separator", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a separator run" in err and "Traceback" not in err
