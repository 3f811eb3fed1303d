"""Bad inputs to every command: arrays and images, option values, paths, configs, names.

Option cases are generated from the CLI's own parser, so a flag added tomorrow is fuzzed
without touching this file.
"""

from __future__ import annotations

import argparse
import gzip
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from assets import SMALL_SEPARATOR
from PIL import Image
from runner import Case

Writer = Callable[[Path], None]
FAST_FIT = ["--iterations", "2", "--restarts", "1"]
QUICK_EVAL = ["--n", "3", "--methods", "split"]


def _npy(array: np.ndarray) -> Writer:
    return lambda path: np.save(path, array, allow_pickle=array.dtype == object)


def _bytes(data: bytes) -> Writer:
    return lambda path: path.write_bytes(data)


def _png(array: np.ndarray) -> Writer:
    return lambda path: Image.fromarray(array).save(path)


def _truncated_npy(path: Path) -> None:
    np.save(path, np.zeros((3, 28, 28), np.float32))
    path.write_bytes(path.read_bytes()[:200])


def _self_link(path: Path) -> None:
    os.symlink(path.name, path)


def _directory(path: Path) -> None:
    path.mkdir()


GOOD = np.full((3, 28, 28), 0.4, np.float32)
#: (file name, writer, expected outcome): what users hand to demix / denoise / cs.
INPUT_FILES: list[tuple[str, Writer | None, str]] = [
    ("zero-d.npy", _npy(np.array(3.0)), "error"),
    ("one-d.npy", _npy(np.zeros(784, np.float32)), "error"),
    ("wrong-size.npy", _npy(np.zeros((3, 27, 28), np.float32)), "error"),
    ("two-channels.npy", _npy(np.zeros((3, 2, 28, 28), np.float32)), "error"),
    ("five-d.npy", _npy(np.zeros((3, 2, 2, 28, 28), np.float32)), "error"),
    ("empty.npy", _npy(np.zeros((0, 28, 28), np.float32)), "error"),
    ("one-nan.npy", _npy(np.where(np.eye(28, dtype=bool), np.nan, GOOD)), "error"),
    ("one-inf.npy", _npy(np.where(np.eye(28, dtype=bool), np.inf, GOOD)), "error"),
    ("huge-values.npy", _npy(np.full((3, 28, 28), 3e38, np.float32)), "error"),
    ("negative.npy", _npy(np.full((3, 28, 28), -5.0, np.float32)), "error"),
    ("too-bright.npy", _npy(np.full((3, 28, 28), 100.0, np.float32)), "error"),
    ("float64.npy", _npy(GOOD.astype(np.float64)), "ok"),
    ("float16.npy", _npy(GOOD.astype(np.float16)), "ok"),
    ("big-endian.npy", _npy(GOOD.astype(">f4")), "ok"),
    ("fortran.npy", _npy(np.asfortranarray(GOOD)), "ok"),
    ("uint8.npy", _npy(np.full((3, 28, 28), 100, np.uint8)), "ok"),
    ("int64-in-range.npy", _npy(np.full((3, 28, 28), 100, np.int64)), "ok"),
    ("int64-out-of-range.npy", _npy(np.full((3, 28, 28), 1000, np.int64)), "error"),
    ("uint16.npy", _npy(np.full((3, 28, 28), 30000, np.uint16)), "ok"),
    ("bool.npy", _npy(np.ones((3, 28, 28), bool)), "error"),
    ("complex.npy", _npy(np.ones((3, 28, 28), np.complex64)), "error"),
    ("strings.npy", _npy(np.array([["a"] * 28] * 28)), "error"),
    ("objects.npy", _npy(np.array([{"a": 1}] * 3, dtype=object)), "error"),
    ("structured.npy", _npy(np.zeros((3, 28), dtype=[("a", "f4"), ("b", "i4")])), "error"),
    ("truncated.npy", _truncated_npy, "error"),
    ("random-bytes.npy", _bytes(os.urandom(2048)), "error"),
    ("zero-bytes.npy", _bytes(b""), "error"),
    ("huge-image.npy", _npy(np.zeros((1, 2000, 2000), np.float32)), "error"),
    ("self-link.npy", _self_link, "error"),
    ("a-directory.npy", _directory, "error"),
    ("missing.npy", None, "error"),
    ("notes.txt", _bytes(b"0.5 0.5\n"), "error"),
    ("corrupt.png", _bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200)), "error"),
    ("rgba.png", _png(np.zeros((28, 28, 4), np.uint8)), "error"),
    ("wrong-size.png", _png(np.zeros((30, 30), np.uint8)), "error"),
    ("grey.png", _png(np.full((28, 28), 90, np.uint8)), "ok"),
    ("sixteen-bit.png", _png(np.full((28, 28), 20000, np.uint16)), "ok"),
    ("empty.png", _bytes(b""), "error"),
    ("gzip-named.npy", _bytes(gzip.compress(b"\x00" * 1000)), "error"),
]


