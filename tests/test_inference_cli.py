"""`demixgan denoise|demix|cs|evaluate|name` as a user runs them: files in, files out, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from demixgan.cli.main import main
from demixgan.spec.image import MNIST_IMAGE
from demixgan.training.separator import train_model_separator

FAST = ["--iterations", "30", "--restarts", "2"]


#: `separator` runs here choose their default method on few mixtures (conftest.quick_choice).
pytestmark = pytest.mark.usefixtures("quick_choice")


def run(*args: str) -> int:
    return main([str(a) for a in args])


def _mixtures(tmp_path: Path, n: int = 3) -> tuple[Path, Path]:
    from demixgan.data.superposition import build_sampler, make_mixtures

    batch = make_mixtures(build_sampler("digit+sines", level=1, split="test"), n, seed=0)
    mixtures, truth = tmp_path / "mixtures.npy", tmp_path / "truth.npy"
    np.save(mixtures, batch.mixtures[:, 0].numpy())
    np.save(truth, batch.components[:, :, 0].numpy())
    return mixtures, truth


def test_demix_writes_every_component_and_metrics(tiny_runs, tmp_path):
    mixtures, truth = _mixtures(tmp_path)
    png = tmp_path / "one.png"
    Image.fromarray((np.load(mixtures)[0].clip(0, 1) * 255).astype(np.uint8)).save(png)
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "demixgan",
            "demix",
            str(tiny_runs["demix"]),
            str(mixtures),
            "-o",
            str(out),
            "--truth",
            str(truth),
            *FAST,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for name in ("digit", "sines"):
        assert np.load(out / f"{name}.npy").shape == (3, 1, 28, 28)
        assert len(list((out / name).glob("*.png"))) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 3 and set(metrics["matching"]) == {"truth 1", "truth 2"}
    assert "PSNR" in result.stdout
    assert run("demix", tiny_runs["demix"], png, "-o", tmp_path / "png-out", *FAST) == 0
    assert np.load(tmp_path / "png-out" / "digit.npy").shape == (1, 1, 28, 28)


def test_names_given_once_name_the_outputs(tiny_runs, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_runs["demix"], run_dir)
    assert run("name", run_dir, "digit=left", "sines=right") == 0
    mixtures, _ = _mixtures(tmp_path, 1)
    assert run("demix", run_dir, mixtures, "-o", tmp_path / "out", *FAST) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "index.csv",
        "left",
        "left.npy",
        "right",
        "right.npy",
    ]
    assert run("name", run_dir, "nope=x") == 2
    assert "no generator named nope" in capsys.readouterr().err


def test_cs_measures_images_and_reads_measurements(tiny_runs, tmp_path):
    mixtures, _ = _mixtures(tmp_path, 2)
    assert (
        run(
            "cs",
            tiny_runs["denoise"],
            mixtures,
            "--measurements",
            "50",
            "-o",
            tmp_path / "a",
            *FAST,
        )
        == 0
    )
    assert np.load(tmp_path / "a" / "digit.npy").shape == (2, 1, 28, 28)
    y = np.random.default_rng(0).normal(size=(2, 40)).astype(np.float32)
    np.save(tmp_path / "y.npy", y)
    assert run("cs", tiny_runs["denoise"], tmp_path / "y.npy", "-o", tmp_path / "b", *FAST) == 0


def test_evaluate_prints_the_table_with_baselines(tiny_runs, tmp_path, capsys):
    out = tmp_path / "scores.json"
    assert run("evaluate", tiny_runs["demix"], "--n", "8", "--json", out, *FAST) == 0
    table = capsys.readouterr().out
    for row in ("demixing-GAN", "ICA", "split y/2", "input (mixture)"):
        assert row in table
    record = json.loads(out.read_text())
    assert record["n"] == 8
    # the command that wrote it, with machine paths (the run, the JSON) written as DIR
    assert record["command"] == f"demixgan evaluate DIR --n 8 --json DIR {' '.join(FAST)}"
    assert record["code"]["version"] and record["threads"] >= 1  # what made the numbers


@pytest.mark.parametrize("task", ["demix", "denoise", "cs", "evaluate"])
def test_a_device_this_machine_lacks_is_refused_before_any_work(tiny_runs, tmp_path, capsys, task):
    """--device names a device that is not here: one paragraph, exit 2, nothing written."""
    mixtures, _ = _mixtures(tmp_path, 1)
    run_dir = tiny_runs["denoise" if task in ("denoise", "cs") else "demix"]
    out = tmp_path / "out"
    lacking = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, or CUDA absent
    for device, message in (("gpu", "not one demixgan computes on"), (lacking, "cuda")):
        where = ["--n", "2"] if task == "evaluate" else [mixtures, "-o", out]
        assert run(task, run_dir, *where, "--device", device, *FAST) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
        assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_empty_measurements_are_one_clear_error(tiny_runs, tmp_path, capsys):
    np.save(tmp_path / "none.npy", np.zeros((0, 40), dtype=np.float32))
    out = tmp_path / "out"
    assert run("cs", tiny_runs["denoise"], tmp_path / "none.npy", "-o", out, *FAST) == 2
    err = capsys.readouterr().err
    assert "No measurements were given" in err and "Traceback" not in err and not out.exists()


def test_restarts_combined_by_weight_and_a_bad_combine(tiny_runs, tmp_path, capsys):
    y = np.random.default_rng(0).normal(size=(2, 40)).astype(np.float32)
    np.save(tmp_path / "y.npy", y)
    args = ("cs", tiny_runs["denoise"], tmp_path / "y.npy", "-o")
    assert run(*args, tmp_path / "w", *FAST, "--combine", "weighted") == 0
    assert np.load(next((tmp_path / "w").glob("*.npy"))).shape[0] == 2
    capsys.readouterr()
    assert run(*args, tmp_path / "m", *FAST, "--combine", "mean") == 2
    err = capsys.readouterr().err
    assert "combine must be one of 'best', 'weighted'" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    rgb, small = tmp_path / "rgb.png", tmp_path / "small.png"
    Image.new("RGB", (28, 28)).save(rgb)
    Image.new("L", (20, 20)).save(small)
    nan, empty = tmp_path / "nan.npy", tmp_path / "empty.npy"
    np.save(nan, np.full((2, 28, 28), np.nan, dtype=np.float32))
    np.save(empty, np.zeros((0, 28, 28), dtype=np.float32))
    broken = tmp_path / "broken.npy"
    broken.write_bytes(b"not numpy")
    scalar, huge = tmp_path / "scalar.npy", tmp_path / "huge.npy"
    np.save(scalar, np.array(3.0))
    np.save(huge, np.full((2, 28, 28), 3e38, dtype=np.float32))
    return {
        "scalar": (scalar, "holds a single number"),
        "huge": (huge, "far outside what this model's 2 parts"),
        "channels": (rgb, "grey 28x28 images"),
        "size": (small, "grey 28x28 images"),
        "nan": (nan, "NaN or infinite"),
        "empty": (empty, "empty"),
        "corrupt": (broken, "corrupt or not a .npy"),
        "missing": (tmp_path / "absent.npy", "does not exist"),
    }


@pytest.mark.parametrize(
    "case", ["channels", "size", "nan", "empty", "corrupt", "missing", "scalar", "huge"]
)
def test_bad_inputs_are_clear_errors_and_write_nothing(tiny_runs, tmp_path, capsys, case):
    path, message = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    assert run("demix", tiny_runs["demix"], path, "-o", out, *FAST) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_wrong_kind_damaged_checkpoints_and_unwritable_outputs(tiny_runs, tmp_path, capsys):
    mixtures, _ = _mixtures(tmp_path, 1)
    assert run("demix", tiny_runs["denoise"], mixtures, "-o", tmp_path / "o1", *FAST) == 2
    assert "cannot demix" in capsys.readouterr().err
    run_dir = tmp_path / "damaged"
    shutil.copytree(tiny_runs["demix"], run_dir)
    weights = sorted((run_dir / "checkpoints").glob("*.safetensors"))[-1]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert run("demix", weights, mixtures, "-o", tmp_path / "o2", *FAST) == 2
    assert "weights" in capsys.readouterr().err
    weights.write_bytes(bytes(data[: len(data) // 3]))
    assert run("demix", weights, mixtures, "-o", tmp_path / "o3", *FAST) == 2
    capsys.readouterr()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("earlier result")
    assert run("demix", tiny_runs["demix"], mixtures, "-o", taken, *FAST) == 2
    assert "already exists" in capsys.readouterr().err
    assert (taken / "keep.txt").read_text() == "earlier result"
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert run("demix", tiny_runs["demix"], mixtures, "-o", blocked / "out", *FAST) == 2
    assert "Cannot write" in capsys.readouterr().err
    for out in ("o1", "o2", "o3"):
        assert not (tmp_path / out).exists()


def test_a_classifier_checkpoint_is_refused_by_name(tmp_path, capsys):
    from torch import nn

    from demixgan.io.checkpoints import save_checkpoint

    saved = save_checkpoint(
        tmp_path / "clf", 0, {"net": nn.Linear(2, 2)}, {"kind": "classifier"}, None
    )
    mixtures, _ = _mixtures(tmp_path, 1)
    assert run("demix", saved.weights_path, mixtures, "-o", tmp_path / "out", *FAST) == 2
    assert "is a classifier checkpoint, not a trained GAN run" in capsys.readouterr().err


def test_a_denoisers_separator_denoises_without_being_told_the_level(tiny_runs, tmp_path, capsys):
    """A denoising-GAN's separator trained with --max-level splits the curves off in one
    pass, whatever their number; --corruption-level asks for the fit instead."""
    from demixgan.data.superposition import build_sampler, make_mixtures

    separator = tmp_path / "separator"
    tiny = ["--steps", "4", "--remix-steps", "2", "--width", "4", "--batch-size", "8"]
    assert run("separator", tiny_runs["denoise"], "-o", separator, *tiny, "--max-level", "3") == 0
    batch = make_mixtures(build_sampler("digit+sines", level=3, split="test"), 4, seed=0)
    corrupted = tmp_path / "u.npy"
    np.save(corrupted, batch.mixtures[:, 0].numpy())
    capsys.readouterr()
    common = ("denoise", tiny_runs["denoise"], corrupted, "--separator", separator, "-o")
    assert run(*common, tmp_path / "out") == 0
    assert "method: separator" in capsys.readouterr().out
    (written,) = (tmp_path / "out").glob("*.npy")
    assert np.load(written).shape == (4, 1, 28, 28)
    assert run(*common, tmp_path / "bad", "--corruption-level", "3") == 2
    err = capsys.readouterr().err
    assert "the separator never needs it" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()


def test_denoise_with_the_corruption_fitted_removes_it(tiny_runs, tmp_path, capsys):
    """--corruption-level fits the known sines too; --estimate subtract returns u - n_hat,
    at half the input's error or less even with a generator trained for 40 steps."""
    from demixgan.data.superposition import build_sampler, make_mixtures

    batch = make_mixtures(build_sampler("digit+sines", level=1, split="test"), 4, seed=0)
    corrupted, truth = tmp_path / "u.npy", tmp_path / "x.npy"
    np.save(corrupted, batch.mixtures[:, 0].numpy())
    np.save(truth, batch.components[:, 0, 0].numpy())
    fit = ["--iterations", "150", "--restarts", "4", "--lr", "0.05"]
    out = tmp_path / "out"
    args = ("denoise", tiny_runs["denoise"], corrupted, "-o", out, "--truth", truth, *fit)
    assert run(*args, "--corruption-level", "1", "--estimate", "subtract") == 0
    denoised = np.load(next(out.glob("*.npy")))[:, 0]
    before = ((batch.mixtures[:, 0].numpy() - np.load(truth)) ** 2).mean()
    # measured 0.38 x with the stroke search, 0.58 x with the curve started from the prior
    assert ((denoised - np.load(truth)) ** 2).mean() < 0.5 * before
    capsys.readouterr()
    for bad, message in (("0", "signal level must be"), (None, "give the corruption level")):
        level = ["--corruption-level", bad] if bad else []
        target = tmp_path / f"bad-{bad}"
        assert run(*args[:4], target, *fit, *level, "--estimate", "subtract") == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and not target.exists()


