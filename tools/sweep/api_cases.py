"""Bad values handed to the Python API: every entry point must answer with DemixganError.

Each case is a few lines of Python run in a fresh interpreter inside its sandbox; anything
other than a DemixganError (or the expected success) escapes as a traceback and is counted.
"""

from __future__ import annotations

from collections.abc import Iterator

from runner import Case, Prepare

PRELUDE = """
import sys, numpy as np, torch
import demixgan
from demixgan import DemixganError
RUN, X = sys.argv[1], sys.argv[2]
def main():
{body}
# exit status 2 for DemixganError, as the CLI gives; anything else escapes as a traceback
try:
    main()
except DemixganError as error:
    print("error:", error, file=sys.stderr)
    sys.exit(2)
"""
MODEL = "    model = demixgan.load(RUN)\n"
GOOD = "torch.full((2, 1, 28, 28), 0.4)"
#: (name, body lines, expected outcome)
API_CASES: list[tuple[str, str, str]] = [
    ("load a missing path", "    demixgan.load('nowhere')", "error"),
    ("load a file that is not a checkpoint", "    demixgan.load(X)", "error"),
    ("load an empty directory", "    demixgan.load('.')", "error"),
    ("demix NaN", MODEL + "    model.demix(torch.full((2, 1, 28, 28), float('nan')))", "error"),
    ("demix inf", MODEL + "    model.demix(torch.full((2, 1, 28, 28), float('inf')))", "error"),
    ("demix 3e38", MODEL + "    model.demix(torch.full((2, 1, 28, 28), 3e38))", "error"),
    ("demix wrong size", MODEL + "    model.demix(torch.zeros(2, 1, 20, 20))", "error"),
    ("demix no images", MODEL + "    model.demix(torch.zeros(0, 1, 28, 28))", "error"),
    ("demix a 0-d tensor", MODEL + "    model.demix(torch.tensor(1.0))", "error"),
    (
        "demix complex",
        MODEL + "    model.demix(torch.zeros(2, 1, 28, 28, dtype=torch.cfloat))",
        "error",
    ),
    (
        "demix a numpy uint8 array",
        MODEL + "    model.demix(np.full((2, 28, 28), 90, np.uint8), "
        "demixgan.inference.options.FitOptions(iterations=1, restarts=1))",
        "ok",
    ),
    (
        "demix a numpy int64 array",
        MODEL + "    model.demix(np.full((2, 28, 28), 90), "
        "demixgan.inference.options.FitOptions(iterations=1, restarts=1))",
        "ok",
    ),
    ("demix int64 out of range", MODEL + "    model.demix(np.full((2, 28, 28), 900))", "error"),
    (
        "denoise a demixing model without a known part",
        MODEL + f"    model.denoise({GOOD})",
        "either",
    ),
    ("recover without an operator", MODEL + f"    model.recover({GOOD}, None)", "error"),
    (
        "recover measurements of another size",
        MODEL
        + "    from demixgan.models.operators import GaussianOperator\n"
        + "    op = GaussianOperator(20, model.model.image, seed=0)\n"
        + "    model.recover(torch.zeros(2, 21), op)",
        "error",
    ),
    (
        "separate with a GAN run as separator",
        MODEL
        + "    from demixgan.inference.amortized import load_separator\n"
        + "    load_separator(RUN)",
        "error",
    ),
]
OPTION_FIELDS = {
    "FitOptions": [
        "iterations",
        "restarts",
        "lr",
        "latent_weight",
        "tolerance",
        "smoothing",
        "seed",
        "chunk",
    ],
    "SeparatorOptions": [
        "steps",
        "batch_size",
        "lr",
        "width",
        "remix_steps",
        "remix_fraction",
        "remix_lr",
        "teacher_every",
        "seed",
        "chunk",
        "checkpoint_every",
        "log_every",
    ],
}
FLOAT_FIELDS = {"lr", "latent_weight", "tolerance", "smoothing", "remix_lr", "remix_fraction"}
OPTION_VALUES = ["float('inf')", "float('nan')", "-1", "10**30", "'3'", "True"]
CONFIG_OVERRIDES = [
    "train.lr_g=inf",
    "train.lr_d=nan",
    "train.batch_size=0",
    "components.digit.hidden=2000000000",
    "components.digit.latent_dim=-1",
    "data.recipe=bogus",
    "seed=-1",
    "train.epochs=1e400",
    "bogus=1",
    "data.level=1000",
]


def all_cases() -> Iterator[Case]:
    for name, body, expect in API_CASES:
        yield _case(name, body, expect)
    for cls, names in OPTION_FIELDS.items():
        for field in names:
            for value in OPTION_VALUES:
                body = (
                    f"    from demixgan.inference.options import {cls}\n    {cls}({field}={value})"
                )
                # 1e30 is a finite number: a poor learning rate, not an error.
                expect = "either" if value == "10**30" and field in FLOAT_FIELDS else "error"
                yield _case(f"{cls}({field}={value})", body, expect)
    for override in CONFIG_OVERRIDES:
        body = (
            "    from demixgan.spec.config import load_config\n"
            f"    load_config(sys.argv[3], [{override!r}])"
        )
        yield _case(f"load_config --set {override}", body, "error")
    yield _case(
        "load_mixtures of a folder without images",
        "    from demixgan.data.observed import load_mixtures\n    load_mixtures('m')",
        "error",
        prepare=lambda box: (box / "m").mkdir(),
    )
    yield _case(
        "train into a regular file",
        "    from demixgan.spec.config import load_config\n"
        "    from demixgan.training.loop import train\n"
        "    train(load_config(sys.argv[3], ['train.max_steps=1']), 'f', progress=False)",
        "error",
        prepare=lambda box: (box / "f").write_text("a file\n"),
    )


def _case(name: str, body: str, expect: str, prepare: Prepare | None = None) -> Case:
    script = PRELUDE.format(body=body)
    return Case("api", name, ["{run}", "{x}", "{config}"], prepare, expect, python=script)
