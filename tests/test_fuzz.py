"""Property-based fuzzing of every command and API entry point (Hypothesis).

Whatever array, option value, config override or sidecar edit Hypothesis makes up, the answer
is a result (exit 0, finite outputs) or one clear error (exit 2, a message, the file system
unchanged), never a traceback. The CLI runs in-process (``main``), so a traceback is an
exception escaping it. Examples are few and derandomized in CI; ``DEMIXGAN_FUZZ=long`` runs
many more (tests/conftest.py registers both profiles).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from demixgan.cli.main import build_parser, main
from demixgan.errors import DemixganError
from demixgan.inference.options import FitOptions, SeparatorOptions
from demixgan.spec.config import load_config

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny-demix.toml"
FAST = ["--iterations", "1", "--restarts", "1"]
SLOW_FIXTURES = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    """A fresh working directory (Hypothesis reruns a test body many times in one tmp_path)."""
    with tempfile.TemporaryDirectory() as folder:
        here = os.getcwd()
        os.chdir(folder)
        try:
            yield Path(folder)
        finally:
            os.chdir(here)


def listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def cli(argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of ``demixgan argv`` in this process; an escaping exception
    (a traceback for a user) fails the test."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse's own errors: usage and status 2
            status = exit_.code
    return status, err.getvalue()


def assert_clear_error_or_result(status: int, stderr: str, before: dict, root: Path) -> None:
    assert status in (0, 2), stderr
    assert "Traceback" not in stderr
    after = listing(root)
    if status == 2:
        assert stderr.strip(), "an error without a message"
        assert after == before, f"a failure changed files: {set(after) ^ set(before)}"
        return
    for name, content in after.items():
        if name.endswith(".npy") and name not in before:
            values = np.load(io.BytesIO(content), allow_pickle=False)
            assert np.isfinite(values).all(), f"{name} holds NaN or inf with exit 0"


# -- arrays -----------------------------------------------------------------------------

DTYPES = st.sampled_from(
    [np.float32, np.float64, np.float16, np.uint8, np.uint16, np.int64, np.int8, bool, np.complex64]
)
SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4),
    st.sampled_from([(28, 28), (2, 28, 28), (2, 1, 28, 28), (1, 2, 28, 28), (3, 27, 28)]),
)


@st.composite
def arrays(draw) -> np.ndarray:
    dtype = np.dtype(draw(DTYPES))
    shape = draw(SHAPES)
    if dtype.kind == "f":
        fill = st.floats(allow_nan=True, allow_infinity=True, width=8 * min(dtype.itemsize, 4))
    elif dtype.kind == "c":
        fill = st.complex_numbers(max_magnitude=10, width=64)
    elif dtype.kind == "b":
        fill = st.booleans()
    else:
        info = np.iinfo(dtype)
        fill = st.integers(int(info.min), int(info.max))
    return draw(hnp.arrays(dtype, shape, elements=fill, fill=fill))


@SLOW_FIXTURES
@given(array=arrays(), command=st.sampled_from(["demix", "denoise", "cs"]))
def test_any_array_is_a_result_or_one_clear_error(tiny_runs, array, command):
    run = tiny_runs["denoise" if command == "denoise" else "demix"]
    extra = ["--measurements", "20"] if command == "cs" else []
    with sandbox() as root:
        np.save(root / "x.npy", array)
        before = listing(root)
        status, stderr = cli([command, str(run), "x.npy", "-o", "out", *FAST, *extra])
        assert_clear_error_or_result(status, stderr, before, root)


@SLOW_FIXTURES
@given(truth=arrays())
def test_any_truth_is_a_result_or_one_clear_error(tiny_runs, truth):
    with sandbox() as root:
        np.save(root / "x.npy", np.full((2, 28, 28), 0.4, np.float32))
        np.save(root / "truth.npy", truth)
        before = listing(root)
        argv = ["demix", str(tiny_runs["demix"]), "x.npy", "-o", "out", "--truth", "truth.npy"]
        status, stderr = cli([*argv, *FAST])
        assert_clear_error_or_result(status, stderr, before, root)


# -- option values ---------------------------------------------------------------------

NUMBER_TEXT = st.one_of(
    st.sampled_from(["inf", "-inf", "nan", "1e400", "-0", "0x10", "1_0", " 3", "", "abc"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def value_flags(words: list[str]) -> list[str]:
    parser = build_parser()
    for word in words:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[word]
    skipped = {"-o", "--output", "--truth", "--json", "--separator", "--teacher", "--resume"}
    skipped |= {"--data-dir", "--checkpoints", "--set", "--digit-source", "--methods"}
    return [
        max(a.option_strings, key=len)
        for a in parser._actions
        if a.option_strings
        and a.nargs != 0
        and not skipped & set(a.option_strings)
        and "-h" not in a.option_strings
    ]


COMMANDS = {
    "demix": lambda runs: ["demix", str(runs["demix"]), "X", "-o", "out", *FAST],
    "denoise": lambda runs: ["denoise", str(runs["denoise"]), "X", "-o", "out", *FAST],
    "cs": lambda runs: ["cs", str(runs["demix"]), "X", "-o", "out", "--measurements", "20", *FAST],
    "evaluate": lambda runs: [
        "evaluate",
        str(runs["demix"]),
        "--n",
        "2",
        "--methods",
        "split",
        *FAST,
    ],
    "separator": lambda runs: [
        "separator",
        str(runs["demix"]),
        "-o",
        "sep",
        "--steps",
        "1",
        "--remix-steps",
        "0",
        "--width",
        "4",
        "--batch-size",
        "2",
    ],
    "data show": lambda runs: ["data", "show", "digit+sines", "-n", "2", "-o", "g.png"],
}


@st.composite
def flag_and_value(draw) -> tuple[str, str, str]:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    flag = draw(st.sampled_from(value_flags(command.split())))
    return command, flag, draw(NUMBER_TEXT)


def _replace(argv: list[str], flag: str, value: str) -> list[str]:
    if flag in argv:
        at = argv.index(flag)
        argv = argv[:at] + argv[at + 2 :]
    return [*argv, f"{flag}={value}"]


@SLOW_FIXTURES
@given(case=flag_and_value())
@example(case=("cs", "--lr", "3.402823466385288e+37"))  # once overflowed Adam's float32 step
def test_any_option_value_is_a_result_or_one_clear_error(tiny_runs, case):
    command, flag, value = case
    with sandbox() as root:
        np.save(root / "X", np.full((2, 28, 28), 0.4, np.float32))
        before = listing(root)
        argv = [word if word != "X" else "X.npy" for word in COMMANDS[command](tiny_runs)]
        status, stderr = cli(_replace(argv, flag, value))
        assert_clear_error_or_result(status, stderr, before, root)


@given(
    cls=st.sampled_from([FitOptions, SeparatorOptions]),
    data=st.data(),
)
def test_options_objects_refuse_bad_values_with_one_error(cls, data):
    from dataclasses import fields

    field = data.draw(st.sampled_from([f.name for f in fields(cls)]))
    value = data.draw(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(min_value=-(2**70), max_value=2**70),
            st.text(max_size=5),
            st.booleans(),
            st.none(),
        )
    )
    try:
        cls(**{field: value})
    except DemixganError as error:
        assert field in str(error)


# -- config overrides ------------------------------------------------------------------

CONFIG_KEYS = [
    "seed",
    "name",
    "device",
    "data.recipe",
    "data.level",
    "data.limit",
    "data.clip",
    "data.split",
    "data.mixtures",
    "train.lr",
    "train.epochs",
    "train.max_steps",
    "train.batch_size",
    "train.loss",
    "train.checkpoint_every",
    "train.keep_last",
    "train.keep_every",
    "train.log_every",
    "components.digit.latent_dim",
    "components.digit.hidden",
    "components.digit.channels",
    "components.digit.kind",
    "components.sines.family",
    "discriminator.channels",
    "discriminator.spectral_norm",
    "bogus.key",
]
OVERRIDE_VALUES = st.one_of(
    NUMBER_TEXT,
    st.sampled_from(["true", "[1, 2]", "{a = 1}", '"text"', "'", "[[[[[[[[", "2e9"]),
    st.text(max_size=8),
)


@given(key=st.sampled_from(CONFIG_KEYS), value=OVERRIDE_VALUES)
def test_any_config_override_loads_or_is_one_clear_error(key, value):
    try:
        config = load_config(TINY, [f"{key}={value}"])
    except DemixganError as error:
        assert str(error).strip()
        return
    assert 0 < config.train.lr_g < float("inf") and config.train.batch_size >= 1


@settings(max_examples=8)
@given(key=st.sampled_from(CONFIG_KEYS[:20]), value=OVERRIDE_VALUES)
def test_train_with_any_override_trains_or_writes_nothing(key, value):
    with sandbox() as root:
        argv = ["train", "--config", str(TINY), "--no-progress", "--run-dir", "r"]
        argv += ["--set", "train.max_steps=1", "--set", "data.limit=16", "--set", f"{key}={value}"]
        status, stderr = cli(argv)
        assert_clear_error_or_result(status, stderr, {}, root)


# -- tampered sidecars -----------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node, prefix=()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@pytest.fixture(scope="module")
def sidecar_of(tiny_runs) -> tuple[Path, dict]:
    path = sorted((tiny_runs["demix"] / "checkpoints").glob("step-*.json"))[-1]
    return path, json.loads(path.read_text())


@SLOW_FIXTURES
@given(data=st.data())
def test_any_sidecar_edit_loads_or_is_one_clear_error(tiny_runs, sidecar_of, data):
    path, sidecar = sidecar_of
    target = data.draw(st.sampled_from(_paths(sidecar)))
    value = data.draw(JSON_VALUES)
    edited = json.loads(json.dumps(sidecar))
    node = edited
    for key in target[:-1]:
        node = node[key]
    node[target[-1]] = value
    with sandbox() as root:
        run = Path(shutil.copytree(tiny_runs["demix"], root / "run"))
        (run / "checkpoints" / path.name).write_text(json.dumps(edited))
        weights = run / "checkpoints" / path.with_suffix(".safetensors").name
        np.save(root / "x.npy", np.full((2, 28, 28), 0.4, np.float32))
        before = listing(root)
        status, stderr = cli(["demix", str(weights), "x.npy", "-o", "out", *FAST])
        assert_clear_error_or_result(status, stderr, before, root)
