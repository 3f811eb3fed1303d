"""`demixgan demo` with the shipped checkpoint on a tiny budget, and the pieces it rests on."""

from __future__ import annotations

import dataclasses
import json
import re

import torch

from demixgan.cli.main import main
from demixgan.experiments.demo import (
    DEMO_CONFIG,
    DEMO_MODEL,
    SHIPPED_CONFIG,
    asset,
    run_demo,
    shipped_checkpoint,
)
from demixgan.inference.loading import export_generators, load_model
from demixgan.inference.options import FitOptions, SeparatorOptions
from demixgan.io.checkpoints import read_sidecar
from demixgan.spec.config import load_config

TINY = FitOptions(iterations=5, restarts=1, seed=0)
SEPARATOR_ROWS = (
    "demixing-GAN, separator + fit",
    "demixing-GAN, amortized separator",
    "MixIT peer (outputs grouped without truth)",
    "MixIT peer, oracle grouping (sees the truth)",
    "RemixIT peer (taught by MixIT, no GAN)",
    "supervised separator (clean parts): upper bound",
    "pixel-value rule (fitted with truth)",
    "ICA",
    "split y/2",
    "input (mixture)",
)


def test_demo_writes_a_self_contained_report(tmp_path):
    result = run_demo(tmp_path / "demo", n=4, options=TINY, progress=False)
    html = result.report.read_text(encoding="utf-8")
    for row in SEPARATOR_ROWS:
        assert f"<td>{row}</td>" in html
    assert "ms / mixture" in html
    # Every figure is inlined: the report opens without its directory.
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 2
    assert not re.search(r'(src|href)="(?!data:)', html)
    scores = json.loads((result.run_dir / "metrics.json").read_text())
    assert scores["n"] == 4 and scores["digits"] == "mnist-embedded test split"
    assert scores["command"] == "demixgan demo --method separator --n 4"  # on the CPU: no --device
    assert {p.name for p in result.run_dir.iterdir()} >= {
        "report.html",
        "separation.png",
        "evolution.png",
        "metrics.json",
        "table.md",
    }


def test_demo_refuses_an_existing_run_directory(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("keep")
    assert main(["demo", "-o", str(taken), "--n", "2", "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["demo", "-o", str(tmp_path / "new"), "--n", "0"]) == 2
    assert not (tmp_path / "new").exists()


def test_demo_method_fit_keeps_the_latent_fit_from_the_prior(tmp_path):
    result = run_demo(tmp_path / "demo", n=3, method="fit", options=TINY, progress=False)
    rows = [
        row["method"] for row in json.loads((result.run_dir / "metrics.json").read_text())["rows"]
    ]
    assert rows[0] == "demixing-GAN" and "demixing-GAN, amortized separator" not in rows


def test_the_shipped_checkpoints_are_small_and_trained_from_the_shipped_configs():
    for model, config_name, parts in (
        ("demo", SHIPPED_CONFIG, ("digit", "sines")),
        (DEMO_MODEL, DEMO_CONFIG, ("digit", "ink")),
    ):
        path = shipped_checkpoint(model)
        assert path.stat().st_size < 20e6
        loaded, config = load_model(path)
        assert loaded.learned == parts
        shipped = load_config(asset(config_name))
        assert dataclasses.replace(config, name=shipped.name) == shipped


def test_float16_export_keeps_the_generators(tiny_runs, tmp_path):
    path = export_generators(tiny_runs["demix"], tmp_path / "exported", half=True)
    original, _ = load_model(tiny_runs["demix"])
    exported, _ = load_model(path)
    z = original.sample_latents(4, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(original.eval()(z), exported.eval()(z), atol=2e-3)
    assert (
        path.stat().st_size
        < 0.6
        * sorted((tiny_runs["demix"] / "checkpoints").glob("*.safetensors"))[-1].stat().st_size
    )
    # where the run's steps ran travels with the export: "same seed, same weights" needs it
    trained_on = read_sidecar(path)["trained_on"]
    assert trained_on["device"] == "cpu" and trained_on["threads"] >= 1


def test_demo_train_trains_the_demo_config_and_separates_with_it(tmp_path):
    steps = ["train.max_steps=3", "train.checkpoint_every=3", "train.batch_size=16"]
    result = run_demo(
        tmp_path / "demo",
        train_first=True,
        overrides=steps,
        n=3,
        options=TINY,
        separator_options=SeparatorOptions(steps=3, remix_steps=2, width=8, batch_size=8),
        progress=False,
    )
    checkpoint = json.loads((result.run_dir / "metrics.json").read_text())["checkpoint"]
    assert checkpoint.startswith(str(tmp_path / "demo" / "training"))
    assert checkpoint.endswith("step-000000003.safetensors")
    assert "trained in this run from the demo config" in result.report.read_text()


def test_demo_rejects_a_bad_override_before_writing_anything(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--train", "--set", "train.max_stepz=3", "-o", str(out)]) == 2
    assert "max_stepz" in capsys.readouterr().err and not out.exists()
    assert main(["demo", "--set", "train.max_steps=3", "-o", str(out)]) == 2
    assert "needs --train" in capsys.readouterr().err and not out.exists()


def test_demo_refuses_a_device_this_machine_lacks_before_any_work(tmp_path, capsys):
    """--device names a device that is not here: one paragraph, exit 2, nothing written."""
    out = tmp_path / "demo"
    lacking = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, or CUDA absent
    for device, message in (("gpu", "not one demixgan computes on"), (lacking, "cuda")):
        for train in ([], ["--train"]):
            assert main(["demo", *train, "-o", str(out), "--n", "2", "--device", device]) == 2
            err = capsys.readouterr().err
            assert message in err and "Traceback" not in err and not out.exists(), err


def test_a_demo_that_fails_midway_leaves_no_directory(tmp_path, monkeypatch):
    """A failure after the first file (here: the separation itself) removes what was written."""
    import pytest

    from demixgan.experiments import demo

    def broken(*args, **kwargs):
        raise RuntimeError("separation failed")

    monkeypatch.setattr(demo, "evaluate_checkpoint", broken)
    with pytest.raises(RuntimeError):
        run_demo(tmp_path / "demo", n=2, options=TINY, progress=False)
    assert list(tmp_path.iterdir()) == []