def _writer_case(
    category: str, name: str, argv: list[str], files: dict[str, Writer | None], expect: str
) -> Case:
    def prepare(sandbox: Path) -> None:
        for file_name, writer in files.items():
            if writer is not None:
                writer(sandbox / file_name)

    return Case(category, name, argv, prepare, expect)


def input_cases() -> Iterator[Case]:
    """Every bad (and a few good) input file, to each command that reads images."""
    commands = {
        "demix": ["demix", "{run}"],
        "denoise": ["denoise", "{denoise_run}"],
        "cs": ["cs", "{run}", "--measurements", "20"],
    }
    for command, head in commands.items():
        for file_name, writer, expect in INPUT_FILES:
            argv = [*head, file_name, "-o", "out", *FAST_FIT]
            yield _writer_case(
                "bad input", f"{command} {file_name}", argv, {file_name: writer}, expect
            )


TRUTHS: list[tuple[str, str, Writer | None, str]] = [
    ("demix", "truth-three-parts.npy", _npy(np.zeros((3, 3, 1, 28, 28), np.float32)), "error"),
    ("demix", "truth-wrong-count.npy", _npy(np.zeros((2, 2, 1, 28, 28), np.float32)), "error"),
    ("demix", "truth-nan.npy", _npy(np.full((3, 2, 1, 28, 28), np.nan, np.float32)), "error"),
    ("demix", "truth-zero-d.npy", _npy(np.array(1.0)), "error"),
    ("demix", "truth-wrong-size.npy", _npy(np.zeros((3, 2, 1, 20, 20), np.float32)), "error"),
    ("demix", "missing-truth.npy", None, "error"),
    ("demix", "truth-grey-parts.npy", _npy(np.zeros((3, 2, 28, 28), np.float32)), "ok"),
    ("denoise", "truth-two-parts.npy", _npy(np.zeros((3, 2, 28, 28), np.float32)), "error"),
    ("denoise", "truth-clean.npy", _npy(np.zeros((3, 28, 28), np.float32)), "ok"),
    ("denoise", "truth-inf.npy", _npy(np.full((3, 28, 28), np.inf, np.float32)), "error"),
    ("cs", "truth-objects.npy", _npy(np.array([1, "a"], dtype=object)), "error"),
]


def truth_cases() -> Iterator[Case]:
    runs = {"demix": "{run}", "denoise": "{denoise_run}", "cs": "{run}"}
    for command, file_name, writer, expect in TRUTHS:
        extra = ["--measurements", "20"] if command == "cs" else []
        argv = [command, runs[command], "{x}", "-o", "out", "--truth", file_name]
        yield _writer_case(
            "bad input",
            f"{command} --truth {file_name}",
            [*argv, *extra, *FAST_FIT],
            {file_name: writer},
            expect,
        )


MEASUREMENTS: list[tuple[str, Writer, str]] = [
    ("no-rows.npy", _npy(np.zeros((0, 100), np.float32)), "error"),
    ("no-columns.npy", _npy(np.zeros((4, 0), np.float32)), "error"),
    ("three-d.npy", _npy(np.zeros((4, 10, 10), np.float32)), "error"),
    ("nan.npy", _npy(np.full((4, 100), np.nan, np.float32)), "error"),
    ("too-many.npy", _npy(np.zeros((2, 10 * 784 + 1), np.float32)), "error"),
    ("huge.npy", _npy(np.full((4, 100), 1e38, np.float32)), "error"),
    ("good.npy", _npy(np.full((4, 100), 0.1, np.float32)), "ok"),
]


def measurement_cases() -> Iterator[Case]:
    for file_name, writer, expect in MEASUREMENTS:
        argv = ["cs", "{run}", file_name, "-o", "out", *FAST_FIT]
        yield _writer_case(
            "bad input", f"cs measurements {file_name}", argv, {file_name: writer}, expect
        )


