"""The command line as a user runs it: real processes, exit codes, messages, files (the table
of bad `data show` inputs runs in this process: a process per case costs seconds each)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image


def demixgan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "demixgan", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def assert_user_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert needle in result.stderr


def test_help_is_fast_and_lists_commands():
    start = time.perf_counter()
    result = demixgan("--help")
    elapsed = time.perf_counter() - start
    assert result.returncode == 0
    assert "data" in result.stdout
    assert elapsed < 1.5, f"'demixgan --help' took {elapsed:.2f} s"


def test_import_does_not_load_torch():
    code = "import sys, demixgan; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_data_show_writes_a_grid_of_components_and_mixtures(tmp_path):
    output = tmp_path / "grid.png"
    result = demixgan("data", "show", "digit+sines", "--level", "2", "-n", "16", "-o", str(output))
    assert result.returncode == 0, result.stderr
    with Image.open(output) as image:
        width, height = image.size
    assert width > 2 * height  # three panels side by side: digit, sines, mixture
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_data_info_lists_sources_families_and_recipes():
    result = demixgan("data", "info")
    assert result.returncode == 0, result.stderr
    for needle in ("mnist-embedded", "fashion-mnist", "sines", "waves", "lines", "digit8+dress"):
        assert needle in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["digit+noise"], "Unknown recipe"),
        (["digit+sines", "--level", "0"], "level"),
        (["digit+sines", "--level", "99"], "level"),
        (["digit+sines", "-n", "0"], "-n must be"),
    ],
)
def test_bad_show_input_is_a_clear_error_and_writes_nothing(tmp_path, args, needle, capsys):
    from demixgan.cli.main import main

    output = tmp_path / "grid.png"
    assert main(["data", "show", *args, "-o", str(output)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not output.exists()


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["train", "--config", "x.toml", "-o", "x"], "usage: demixgan train "),
        (["data", "info", "--bogus"], "usage: demixgan data info "),
    ],
)
def test_an_unknown_flag_shows_the_usage_of_the_command_typed(argv, usage, capsys):
    from demixgan.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert usage in err and "unrecognized arguments" in err
    assert "COMMAND ..." not in err


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = demixgan("data", "show", "digit+sines", "-o", str(blocker / "grid.png"))
    assert_user_error(result, "Cannot write")


def test_missing_data_is_a_clear_error(tmp_path):
    env = {
        "DEMIXGAN_CACHE": str(tmp_path / "cache"),
        "DEMIXGAN_DATA": str(tmp_path / "nothing-here"),
        "DEMIXGAN_MIRRORS": "http://127.0.0.1:9/",
    }
    output = tmp_path / "grid.png"
    result = demixgan(
        "data", "show", "digit+sines", "--digit-source", "mnist", "-o", str(output), env=env
    )
    assert_user_error(result, "train-images-idx3-ubyte")
    assert not output.exists()
    assert not any(Path(tmp_path / "cache").rglob("*idx*"))
