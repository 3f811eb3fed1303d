"""A user's own folder of mixture images, from the two commands of the quick start to every
bad input: `demixgan train --mixtures DIR --components ...`, then `demixgan demix RUN DIR -o
OUT` writes, per input file, one image per part under the input's name, size, channels and bit
depth, with a .npy stack per part and index.csv. Bad folders get one paragraph, exit status 2
and leave nothing behind."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import blob_mixtures_of as _mixtures
from PIL import Image

from demixgan.cli.main import main
from demixgan.spec.image import ImageSpec

TINY = [
    "--set", "train.max_steps=2", "--set", "train.batch_size=4", "--set", "train.log_every=1",
    "--set", "components.blob.channels=8", "--set", "components.blob.hidden=16",
    "--set", "components.blob.latent_dim=8", "--set", "discriminator.channels=8",
]  # fmt: skip
FIT = ["--iterations", "2", "--restarts", "1"]


def _save(folder: Path, mixtures: np.ndarray, bits: int = 8, suffix: str = ".png") -> Path:
    """Each mixture as its own image file, named scan-NN (grey 8/16-bit or RGB)."""
    folder.mkdir(parents=True, exist_ok=True)
    top, dtype = (65535, np.uint16) if bits == 16 else (255, np.uint8)
    for i, mixture in enumerate(mixtures):
        pixels = np.round(mixture * top).astype(dtype)
        pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
        Image.fromarray(pixels).save(folder / f"scan-{i:02d}{suffix}")
    return folder


def _run(*args) -> int:
    return main([str(a) for a in args])


def _train(folder: Path, run: Path, *extra) -> int:
    components = ["--components", "blob=dcgan,curves=curve"]
    return _run("train", "--mixtures", folder, *components, *TINY, "--run-dir", run, *extra)


@pytest.mark.parametrize(
    "image, bits",
    [(ImageSpec(1, 16, 24), 16), (ImageSpec(3, 24, 16), 8)],
    ids=["grey-16bit-16x24", "rgb-24x16"],
)
def test_a_folder_of_own_pngs_goes_to_separated_pngs_in_two_commands(tmp_path, image, bits):
    folder = _save(tmp_path / "scans", _mixtures(image, 12), bits=bits)
    run, out = tmp_path / "run", tmp_path / "parts"
    assert _train(folder, run, "--no-progress") == 0
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["mixtures"] == str(folder.resolve())
    assert [c["arch"] for c in config["components"]] == ["dcgan", "curve"]
    assert _run("demix", run, folder, "-o", out, *FIT) == 0
    with open(out / "index.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["input"] for row in rows] == [f"scan-{i:02d}" for i in range(12)]
    assert {row["bits"] for row in rows} == {str(bits)}
    mode = {16: "I;16", 8: "RGB"}[bits]
    parts = []
    for name in ("blob", "curves"):
        assert np.load(out / f"{name}.npy").shape == (12, *image.shape)
        for row in rows:
            with Image.open(out / row[name]) as png:
                assert (png.size, png.mode) == ((image.width, image.height), mode)
        parts.append(np.load(out / f"{name}.npy"))
    # The parts are a separation of each file: they add up to the mixture as it was read.
    with Image.open(folder / "scan-03.png") as png:
        pixels = np.asarray(png, dtype=np.float32) / (65535 if bits == 16 else 255)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    np.testing.assert_allclose(parts[0][3] + parts[1][3], pixels, atol=1e-4)


def test_mixed_sizes_train_with_resize_and_parts_come_back_at_each_inputs_size(tmp_path):
    folder = _save(tmp_path / "scans", _mixtures(ImageSpec(3, 32, 32), 8))
    _save(tmp_path / "other", _mixtures(ImageSpec(3, 40, 24), 4, seed=1))
    for file in (tmp_path / "other").iterdir():
        file.rename(folder / f"wide-{file.name}")
    run, out = tmp_path / "run", tmp_path / "parts"
    assert _train(folder, run, "--resize", "32", "32", "--no-progress") == 0
    assert _run("demix", run, folder, "-o", out, *FIT) == 0
    with Image.open(out / "blob" / "wide-scan-00.png") as png:
        assert png.size == (24, 40)
    assert np.load(out / "curves.npy").shape == (12, 3, 32, 32)


def _bad(tmp_path: Path, make) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    make(folder)
    return folder


def _truncated(folder: Path) -> None:
    _save(folder, _mixtures(ImageSpec(1, 16, 16), 12))
    data = (folder / "scan-05.png").read_bytes()
    (folder / "scan-05.png").write_bytes(data[: len(data) // 2])


def _nan_npy(folder: Path) -> None:
    stack = _mixtures(ImageSpec(1, 16, 16), 12)
    stack[3, 0, 2, 2] = np.nan
    np.save(folder / "stack.npy", stack)


BAD_FOLDERS = {
    "empty": (lambda folder: None, "holds no images"),
    "fewer than a batch and validation": (
        lambda folder: _save(folder, _mixtures(ImageSpec(1, 16, 16), 4)),
        "after 1 held out, fewer than one batch of 4",
    ),
    "mixed sizes": (
        lambda folder: (
            _save(folder, _mixtures(ImageSpec(1, 16, 16), 8)),
            Image.new("L", (24, 16)).save(folder / "wide.png"),
        ),
        "different sizes: 8 16 x 16 px (scan-00, scan-01, ...); 1 16 x 24 px (wide). Bring "
        "them to one size with --resize H W",
    ),
    "mixed channels": (
        lambda folder: (
            _save(folder, _mixtures(ImageSpec(1, 16, 16), 8)),
            Image.new("RGB", (16, 16)).save(folder / "colour.png"),
        ),
        "different channel counts: 8 grey",
    ),
    "truncated image": (_truncated, "scan-05.png"),
    "not an image": (
        lambda folder: (
            _save(folder, _mixtures(ImageSpec(1, 16, 16), 8)),
            (folder / "notes.png").write_text("not a picture"),
        ),
        "notes.png",
    ),
    "other files": (
        lambda folder: (
            _save(folder, _mixtures(ImageSpec(1, 16, 16), 8)),
            (folder / "README.txt").write_text("scans of May"),
        ),
        "README.txt",
    ),
    "NaN in a .npy": (_nan_npy, "1 NaN or infinite values"),
}


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_a_bad_folder_is_one_paragraph_with_nothing_written(tmp_path, capsys, case):
    make, expected = BAD_FOLDERS[case]
    folder = _bad(tmp_path, make)
    run = tmp_path / "run"
    assert _train(folder, run) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert err.startswith("demixgan: error:") and "Traceback" not in err
    assert err.strip().count("\n") == 0  # one paragraph
    assert not run.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


@pytest.fixture(scope="module")
def grey_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("grey")
    folder = _save(root / "scans", _mixtures(ImageSpec(1, 16, 16), 12))
    assert _train(folder, root / "run", "--no-progress") == 0
    return root / "run"


@pytest.mark.parametrize(
    "image, expected",
    [
        (ImageSpec(1, 24, 24), "are grey 24x24 images, but the checkpoint"),
        (ImageSpec(3, 16, 16), "are RGB 16x16 images, but the checkpoint"),
    ],
    ids=["other size", "other channels"],
)
def test_demix_of_files_unlike_the_runs_is_refused_with_nothing_written(
    grey_run, tmp_path, capsys, image, expected
):
    folder = _save(tmp_path / "new", _mixtures(image, 3))
    out = tmp_path / "parts"
    for task in ("demix", "denoise"):
        assert _run(task, grey_run, folder, "-o", out, *FIT) == 2
        err = capsys.readouterr().err
        assert expected in err and "trained on grey 16x16 images" in err and "Traceback" not in err
        assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def test_demix_names_a_truncated_input_file_and_writes_nothing(grey_run, tmp_path, capsys):
    folder = tmp_path / "new"
    _truncated(folder)
    out = tmp_path / "parts"
    assert _run("demix", grey_run, folder, "-o", out, *FIT) == 2
    err = capsys.readouterr().err
    assert "scan-05.png" in err and "truncated" in err and "Traceback" not in err
    assert not out.exists()


def test_known_components_are_drawn_in_a_fixed_or_learned_colour(tmp_path):
    """A denoising-GAN on RGB mixtures: red lines drawn red, a learned colour trained with the
    generator, kept in the checkpoint and used by the latent fit."""
    from demixgan.inference.api import load
    from demixgan.spec.config import parse_config
    from demixgan.training.loop import train

    stack = tmp_path / "mixtures.npy"
    np.save(stack, np.round(_mixtures(ImageSpec(3, 16, 16), 32) * 255).astype(np.uint8))
    components = [
        {"name": "blob", "kind": "learned", "latent_dim": 8, "hidden": 16, "channels": 8},
        {"name": "red", "kind": "known", "family": "lines", "level": 1, "color": "#ff0000"},
        {"name": "pen", "kind": "known", "family": "sines", "level": 1, "color": "learned"},
    ]
    config = parse_config(
        {
            "data": {"mixtures": str(stack)},
            "components": components,
            "discriminator": {"channels": 8},
            "train": {"batch_size": 8, "max_steps": 3, "lr_g": 0.05, "log_every": 1},
        },
        name="coloured",
    )
    train(config, tmp_path / "run", progress=False)
    trained = load(tmp_path / "run")
    model = trained.model
    g = torch.Generator().manual_seed(0)
    parts = model.components(model.sample_latents(4, g), model.sample_known(4, g))
    red = parts[:, 1].amax(dim=(0, 2, 3))
    assert red.tolist() == [1.0, 0.0, 0.0]
    pen = torch.sigmoid(model.colors["pen"].logits)
    assert not torch.allclose(pen, torch.sigmoid(torch.tensor(2.0)))  # trained, then saved
    fitted = model.with_known_fitted()
    z = torch.zeros(2, fitted.generators["pen"].latent_dim)
    drawn = fitted.generators["pen"](z).amax(dim=(0, 2, 3))
    torch.testing.assert_close(drawn / drawn.max(), pen / pen.max())


def test_a_colour_for_grey_mixtures_or_a_learned_part_is_refused(tmp_path, capsys):
    folder = _save(tmp_path / "scans", _mixtures(ImageSpec(1, 16, 16), 12))
    for components, expected in (
        ("blob=dcgan,pen=sines:1:learned", "a colour needs RGB mixtures"),
        ("blob=dcgan,pen=sines:1:#ff00zz", "components[1].color must be"),
    ):
        run = tmp_path / "run"
        args = ["train", "--mixtures", folder, "--components", components, "--run-dir", run]
        assert _run(*args, *TINY) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, err
        assert not run.exists()


def test_evaluate_shows_residuals_of_the_held_out_mixtures_and_scores_with_truth(
    grey_run, tmp_path, capsys
):
    fast = [*FIT, "--methods", "fit,split,mixture"]
    grid, scores = tmp_path / "grid.png", tmp_path / "scores.json"
    assert _run("evaluate", grey_run, *fast, "--grid", grid, "--json", scores) == 0
    out = capsys.readouterr().out
    assert "residual RMS" in out and "held-out validation mixtures" in out
    assert grid.is_file() and json.loads(scores.read_text())["n"] == 1  # 12 files, 1 held out
    mixtures = _mixtures(ImageSpec(1, 16, 16), 6, seed=5)
    folder = _save(tmp_path / "new", mixtures)
    truth = tmp_path / "truth.npy"
    np.save(truth, np.stack([0.3 * mixtures, 0.7 * mixtures], axis=1))
    assert _run("evaluate", grey_run, *fast, "--mixtures", folder, "--truth", truth) == 0
    out = capsys.readouterr().out
    assert "blob PSNR" in out and "split y/2" in out and "over 6 test mixtures" in out


def test_jpeg_tiff_and_16_bit_files_are_read_as_stored_and_scaled_per_batch(tmp_path):
    from demixgan.data.observed import load_mixtures

    rgb = np.round(_mixtures(ImageSpec(3, 16, 24), 2) * 255).astype(np.uint8)
    Image.fromarray(rgb[0].transpose(1, 2, 0)).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(rgb[1].transpose(1, 2, 0)).save(tmp_path / "b.tif")
    stack = load_mixtures(tmp_path)
    assert stack.pixels.dtype == torch.uint8 and stack.shape == (2, 3, 16, 24)
    assert [s.name for s in stack.sources] == ["a", "b"]
    np.testing.assert_array_equal(stack.pixels[1].numpy(), rgb[1])  # TIFF: lossless
    assert np.abs(stack[0].numpy() - rgb[0] / 255).mean() < 0.03  # JPEG: lossy, close
    grey = tmp_path / "grey"
    grey.mkdir()
    deep = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 250
    Image.fromarray(deep).save(grey / "deep.tif")
    Image.fromarray(deep).save(grey / "deep.png")
    deep_stack = load_mixtures(grey)
    assert [s.bits for s in deep_stack.sources] == [16, 16]
    np.testing.assert_allclose(deep_stack[:].numpy()[:, 0], np.stack([deep, deep]) / 65535)


def test_the_photo_example_writes_mixtures_that_are_the_sum_of_their_truth(tmp_path):
    import runpy

    script = Path(__file__).resolve().parent.parent / "examples" / "photo_mixtures.py"
    builder = runpy.run_path(str(script))
    out = tmp_path / "photos"
    args = [str(out), "--size", "32", "--train", "3", "--validation", "2", "--test", "2"]
    assert builder["main"](args) == 0
    assert len(list((out / "train").iterdir())) == 3 and not (out / "truth/train.npy").exists()
    truth = np.load(out / "truth" / "test.npy")
    assert truth.shape == (2, 2, 3, 32, 32)
    with Image.open(out / "test" / "00001.png") as png:
        mixture = np.asarray(png, dtype=np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(truth[1].sum(0), mixture, atol=0.5 / 255 + 1e-6)
    assert builder["main"](args) == 2  # an existing directory is not overwritten


def test_a_run_on_own_mixtures_trains_the_unsupervised_peers_but_has_no_bound(
    grey_run, tmp_path, capsys
):
    """Own mixtures have no clean parts: MixIT and RemixIT learn from the stored mixtures (read
    per batch), the supervised bound is refused in one paragraph with nothing written."""
    run = tmp_path / "run"
    shutil.copytree(grey_run, run)
    quick = ["--steps", "3", "--remix-steps", "1", "--width", "4", "--batch-size", "4"]
    assert _run("separator", run, "--peer", "supervised", *quick) == 2
    err = capsys.readouterr().err
    assert "clean parts are unknown" in err and "Traceback" not in err
    assert not (run / "peers" / "supervised").exists()
    for kind in ("mixit", "remixit"):
        assert _run("separator", run, "--peer", kind, *quick) == 0
        assert (run / "peers" / kind).is_dir()


def _denoising_run(tmp_path: Path, family: str) -> tuple[Path, Path]:
    """12 own grey 16 x 16 mixtures and a tiny denoising-GAN of them under ``family``."""
    folder = _save(tmp_path / "scans", _mixtures(ImageSpec(1, 16, 16), 12))
    components = ["--components", f"blob=dcgan,pen={family}:1"]
    run = tmp_path / "run"
    assert _run("train", "--mixtures", folder, *components, *TINY, "--run-dir", run) == 0
    return folder, run


def test_own_mixtures_denoised_at_a_level_chosen_per_image(tmp_path, capsys):
    """A denoising-GAN of your own mixtures: --corruption-level auto needs the threshold given
    (no truth to choose it on): one paragraph and nothing written without it; with it, a
    denoised image per input."""
    folder, run = _denoising_run(tmp_path, "sines")
    out = tmp_path / "clean"
    assert _run("denoise", run, folder, "-o", out, *FIT, "--corruption-level", "auto") == 2
    err = capsys.readouterr().err
    assert "give the threshold (--level-threshold" in err and "Traceback" not in err
    assert not out.exists()
    given = ("--corruption-level", "auto", "--level-threshold", "0.01")
    assert _run("denoise", run, folder, "-o", out, *FIT, *given) == 0
    assert np.load(out / "blob.npy").shape == (12, 1, 16, 16)


def test_own_mixtures_under_lines_need_no_threshold(tmp_path, capsys):
    """The lines' fit counts its own lines, so --corruption-level auto needs no threshold even
    where there is no truth to choose one on."""
    folder, run = _denoising_run(tmp_path, "lines")
    out = tmp_path / "clean"
    assert _run("denoise", run, folder, "-o", out, *FIT, "--corruption-level", "auto") == 0
    assert "counted per image by the fit itself" in capsys.readouterr().out
    assert np.load(out / "blob.npy").shape == (12, 1, 16, 16)