#: A quick, valid command line per command; option cases add one bad flag to it.
BASES: dict[str, list[str]] = {
    "demix": ["demix", "{run}", "{x}", "-o", "out", *FAST_FIT],
    "denoise": ["denoise", "{denoise_run}", "{x}", "-o", "out", *FAST_FIT],
    "cs": ["cs", "{run}", "{x}", "-o", "out", "--measurements", "20", *FAST_FIT],
    "evaluate": ["evaluate", "{run}", "--n", "3", "--methods", "fit,split", *FAST_FIT],
    "separator": ["separator", "{run}", "-o", "sep", "--steps", "2", *SMALL_SEPARATOR],
    "data show": ["data", "show", "digit+sines", "-n", "4", "-o", "grid.png"],
    "train-classifier": ["train-classifier", "--epochs", "1", "-o", "clf"],
    "demo": ["demo", "--n", "2", "-o", "demo", "--no-progress"],
    "reproduce": ["reproduce", "list"],
}
#: Values no numeric flag may accept; "either" ones may be legitimate for some flags.
BAD_VALUES = {"inf": "error", "nan": "error", "99999999999999999999999": "error", "abc": "error"}
MAYBE_VALUES = {"-1": "either", "0": "either"}
#: Flags whose bad values are checked by other cases (paths, names) or that take text.
SKIPPED_FLAGS = {"-h", "-o", "--output", "--truth", "--json", "--data-dir", "--separator"}
SKIPPED_FLAGS |= {"--teacher", "--resume", "--checkpoints", "--set", "--digit-source"}
SKIPPED_FLAGS |= {"--methods", "--recipe", "--data", "--profile"}


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    for word in words:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


def option_cases() -> Iterator[Case]:
    """Each value-taking flag of each command, given values that no flag should accept."""
    from demixgan.cli.main import build_parser

    root = build_parser()
    for command, base in BASES.items():
        parser = _subparser(root, command.split())
        for action in parser._actions:
            flag = max(action.option_strings, key=len, default=None)
            if flag is None or action.nargs == 0 or flag in SKIPPED_FLAGS:
                continue
            values = dict(BAD_VALUES)
            if action.choices is None:
                values.update(MAYBE_VALUES)
            if action.type is float:  # 1e23 is a finite number: a poor choice, not an error
                values["99999999999999999999999"] = "either"
            for value, expect in values.items():
                argv = [*_without(base, flag), flag, value]
                yield Case("bad input", f"{command} {flag} {value}", argv, None, expect)


def _without(argv: list[str], flag: str) -> list[str]:
    """``argv`` less ``flag`` and its value (so the bad value is the only one given)."""
    if flag not in argv:
        return list(argv)
    at = argv.index(flag)
    return argv[:at] + argv[at + 2 :]


def _file(path: Path) -> None:
    path.write_text("not a directory\n")


def _full_dir(path: Path) -> None:
    path.mkdir()
    (path / "keep.txt").write_text("earlier result\n")


OUTPUTS: list[tuple[str, Writer | None, str]] = [
    ("existing-file", _file, "error"),
    ("full-dir", _full_dir, "error"),
    ("existing-file/below", None, "error"),
    ("/proc/demixgan-sweep-output", None, "error"),
]


#: Outputs a user may legitimately name: a file given by name is replaced, and a classifier
#: may be saved into a directory holding other (non-checkpoint) files.
LEGITIMATE_OUTPUTS = {
    ("evaluate --json", "existing-file"): "either",
    ("train-classifier -o", "full-dir"): "either",
}


def output_cases() -> Iterator[Case]:
    """Outputs that exist, cannot be made, or lie under a file, for every writer."""
    writers = {
        "demix -o": ["demix", "{run}", "{x}", *FAST_FIT, "-o"],
        "denoise -o": ["denoise", "{denoise_run}", "{x}", *FAST_FIT, "-o"],
        "cs -o": ["cs", "{run}", "{x}", "--measurements", "20", *FAST_FIT, "-o"],
        "separator -o": ["separator", "{run}", "--steps", "2", *SMALL_SEPARATOR, "-o"],
        "evaluate --json": ["evaluate", "{run}", "--n", "3", "--methods", "split", "--json"],
        "data show -o": ["data", "show", "digit+sines", "-n", "4", "-o"],
        "train-classifier -o": ["train-classifier", "--epochs", "1", "-o"],
        "demo -o": ["demo", "--n", "2", "--no-progress", "-o"],
        "reproduce -o": ["reproduce", "demix-test", "--profile", "smoke", "-o"],
        "train --run-dir": ["train", "--config", "{config}", "--no-progress", "--run-dir"],
    }
    for label, argv in writers.items():
        for target, writer, expect in OUTPUTS:
            prepare_target = target.split("/")[0]
            files = {prepare_target: writer if writer else _file}
            if target.startswith("/"):
                files = {}
            expect = LEGITIMATE_OUTPUTS.get((label, target), expect)
            yield _writer_case("bad input", f"{label} {target}", [*argv, target], files, expect)
    yield _writer_case(
        "bad input",
        "evaluate --json an existing directory",
        ["evaluate", "{run}", "--n", "3", "--methods", "split", "--json", "scores"],
        {"scores": _directory},
        "error",
    )
    yield _writer_case(
        "bad input",
        "data show -o an existing directory named .png",
        ["data", "show", "digit+sines", "-n", "4", "-o", "grid.png"],
        {"grid.png": _directory},
        "error",
    )