def test_separator_trained_saved_and_used_by_demix_and_evaluate(tiny_runs, tmp_path, capsys):
    """`demixgan separator` writes a checkpoint; `demix --separator` and `evaluate --separator`
    use it: its parts sum to each mixture and are those of the same training in Python."""
    from demixgan.inference.api import load
    from demixgan.inference.options import SeparatorOptions

    mixtures, truth = _mixtures(tmp_path, n=16)
    sep = tmp_path / "separator"
    budget = ("--steps", "20", "--remix-steps", "10", "--width", "8", "--batch-size", "16")
    assert run("separator", tiny_runs["demix"], "-o", sep, *budget, "--device", "cpu") == 0
    assert "separator checkpoint" in capsys.readouterr().out
    recorded = json.loads((sep / "separator-job.json").read_text())["device"]
    assert recorded == "cpu" == json.loads((sep / "step-000000000.json").read_text())["device"]
    out = tmp_path / "out"
    args = ("demix", tiny_runs["demix"], mixtures, "-o", out, "--separator", sep)
    assert run(*args, "--truth", truth) == 0
    parts = np.stack([np.load(out / f"{name}.npy")[:, 0] for name in ("digit", "sines")], 1)
    observed = np.load(mixtures)
    assert np.abs(parts.sum(1) - observed.clip(0, 2)).max() < 1e-4  # consistent with y
    trained = load(tiny_runs["demix"])
    same = trained.separate(
        torch.from_numpy(observed)[:, None],
        train_model_separator(
            trained, SeparatorOptions(steps=20, remix_steps=10, width=8, batch_size=16)
        ),
    )
    np.testing.assert_allclose(parts, same[:, :, 0].numpy(), atol=1e-5)
    assert (
        run("evaluate", tiny_runs["demix"], "--n", "8", "--no-ica", "--separator", sep, *FAST) == 0
    )
    assert "demixing-GAN, amortized separator" in capsys.readouterr().out


