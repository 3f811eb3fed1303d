"""The fast path: a run's own separator, the method validation chose, and the shipped one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from demixgan.cli.main import main
from demixgan.data.superposition import build_sampler, make_mixtures
from demixgan.inference.api import load
from demixgan.inference.choice import CHOICE_FILE, METHODS, default_method

QUICK = ["--steps", "20", "--remix-steps", "5", "--width", "8", "--batch-size", "16"]


def run(*args) -> int:
    return main([str(a) for a in args])


def test_a_runs_separator_is_found_and_its_validated_method_is_the_default(
    tiny_runs, tmp_path, capsys
):
    """`demixgan separator RUN` writes RUN/separator with the method validation chose;
    `demix RUN` then runs that method, says so, and `--method` overrides it. A record written
    before validation matched the parts to the truth is chosen anew, said and stored."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_runs["demix"], run_dir)
    batch = make_mixtures(build_sampler("digit+sines", split="test"), 6, seed=3)
    mixtures = tmp_path / "y.npy"
    np.save(mixtures, batch.mixtures[:, 0].numpy())

    assert run("demix", run_dir, mixtures, "-o", tmp_path / "none", "--method", "refine") == 2
    assert "holds none" in capsys.readouterr().err and not (tmp_path / "none").exists()
    assert default_method(load(run_dir / "checkpoints" / "step-000000040.safetensors"))[0] == "fit"

    assert run("separator", run_dir, *QUICK) == 0
    out = capsys.readouterr().out
    record = json.loads((run_dir / "separator" / CHOICE_FILE).read_text())
    assert record["method"] in ("separator", "refine") and set(record["validation_psnr"]) == {
        "separator",
        "refine",
    }
    assert f"default method of the run: {record['method']}" in out

    outputs = {}
    for method in (None, *METHODS):
        target = tmp_path / f"out-{method}"
        flags = [] if method is None else ["--method", method, "--iterations", "10"]
        assert run("demix", run_dir, mixtures, "-o", target, *flags) == 0
        said = capsys.readouterr().out
        expected = record["method"] if method is None else method
        assert f"method: {expected} (" in said
        outputs[method] = np.load(target / "digit.npy")
    assert np.array_equal(outputs[None], outputs[record["method"]])
    assert not np.array_equal(outputs["separator"], outputs["fit"])

    stale = {key: value for key, value in record.items() if key != "matching"}
    (run_dir / "separator" / CHOICE_FILE).write_text(json.dumps(stale))
    assert run("demix", run_dir, mixtures, "-o", tmp_path / "anew") == 0
    assert "chosen anew on 500 validation mixtures" in capsys.readouterr().out
    assert json.loads((run_dir / "separator" / CHOICE_FILE).read_text()) == record

    assert run("evaluate", run_dir, "--n", "4", "--no-ica", "--iterations", "5") == 0
    assert "demixing-GAN, amortized separator" in capsys.readouterr().out


def test_methods_that_need_a_separator_are_refused_clearly(tiny_runs, tmp_path, capsys):
    batch = make_mixtures(build_sampler("digit+sines", split="test"), 2, seed=3)
    mixtures = tmp_path / "y.npy"
    np.save(mixtures, batch.mixtures[:, 0].numpy())
    out = tmp_path / "cs"
    assert run("cs", tiny_runs["demix"], mixtures, "-o", out, "--measurements", "50",
               "--method", "refine") == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "needs --separator" in err and "Traceback" not in err and not out.exists()


def test_the_shipped_separator_loads_and_beats_the_split_and_the_pixel_rule():
    """The demo's separator ships beside its model, small, through the same checkpoint code;
    on held-out test mixtures it clears both floors by 3 dB."""
    from demixgan.evaluation.metrics import psnr
    from demixgan.experiments.demo import DEMO_MODEL, asset, demo_separator, shipped_checkpoint
    from demixgan.inference.methods import Split
    from demixgan.inference.tasks import validation_pixel_rule
    from demixgan.spec.factory import run_sampler

    folder = asset(f"{DEMO_MODEL}/separator")
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5e6
    trained = load(shipped_checkpoint(DEMO_MODEL))
    separator = demo_separator()
    assert separator.names == trained.model.names
    assert default_method(trained) == (
        json.loads((folder / CHOICE_FILE).read_text())["method"],
        "the run's default",
    )
    test = make_mixtures(run_sampler(trained.config, "test"), 200, seed=11)
    rule = validation_pixel_rule(run_sampler(trained.config, "validation"))
    estimates = {
        "separator": trained.separate(test.mixtures, separator),
        "split": Split(2).separate(test.mixtures),
        "rule": rule.separate(test.mixtures),
    }
    with torch.no_grad():
        scores = {
            name: [psnr(parts[:, k], test.components[:, k]).mean().item() for k in range(2)]
            for name, parts in estimates.items()
        }
    for k in range(2):
        floor = max(scores["split"][k], scores["rule"][k])
        assert scores["separator"][k] >= floor + 3, scores


def test_a_latent_fit_reports_progress_within_a_chunk(tiny_runs):
    """The bar moves every iteration (a share of the chunk), not once per chunk."""
    import pytest

    from demixgan.inference.options import FitOptions

    calls = []
    mixtures = make_mixtures(build_sampler("digit+sines", split="test"), 4, seed=1).mixtures
    load(tiny_runs["demix"]).demix(mixtures, FitOptions(iterations=10, restarts=2), calls.append)
    assert len(calls) == 10 and sum(calls) == pytest.approx(4)


def test_progress_off_a_terminal_is_clean_log_lines(capsys, monkeypatch):
    from demixgan.io import progress

    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    with progress.progress_bar(4, "training", unit="step") as bar:
        for _ in range(4):
            bar.update(1)
    with progress.progress_bar(4, "quiet", enabled=False) as bar:
        bar.update(4)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and lines[0].startswith("training: 1/4 step (25%)")
    assert "left" in lines[0] and lines[-1].startswith("training: 4/4 step (100%)")
    assert "quiet" not in err


@pytest.mark.parametrize(
    ("config", "wrong_order"),
    [
        # two digits of any class: no part comes first, half the mixtures in the other order
        ("src/demixgan/assets/experiments/demix-digit-digit.toml", slice(None, None, 2)),
        # digit + sines whose generators learned each other's part: every mixture swapped
        ("configs/tiny-demix.toml", slice(None)),
    ],
)
def test_the_choice_scores_the_parts_matched_as_the_reports_match_them(
    config, wrong_order, tmp_path
):
    """Validation chooses a run's method (and reports' architectures) by the separator's mean
    PSNR; parts that are right up to their order must score as right, as evaluate scores them:
    each mixture's best order for exchangeable parts, one order over the set otherwise."""
    from demixgan.inference.api import TrainedModel
    from demixgan.inference.choice import ChoiceBudget, choose, validation_mixtures
    from demixgan.spec.config import load_config
    from demixgan.spec.factory import build_model
    from demixgan.spec.image import MNIST_IMAGE

    run = load_config(config)
    trained = TrainedModel(build_model(run, MNIST_IMAGE), run, tmp_path / "run")
    _, truth = validation_mixtures(trained, 8)
    answer = truth.clone()
    answer[wrong_order] = truth[wrong_order].flip(1)
    trained.separate = lambda mixtures, separator: answer  # a separator right up to order
    trained.refine = lambda mixtures, separator, options: answer
    scores = choose(trained, separator=None, budget=ChoiceBudget(8))["validation_psnr"]
    assert scores["separator"] == scores["refine"] > 90  # an exact match: MSE 0, PSNR 100