def _text(content: str) -> Writer:
    return lambda path: path.write_text(content)


TRAIN_SETS: list[tuple[str, str]] = [
    ("no.such.key=1", "error"),
    ("train.lr_g=inf", "error"),
    ("train.lr_d=-1", "error"),
    ("train.lr_g=abc", "error"),
    ("train.epochs=0", "error"),
    ("train.max_steps=-1", "error"),
    ("train.batch_size=0", "error"),
    ("train.batch_size=1000000000", "error"),
    ("train.checkpoint_every=0", "error"),
    ("train.keep_last=0", "error"),
    ("train.loss=bogus", "error"),
    ("components.digit.hidden=2000000000", "error"),
    ("components.digit.latent_dim=0", "error"),
    ("components.digit.channels=-3", "error"),
    ("components.digit.kind=bogus", "error"),
    ("data.recipe=bogus", "error"),
    ("data.level=99", "error"),
    ("data.limit=-5", "error"),
    ("data.mixtures=no-such-folder", "error"),
    ("seed=99999999999999999999999", "error"),
    ("seed=-1", "error"),
    ("train.device=tpu", "error"),
    ("name=", "either"),
    ("train.lr", "error"),
    ("=1", "error"),
]


def train_cases() -> Iterator[Case]:
    base = ["train", "--config", "{config}", "--no-progress", "--run-dir", "r"]
    for setting, expect in TRAIN_SETS:
        argv = [*base, "--set", "train.max_steps=2", "--set", setting]
        yield Case("bad input", f"train --set {setting}", argv, None, expect)
    configs: list[tuple[str, Writer | None]] = [
        ("missing.toml", None),
        ("empty.toml", _text("")),
        ("not-toml.toml", _text("[[[ this is not toml")),
        ("nested.toml", _text("a = " + "[" * 5000 + "]" * 5000 + "\n")),
        ("binary.toml", _bytes(os.urandom(300))),
        ("no-components.toml", _text('[data]\nrecipe = "digit+sines"\n')),
        ("a-directory.toml", _directory),
    ]
    for file_name, writer in configs:
        argv = ["train", "--config", file_name, "--no-progress", "--run-dir", "r"]
        yield _writer_case(
            "bad input", f"train --config {file_name}", argv, {file_name: writer}, "error"
        )
    yield Case("bad input", "train --device tpu", [*base, "--device", "tpu"], None, "error")
    yield Case("bad input", "train --device cuda:7", [*base, "--device", "cuda:7"], None, "error")
    yield _writer_case(
        "bad input",
        "train --run-dir a regular file",
        [*base[:-1], "file"],
        {"file": _file},
        "error",
    )
    yield _writer_case(
        "bad input",
        "train --run-dir a non-run directory",
        [*base[:-1], "full"],
        {"full": _full_dir},
        "error",
    )
    resumes: list[tuple[str, Writer | None]] = [
        ("missing-run", None),
        ("empty-run", _directory),
        ("not-a-run", _full_dir),
        ("a-file", _file),
    ]
    for name, writer in resumes:
        argv = ["train", "--resume", name, "--no-progress"]
        yield _writer_case("bad input", f"train --resume {name}", argv, {name: writer}, "error")
    yield Case(
        "bad input",
        "train --resume with --set",
        ["train", "--resume", "{run}", "--set", "train.lr=0.1"],
        None,
        "error",
    )