def test_compressive_separator_recovers_from_measurements_of_its_matrix(
    tiny_runs, tmp_path, capsys
):
    """`separator --measurements` trains for one matrix, taught by a separator of whole
    mixtures; `cs --separator` uses it on that matrix's measurements and refuses any other."""
    from demixgan.inference.amortized import load_separator
    from demixgan.inference.api import load
    from demixgan.inference.options import SeparatorOptions
    from demixgan.models.operators import GaussianOperator

    mixtures, _ = _mixtures(tmp_path, n=8)
    whole, sep = tmp_path / "whole", tmp_path / "separator"
    budget = ("--steps", "10", "--remix-steps", "6", "--width", "8", "--batch-size", "16")
    matrix = ("--measurements", "200", "--matrix-seed", "3")
    assert run("separator", tiny_runs["demix"], "-o", whole, *budget) == 0
    args = ("separator", tiny_runs["demix"], "-o", sep, *budget, *matrix)
    assert run(*args, "--teacher", whole) == 0
    assert "separator: 16/16 step" in capsys.readouterr().err  # the teacher given: none trained
    out = tmp_path / "out"
    assert run("cs", tiny_runs["demix"], mixtures, "-o", out, *matrix, "--separator", sep) == 0
    parts = np.stack([np.load(out / f"{name}.npy")[:, 0] for name in ("digit", "sines")], 1)
    trained, operator = load(tiny_runs["demix"]), GaussianOperator(200, MNIST_IMAGE, seed=3)
    separator = train_model_separator(
        trained,
        SeparatorOptions(steps=10, remix_steps=6, width=8, batch_size=16),
        operator=operator,
        teacher=load_separator(whole)[0],
    )
    measured = operator(torch.from_numpy(np.load(mixtures))[:, None])
    same = trained.separate(measured, separator, operator)
    np.testing.assert_allclose(parts, same[:, :, 0].numpy(), atol=1e-5)
    assert parts.min() >= 0 and parts.max() <= 1
    capsys.readouterr()
    for case in (
        ("cs", mixtures, "-o", tmp_path / "a", "--measurements", "200", "--matrix-seed", "4"),
        ("cs", mixtures, "-o", tmp_path / "b", "--measurements", "100", "--matrix-seed", "3"),
        ("demix", mixtures, "-o", tmp_path / "c"),
    ):
        assert run(case[0], tiny_runs["demix"], *case[1:], "--separator", sep) == 2
        err = capsys.readouterr().err
        assert "trained on 200 measurements by the Gaussian matrix of seed 3" in err, err
    # a teacher must split whole mixtures, and only teaches a separator of measurements
    assert run(*args[:3], tmp_path / "d", *budget, *matrix, "--teacher", sep) == 2
    err = capsys.readouterr().err
    assert "A teacher" in err and "trained on 200 measurements" in err, err
    assert run(*args[:3], tmp_path / "e", "--teacher", whole) == 2
    assert "give --measurements too" in capsys.readouterr().err
    assert [name for name in "abcde" if (tmp_path / name).exists()] == []


