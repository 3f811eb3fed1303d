"""The MNIST classifier for semantic evaluation: training on real digits, checkpoints, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from demixgan.data.sources import load_images
from demixgan.errors import DemixganError
from demixgan.evaluation.classification import (
    accuracy,
    classify,
    load_classifier,
    save_classifier,
)
from demixgan.inference.loading import load_model
from demixgan.io.checkpoints import latest_checkpoint
from demixgan.networks.classifier import ClassifierShape
from demixgan.spec.config import load_config
from demixgan.training.classifier import train_classifier
from demixgan.training.loop import train

SMALL = ClassifierShape(conv1=16, conv2=32, hidden=128, dropout=0.25)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small convolutions run several times slower on threads shared with other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    """Every 4th embedded training digit (100 per class) and the 1,000 held-out ones."""
    train_set = load_images("mnist-embedded", "train")
    test_set = load_images("mnist-embedded", "test")
    return train_set.images[::4], train_set.labels[::4], test_set.images, test_set.labels


@pytest.fixture(scope="module")
def trained(digits):
    images, labels, _, _ = digits
    return train_classifier(images, labels, epochs=4, seed=0, shape=SMALL, batch_size=32)


def test_short_training_beats_chance_by_far_on_held_out_digits(trained, digits):
    _, _, test_images, test_labels = digits
    assert accuracy(trained, test_images, test_labels) > 0.7  # chance is 0.1
    assert accuracy(trained, (test_images >= 0.5).float(), test_labels) > 0.7


def test_training_is_deterministic_and_leaves_the_global_rng_alone(digits):
    images, labels = digits[0][:200], digits[1][:200]
    state = torch.get_rng_state()
    first = train_classifier(images, labels, epochs=1, seed=3, shape=SMALL)
    assert torch.equal(torch.get_rng_state(), state)
    second = train_classifier(images, labels, epochs=1, seed=3, shape=SMALL)
    other = train_classifier(images, labels, epochs=1, seed=4, shape=SMALL)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    assert not torch.equal(first.head[-1].weight, other.head[-1].weight)


def test_save_load_round_trip_gives_identical_predictions(trained, digits, tmp_path):
    images = digits[2]
    checkpoint = save_classifier(trained, tmp_path / "clf", {"note": "test"})
    expected = classify(trained, images)
    for path in (tmp_path / "clf", checkpoint.weights_path, checkpoint.sidecar_path):
        model, sidecar = load_classifier(path)
        assert sidecar["kind"] == "classifier" and sidecar["note"] == "test"
        assert model.shape == SMALL
        assert torch.equal(classify(model, images), expected)


def test_gan_and_classifier_checkpoints_are_told_apart(trained, tmp_path):
    config = load_config("configs/tiny-demix.toml", ["train.max_steps=1"])
    run = train(config, tmp_path / "run", progress=False)
    for path in (run.run_dir, run.checkpoint):
        with pytest.raises(DemixganError, match="gan-run checkpoint, not an MNIST classifier"):
            load_classifier(path)
    classifier = save_classifier(trained, tmp_path / "clf", {})
    with pytest.raises(DemixganError, match="no run configuration"):
        load_model(classifier.weights_path)
    with pytest.raises(DemixganError, match="would delete them"):
        save_classifier(trained, run.run_dir / "checkpoints", {})
    assert load_model(run.run_dir)  # the GAN checkpoint is untouched


def demixgan(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DEMIXGAN_CACHE": str(cache),
        "DEMIXGAN_MIRRORS": "http://127.0.0.1:9/",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("DEMIXGAN_DATA", None)  # no MNIST test set: only the embedded one is evaluated
    return subprocess.run(
        [sys.executable, "-m", "demixgan", "train-classifier", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_trains_reports_and_writes_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "clf"
    result = demixgan("--epochs", "1", "--seed", "1", "-o", str(out), cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert "held-out accuracy, mnist-embedded test (1,000 digits)" in result.stdout
    assert "mnist test" not in result.stdout and "no MNIST test set found" in result.stderr
    assert "epoch 1/1" in result.stderr
    _, sidecar = load_classifier(out)
    assert sidecar["training"]["epochs"] == 1 and sidecar["training"]["seed"] == 1
    assert sidecar["held_out_accuracy"]["mnist-embedded test"]["binarized"] > 0.8
    assert sorted(p.name for p in out.iterdir()) == [
        "step-000000000.json",
        "step-000000000.safetensors",
    ]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--epochs", "0"], "--epochs must be between 1 and 1000"),
        (["--epochs", "two"], "invalid int value"),
        (["--data", "mnist"], "train-images-idx3-ubyte"),  # not here, and no network
        (["--epochs", "1", "-o", "{blocker}/clf"], "Cannot write the classifier checkpoint"),
    ],
)
def test_cli_bad_input_is_a_clear_error_and_writes_nothing(
    tmp_path, args, needle, isolated_data_env, capsys
):
    """In this process (the exit status of a real one: the test above and test_cli)."""
    from demixgan.cli.main import main

    work = tmp_path / "work"
    work.mkdir()
    blocker = work / "a-file"
    blocker.write_text("not a directory")
    args = [arg.format(blocker=blocker) for arg in args]
    if "-o" not in args:
        args += ["-o", str(work / "clf")]
    try:
        code = main(["train-classifier", *args])
    except SystemExit as stop:  # argparse's own errors: its usage line and the message
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err and "Traceback" not in err
    assert [p.name for p in work.iterdir()] == ["a-file"]


def test_an_interrupted_classifier_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """The classifier trains through the engine: stopped mid-epoch after its first epoch's
    checkpoint, it resumes (order, distortions, dropout and schedule restored) to the weights of
    an uninterrupted run."""
    from demixgan.training import classifier as classifier_training

    digits = load_images("mnist-embedded", "train")
    images, labels = digits.images[:200], digits.labels[:200]
    options = {"epochs": 2, "seed": 5, "shape": SMALL, "batch_size": 64}
    whole = train_classifier(images, labels, **options)
    step = classifier_training.ClassifierTask.train_step

    def crash_at_step_6(self):
        if self.step == 6:
            raise KeyboardInterrupt
        return step(self)

    monkeypatch.setattr(classifier_training.ClassifierTask, "train_step", crash_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(images, labels, run_dir=tmp_path, **options)
    assert latest_checkpoint(tmp_path / "checkpoints").step == 4  # the first epoch's end
    steps = []

    def counted(self):
        steps.append(self.step)
        return step(self)

    monkeypatch.setattr(classifier_training.ClassifierTask, "train_step", counted)
    resumed = train_classifier(images, labels, run_dir=tmp_path, resume=True, **options)
    assert steps == [4, 5, 6, 7]  # continued from the checkpoint, not from the start
    for (key, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