COMMAND_CASES: list[tuple[str, list[str], str]] = [
    ("evaluate --n 0", ["evaluate", "{run}", "--n", "0"], "error"),
    ("evaluate --n 1e9", ["evaluate", "{run}", "--n", "1000000000", "--methods", "split"], "error"),
    (
        "evaluate --recipe digit+digit",
        ["evaluate", "{run}", "--recipe", "digit+digit", *QUICK_EVAL],
        "ok",
    ),
    ("evaluate --recipe bogus", ["evaluate", "{run}", "--recipe", "bogus"], "error"),
    ("evaluate --level 99", ["evaluate", "{run}", "--level", "99", "--n", "3"], "error"),
    ("evaluate --methods bogus", ["evaluate", "{run}", "--methods", "bogus"], "error"),
    ("evaluate --methods empty", ["evaluate", "{run}", "--methods", ""], "error"),
    ("evaluate --digit-source bogus", ["evaluate", "{run}", "--digit-source", "bogus"], "error"),
    (
        "evaluate --data-dir missing",
        ["evaluate", "{run}", "--data-dir", "nowhere", *QUICK_EVAL],
        "either",
    ),
    ("evaluate --separator missing", ["evaluate", "{run}", "--separator", "nowhere"], "error"),
    ("evaluate --separator a GAN run", ["evaluate", "{run}", "--separator", "{run}"], "error"),
    (
        "demix --separator a GAN run",
        ["demix", "{run}", "{x}", "-o", "o", "--separator", "{run}"],
        "error",
    ),
    (
        "denoise --separator",
        ["denoise", "{denoise_run}", "{x}", "-o", "o", "--separator", "{separator}"],
        "error",
    ),
    ("demix a denoising run", ["demix", "{denoise_run}", "{x}", "-o", "o", *FAST_FIT], "error"),
    ("demix no inputs", ["demix", "{run}", "-o", "o"], "error"),
    ("demix a missing run", ["demix", "nowhere", "{x}", "-o", "o"], "error"),
    ("demix a missing .safetensors", ["demix", "nowhere.safetensors", "{x}", "-o", "o"], "error"),
    ("demix the config file as run", ["demix", "{config}", "{x}", "-o", "o"], "error"),
    ("demix an empty directory", ["demix", ".", "{x}", "-o", "o"], "error"),
    ("separator without a run", ["separator", "-o", "sep"], "error"),
    ("separator --resume missing", ["separator", "--resume", "nowhere"], "error"),
    ("separator --resume a GAN run", ["separator", "--resume", "{run}"], "error"),
    (
        "separator --teacher alone",
        ["separator", "{run}", "-o", "s", "--teacher", "{separator}"],
        "error",
    ),
    (
        "separator --measurements 0",
        ["separator", "{run}", "-o", "s", "--measurements", "0"],
        "error",
    ),
    (
        "separator of a denoising run",
        ["separator", "{denoise_run}", "-o", "s", "--steps", "2", *SMALL_SEPARATOR],
        "error",
    ),
    ("name a bogus generator", ["name", "{run}", "bogus=x"], "error"),
    ("name without =", ["name", "{run}", "generator1"], "error"),
    ("name an empty name", ["name", "{run}", "generator1="], "error"),
    ("name two alike", ["name", "{run}", "generator1=a", "generator2=a"], "error"),
    ("name a missing run", ["name", "nowhere", "generator1=a"], "error"),
    ("data show bogus recipe", ["data", "show", "bogus", "-o", "g.png"], "error"),
    ("data show -n 0", ["data", "show", "digit+sines", "-n", "0", "-o", "g.png"], "error"),
    (
        "data show -n 1e9",
        ["data", "show", "digit+sines", "-n", "1000000000", "-o", "g.png"],
        "error",
    ),
    (
        "data show --level 99",
        ["data", "show", "digit+sines", "--level", "99", "-o", "g.png"],
        "error",
    ),
    ("data show -o .txt", ["data", "show", "digit+sines", "-n", "4", "-o", "g.txt"], "either"),
    ("data info --data-dir missing", ["data", "info", "--data-dir", "nowhere"], "either"),
    ("reproduce bogus", ["reproduce", "bogus"], "error"),
    ("reproduce --profile bogus", ["reproduce", "cs", "--profile", "bogus", "-o", "r"], "error"),
    ("demo --set bogus", ["demo", "--set", "bogus=1", "-o", "d"], "error"),
    ("demo --n 0", ["demo", "--n", "0", "-o", "d"], "error"),
    ("train-classifier --data bogus", ["train-classifier", "--data", "bogus", "-o", "c"], "error"),
    ("unknown command", ["bogus"], "error"),
    ("no command", [], "error"),
]


def command_cases() -> Iterator[Case]:
    for name, argv, expect in COMMAND_CASES:
        yield Case("bad input", name, argv, None, expect)


def all_cases() -> Iterator[Case]:
    yield from input_cases()
    yield from truth_cases()
    yield from measurement_cases()
    yield from option_cases()
    yield from output_cases()
    yield from train_cases()
    yield from command_cases()