def test_separator_errors_are_one_paragraph(tiny_runs, tmp_path, capsys):
    mixtures, _ = _mixtures(tmp_path)
    cases = [
        # a GAN run given as a separator
        (
            "demix",
            tiny_runs["demix"],
            mixtures,
            "-o",
            tmp_path / "a",
            "--separator",
            tiny_runs["demix"],
        ),
        # a demixing-GAN has no known corruption to draw at other levels
        ("separator", tiny_runs["demix"], "-o", tmp_path / "b", "--max-level", "3"),
        # saving into a GAN run's checkpoints would delete them
        ("separator", tiny_runs["demix"], "-o", Path(tiny_runs["demix"]) / "checkpoints"),
        ("separator", tiny_runs["demix"], "-o", tmp_path / "c", "--steps", "0"),
        # a device this machine lacks (CI has no GPU: cuda:7 is missing on any machine here)
        ("separator", tiny_runs["demix"], "-o", tmp_path / "d", "--device", "cuda:7"),
        ("separator", tiny_runs["demix"], "-o", tmp_path / "d", "--device", "tpu"),
    ]
    for case in cases:
        assert run(*case) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.startswith("demixgan: error:"), err
    assert not any((tmp_path / name).exists() for name in "acd")


@pytest.mark.parametrize("device", [5, "tpu"])
def test_a_separator_job_with_a_bad_device_is_refused_on_resume(
    tiny_runs, tmp_path, capsys, device
):
    """A damaged or hand-edited job file: one paragraph, exit 2, nothing written."""
    from demixgan.inference.options import SeparatorOptions
    from demixgan.training.separator_runs import JOB_FILE, new_job

    job = new_job(tiny_runs["demix"], SeparatorOptions(steps=2, remix_steps=0)) | {"device": device}
    run_dir = tmp_path / "sep"
    run_dir.mkdir()
    (run_dir / JOB_FILE).write_text(json.dumps(job))
    assert run("separator", "--resume", run_dir) == 2
    err = capsys.readouterr().err
    assert err.startswith("demixgan: error:") and "Traceback" not in err, err
    assert [p.name for p in run_dir.iterdir()] == [JOB_FILE]


def test_denoise_chooses_each_images_level_itself(tiny_runs, tmp_path, capsys):
    """--corruption-level auto: the fit keeps as many curves as each image needs, with a
    threshold chosen on the run's validation split (said), or given; never told the level."""
    from demixgan.data.superposition import build_sampler, make_mixtures

    batch = make_mixtures(build_sampler("digit+sines", level=3, split="test"), 4, seed=0)
    corrupted, truth = tmp_path / "u.npy", tmp_path / "x.npy"
    np.save(corrupted, batch.mixtures[:, 0].numpy())
    np.save(truth, batch.components[:, 0, 0].numpy())
    fit = ["--iterations", "100", "--restarts", "2", "--lr", "0.05", "--estimate", "subtract"]
    common = ("denoise", tiny_runs["denoise"], corrupted, "--truth", truth, *fit, "-o")
    assert (
        run(*common, tmp_path / "given", "--corruption-level", "auto", "--level-threshold", "0.01")
        == 0
    )
    assert "level threshold" not in capsys.readouterr().out
    denoised = np.load(next((tmp_path / "given").glob("*.npy")))[:, 0]
    before = ((batch.mixtures[:, 0].numpy() - np.load(truth)) ** 2).mean()
    # measured 0.79 x with this 40-step generator, which draws blobs that hide curves (the
    # level-3 fit given the level: 0.31 x); the denoise-test report measures real denoisers
    assert ((denoised - np.load(truth)) ** 2).mean() < 0.9 * before

    quick = ["--iterations", "10", "--restarts", "1"]
    assert run(*common[:5], *quick, "-o", tmp_path / "chosen", "--corruption-level", "auto") == 0
    said = capsys.readouterr().out
    assert "level threshold: " in said and "20 validation images per level 1..5" in said
    assert np.load(next((tmp_path / "chosen").glob("*.npy"))).shape == (4, 1, 28, 28)

    assert run(*common, tmp_path / "bad", "--level-threshold", "0.01") == 2  # no auto
    assert "goes with --corruption-level auto" in capsys.readouterr().err
    for bad in (["--corruption-level", "two"], ["--level-threshold", "-1"]):
        with pytest.raises(SystemExit) as stop:  # argparse: its usage line and the error
            run(*common, tmp_path / "bad", "--corruption-level", "auto", *bad)
        assert stop.value.code == 2 and "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
