"""Tampered checkpoints: every edit of a sidecar or a weights file ends in one DemixganError
naming the problem, checked before a tensor is allocated, never a traceback or an OOM.

The edits keep the checkpoint's hashes valid (the sidecar's weights_sha256 is recomputed), as
a deliberate edit would, so the checks under test are those behind the hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from demixgan.errors import DemixganError
from demixgan.evaluation.classification import load_classifier, save_classifier
from demixgan.inference.amortized import Separator, load_separator, save_separator
from demixgan.inference.loading import load_model
from demixgan.io.checkpoints import latest_checkpoint, load_weights
from demixgan.networks.classifier import ClassifierShape, MnistClassifier
from demixgan.networks.separators import UNetSeparator
from demixgan.spec.config import load_config, parse_config
from demixgan.training.loop import train

REPO = Path(__file__).resolve().parents[1]
Tamper = Callable[[Path], None]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-step run of tiny-demix (latent 8, hidden 32, channels 8): one checkpoint."""
    overrides = ["train.max_steps=2", "data.limit=32"]
    config = load_config(REPO / "configs" / "tiny-demix.toml", overrides)
    return train(config, tmp_path_factory.mktemp("trained") / "run", progress=False).run_dir


@pytest.fixture
def run(trained_run: Path, tmp_path: Path) -> Path:
    """A fresh copy of the trained run, to tamper with."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def _files(run: Path) -> tuple[Path, Path]:
    checkpoint = latest_checkpoint(run / "checkpoints")
    assert checkpoint is not None
    return checkpoint.weights_path, checkpoint.sidecar_path


def edit_sidecar(change: Callable[[dict], object]) -> Tamper:
    def tamper(run: Path) -> None:
        _, sidecar_path = _files(run)
        sidecar = json.loads(sidecar_path.read_text())
        change(sidecar)
        sidecar_path.write_text(json.dumps(sidecar))

    return tamper


def edit_config(**component: object) -> Tamper:
    """Change the first component's settings in the sidecar's config."""
    return edit_sidecar(lambda sidecar: sidecar["config"]["components"][0].update(component))


def rehash(weights_path: Path, sidecar_path: Path) -> None:
    """Record the weights' new SHA-256, as a deliberate edit would."""
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["weights_sha256"] = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    sidecar_path.write_text(json.dumps(sidecar))


def edit_tensors(
    change: Callable[[dict[str, torch.Tensor]], object], relist: bool = False
) -> Tamper:
    """Rewrite the weights file (and, with ``relist``, the sidecar's tensor list) and rehash."""

    def tamper(run: Path) -> None:
        weights_path, sidecar_path = _files(run)
        tensors = load_file(weights_path)
        change(tensors)
        save_file(tensors, str(weights_path))
        if relist:
            sidecar = json.loads(sidecar_path.read_text())
            sidecar["modules"] = {
                name: sorted(k.split(".", 1)[1] for k in tensors if k.split(".", 1)[0] == name)
                for name in ("model", "discriminator")
            }
            sidecar_path.write_text(json.dumps(sidecar))
        rehash(weights_path, sidecar_path)

    return tamper


def replace_weights(content: bytes | None) -> Tamper:
    """The weights file replaced by ``content`` (None: a directory), rehashed where a file."""

    def tamper(run: Path) -> None:
        weights_path, sidecar_path = _files(run)
        weights_path.unlink()
        if content is None:
            weights_path.mkdir()
            return
        weights_path.write_bytes(content)
        rehash(weights_path, sidecar_path)

    return tamper


def replace_sidecar(content: str | None) -> Tamper:
    def tamper(run: Path) -> None:
        _, sidecar_path = _files(run)
        sidecar_path.unlink()
        if content is None:
            sidecar_path.mkdir()
        else:
            sidecar_path.write_text(content)

    return tamper


def link_loop(run: Path) -> None:
    weights_path, _ = _files(run)
    weights_path.unlink()
    weights_path.symlink_to(weights_path.name)


def _set(tensors: dict[str, torch.Tensor], key: str, index: tuple, value: float) -> None:
    tensors[key][index] = value


FIRST = "model.generators.digit.body.0.weight"  # Linear(latent 8, hidden 32): [32, 8]

TAMPERINGS: dict[str, tuple[Tamper, str]] = {
    "latent_dim edited": (
        edit_config(latent_dim=100),
        r"do not fit the configuration its sidecar records: model\.generators\.digit\.body\.0"
        r"\.weight has shape \[32, 8\] in the file but the config \(components\[0\] 'digit': "
        r"arch = 'dcgan', latent_dim = 100, hidden = 32, channels = 8\) builds \[32, 100\]\. "
        "The sidecar was edited",
    ),
    "hidden 2e9": (edit_config(hidden=2_000_000_000), r"hidden must be an integer >= 1 and <= "),
    "huge but allowed sizes": (
        edit_config(hidden=16384, channels=2048),  # 6.6 GB if built for real
        r"has shape \[32, 8\] in the file but .* builds \[16384, 8\]",
    ),
    "NaN weight": (
        edit_tensors(lambda t: _set(t, FIRST, (0, 0), float("nan"))),
        rf"non-finite values: {FIRST} has 1 NaN or infinite among its 256 values",
    ),
    "inf in the discriminator": (
        edit_tensors(lambda t: _set(t, "discriminator.logit.bias", (0,), float("inf"))),
        r"non-finite values: discriminator\.logit\.bias has 1",
    ),
    "int where float": (
        edit_tensors(lambda t: t.update({FIRST: t[FIRST].to(torch.int32)})),
        rf"{FIRST} holds I32 values in the file but .* builds a float32 tensor",
    ),
    "tensor missing": (
        edit_tensors(lambda t: t.pop(FIRST), relist=True),
        rf"builds {FIRST}, which the file lacks \(1 missing from the file, 0 unexpected\)",
    ),
    "tensor extra": (
        edit_tensors(lambda t: t.update({"model.extra": torch.zeros(2)}), relist=True),
        r"the file holds model\.extra, which the config does not build",
    ),
    "generator dropped": (
        edit_tensors(lambda t: [t.pop(k) for k in list(t) if ".digit." in k], relist=True),
        rf"builds {FIRST}, which the file lacks \(8 missing from the file, 0 unexpected\)",
    ),
    "tensor not in the sidecar's list": (
        edit_tensors(lambda t: t.update({"model.extra": torch.zeros(2)})),
        r"do not match the list in its sidecar \(1 unexpected, 0 missing\)",
    ),
    "sidecar nested 100,000 deep": (
        replace_sidecar("[" * 100_000 + "]" * 100_000),
        r"not valid JSON \(it nests arrays or objects too deeply",
    ),
    "config nested 500 deep": (
        edit_sidecar(lambda s: s["config"].update(description=json.loads("[" * 500 + "]" * 500))),
        r"not valid JSON \(it nests arrays or objects more than 32 levels deep\)",
    ),
    "integer of 5000 digits": (
        replace_sidecar('{"format": ' + "9" * 5000 + "}"),
        r"not valid JSON \(Exceeds the limit",
    ),
    "empty sidecar": (replace_sidecar(""), r"not valid JSON \(Expecting value\)"),
    "sidecar is a directory": (replace_sidecar(None), r"is not a regular file"),
    "config not a table": (
        edit_sidecar(lambda s: s.update(config=[1, 2])),
        r"no usable|must be a table, but got \[1, 2\]",
    ),
    "latent_dim a string": (
        edit_config(latent_dim="8"),
        r"latent_dim must be an integer, but got '8'",
    ),
    "latent_dim a bool": (
        edit_config(latent_dim=True),
        r"latent_dim must be an integer, but got True",
    ),
    "latent_dim negative": (edit_config(latent_dim=-3), r"latent_dim must be an integer >= 1"),
    "image channels a bool": (
        edit_sidecar(lambda s: s["image"].update(channels=True)),
        r"True channels \(1 grey or 3 RGB are supported\)",
    ),
    "image height a string": (
        edit_sidecar(lambda s: s["image"].update(height="28")),
        r"a height of '28' \(a whole number of pixels is needed\)",
    ),
    "image height negative": (
        edit_sidecar(lambda s: s["image"].update(height=-(10**18))),
        r"a height of -1000000000000000000 px",
    ),
    "image a string": (edit_sidecar(lambda s: s.update(image="28x28")), r"must be a table of"),
    "operator huge": (
        edit_sidecar(lambda s: s.update(operator={"name": "gaussian", "measurements": 2 * 10**9})),
        r"invalid measurement operator .* with m from 1 to 7840",
    ),
    "operator a number": (
        edit_sidecar(lambda s: s.update(operator=5)),
        r"Unknown or invalid measurement operator 5",
    ),
    "components summary edited": (
        edit_sidecar(lambda s: s["components"][0].update(latent_dim="8")),
        r"lists the components .* but its configuration builds",
    ),
    "modules not lists": (
        edit_sidecar(lambda s: s.update(modules={"model": "body.0.weight"})),
        r"damaged: missing or invalid modules",
    ),
    "kind a number": (
        edit_sidecar(lambda s: s.update(kind=5)),
        r"damaged: missing or invalid kind",
    ),
    "step a string": (
        edit_sidecar(lambda s: s.update(step="2")),
        r"damaged: missing or invalid step",
    ),
    "weights a directory": (replace_weights(None), r"Is a directory"),
    "weights a link loop": (link_loop, r"Too many levels of symbolic links"),
    "weights empty": (replace_weights(b""), r"cannot be read as safetensors .*header too small"),
    "header length 2^62": (
        replace_weights(struct.pack("<Q", 2**62) + b"{}"),
        r"cannot be read as safetensors .*header too large",
    ),
    "weights a pickle": (
        replace_weights(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01."),
        r"cannot be read as safetensors",
    ),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_a_tampered_checkpoint_is_one_clear_error(run: Path, name: str) -> None:
    tamper, message = TAMPERINGS[name]
    tamper(run)
    with pytest.raises(DemixganError, match=message) as error:
        load_model(run)
    assert "\n" not in str(error.value)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
#: Where in a GAN run's sidecar a fuzzed value goes.
_FIELDS = [
    ("kind",),
    ("step",),
    ("modules",),
    ("modules", "model"),
    ("image",),
    ("image", "height"),
    ("operator",),
    ("operator", "measurements"),
    ("components",),
    ("components", 0),
    ("config",),
    ("config", "components"),
    ("config", "components", 0, "latent_dim"),
    ("config", "components", 0, "arch"),
    ("config", "data"),
    ("config", "model", "coupling_scale"),
]


def test_any_value_in_any_sidecar_field_is_a_demixgan_error_or_a_load(run: Path) -> None:
    """Fuzzed: whatever JSON value replaces a field, loading succeeds or raises DemixganError."""
    _, sidecar_path = _files(run)
    base = sidecar_path.read_text()

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(field=st.sampled_from(_FIELDS), value=_JSON)
    def check(field: tuple, value: object) -> None:
        sidecar = json.loads(base)
        node = sidecar
        for key in field[:-1]:
            node = node[key]
        node[field[-1]] = value
        sidecar_path.write_text(json.dumps(sidecar))
        with contextlib.suppress(DemixganError):
            load_model(sidecar_path)

    check()


def test_huge_recorded_sizes_are_refused_without_allocating_them(run: Path) -> None:
    """hidden 16384 x 2048 channels is 6.6 GB of weights: the check must not build them."""
    edit_config(hidden=16384, channels=2048)(run)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    with pytest.raises(DemixganError, match="do not fit"):
        load_model(run)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 1 << 20  # < 1 GiB


def test_nonexistent_paths_say_they_do_not_exist(tmp_path: Path) -> None:
    with pytest.raises(DemixganError, match=r"'.*nothing' does not exist"):
        load_model(tmp_path / "nothing")
    missing = tmp_path / "step-000000001.safetensors"
    with pytest.raises(DemixganError, match=r"step-000000001\.safetensors' does not exist"):
        load_model(missing)
    with pytest.raises(DemixganError, match=r"neither its weights .* nor its sidecar .* is there"):
        load_weights(missing)
    with pytest.raises(DemixganError, match=r"neither its weights .* nor its sidecar .* is there"):
        load_weights(missing.with_suffix(".json"))


def test_an_untampered_run_still_loads_and_fits_its_weights(run: Path) -> None:
    from demixgan.spec.factory import build_run_discriminator

    model, config = load_model(run)
    modules = {"model": model, "discriminator": build_run_discriminator(config, model.image)}
    weights, _ = load_weights(_files(run)[0], fit=modules)
    assert set(weights["model"]) == set(model.state_dict())
    assert config.components[0].latent_dim == 8


def test_resume_check_compares_the_modules_of_a_task(run: Path) -> None:
    """What engine.run's resume does: the task's own modules against the header."""
    config = parse_config(
        {"components": [{"name": "digit", "kind": "learned", "latent_dim": 9}]}, name="x"
    )
    from demixgan.spec.factory import build_model
    from demixgan.spec.image import MNIST_IMAGE

    with pytest.raises(DemixganError, match=r"do not fit the networks built to receive them"):
        load_weights(_files(run)[0], fit={"model": build_model(config, MNIST_IMAGE)})


def _cli(*args: str, limit_gib: int = 3) -> subprocess.CompletedProcess[str]:
    """The CLI in a process that cannot map more than ``limit_gib`` GiB: an attempt to
    allocate what a tampered sidecar asks for fails there instead of swapping the machine."""
    limit = limit_gib << 30

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "demixgan", *args],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=cap,
        timeout=120,
        check=False,
    )


def test_demix_of_a_tampered_run_exits_2_without_a_traceback(run: Path, tmp_path: Path) -> None:
    edit_config(hidden=16384, channels=2048)(run)
    inputs, out = tmp_path / "x.npy", tmp_path / "out"
    np.save(inputs, np.random.default_rng(0).random((2, 28, 28), dtype=np.float32))
    result = _cli("demix", str(run), str(inputs), "-o", str(out))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "do not fit the configuration its sidecar records" in result.stderr
    assert not out.exists()


def test_demix_of_nan_weights_exits_2(run: Path, tmp_path: Path) -> None:
    edit_tensors(lambda t: _set(t, FIRST, (1, 2), float("nan")))(run)
    inputs, out = tmp_path / "x.npy", tmp_path / "out"
    np.save(inputs, np.zeros((1, 28, 28), dtype=np.float32))
    result = _cli("demix", str(run), str(inputs), "-o", str(out))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "non-finite values" in result.stderr
    assert not out.exists()


# -- separators and classifiers ------------------------------------------------------------


@pytest.fixture
def separator_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    separator = Separator(UNetSeparator(2, width=4), ["digit", "sines"])
    save_separator(separator, tmp_path / "separator", {})
    return tmp_path / "separator"


@pytest.fixture
def classifier_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = MnistClassifier(ClassifierShape(conv1=2, conv2=2, hidden=8))
    save_classifier(model, tmp_path / "classifier", {})
    return tmp_path / "classifier"


def _edit_finished(directory: Path, change: Callable[[dict], object]) -> None:
    sidecar_path = directory / "step-000000000.json"
    sidecar = json.loads(sidecar_path.read_text())
    change(sidecar)
    sidecar_path.write_text(json.dumps(sidecar))


def _nan_finished(directory: Path, key: str) -> None:
    weights_path = directory / "step-000000000.safetensors"
    tensors = load_file(weights_path)
    tensors[key].view(-1)[0] = float("nan")
    save_file(tensors, str(weights_path))
    rehash(weights_path, directory / "step-000000000.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s["separator_shape"].update(width=10**6),
            r"do not fit the separator its sidecar describes: separator\.down1\.0\.weight has "
            r"shape \[4, 1, 3, 3\] in the file but the sidecar's separator_shape \(components = "
            r"2, width = 1000000, measurements = 0\) builds \[1000000, 1, 3, 3\]",
        ),
        (
            lambda s: s["separator_shape"].update(width=2 * 10**9),
            r"records a separator that cannot be built",
        ),
        (lambda s: s["separator_shape"].update(width=2**70), r"records a separator that cannot"),
        (lambda s: s["separator_shape"].update(width=True), r"width must be an integer >= 1"),
        (lambda s: s["separator_shape"].update(lift_init=[1]), r"must be a table of components"),
        (lambda s: s.update(separator_components=["a"]), r"must list the names of its 2"),
        (lambda s: s.update(separator_components="ab"), r"must list the names of its 2"),
        (lambda s: s.update(separator_matrix_seed=-1), r"separator_matrix_seed must be null"),
        (lambda s: s["separator_shape"].update(image={"channels": 1}), r"image spec .* table"),
    ],
    ids=[
        "width 1e6",
        "width 2e9",
        "width 2^70",
        "width a bool",
        "extra argument",
        "one name",
        "names a string",
        "negative seed",
        "image incomplete",
    ],
)
def test_a_tampered_separator_is_one_clear_error(
    separator_dir: Path, change: Callable[[dict], object], message: str
) -> None:
    _edit_finished(separator_dir, change)
    with pytest.raises(DemixganError, match=message):
        load_separator(separator_dir)


def test_a_separator_with_nan_weights_is_refused(separator_dir: Path) -> None:
    load_separator(separator_dir)  # loads untampered
    _nan_finished(separator_dir, "separator.head.weight")
    with pytest.raises(DemixganError, match=r"separator\.head\.weight has 1 NaN"):
        load_separator(separator_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s["classifier_shape"].update(hidden=2 * 10**9),
            r"classifier\.head\.1\.weight has shape \[8, 98\] in the file but the sidecar's "
            r"classifier_shape .* builds \[2000000000, 98\]",
        ),
        (lambda s: s["classifier_shape"].update(dropout=5), r"dropout must be a number from 0"),
        (lambda s: s["classifier_shape"].update(conv1="2"), r"conv1 must be an integer >= 1"),
        (lambda s: s.update(classifier_shape=[2, 2]), r"must be a table of conv1"),
    ],
    ids=["hidden 2e9", "dropout 5", "conv1 a string", "shape a list"],
)
def test_a_tampered_classifier_is_one_clear_error(
    classifier_dir: Path, change: Callable[[dict], object], message: str
) -> None:
    _edit_finished(classifier_dir, change)
    with pytest.raises(DemixganError, match=message):
        load_classifier(classifier_dir)


def test_a_classifier_with_nan_weights_is_refused(classifier_dir: Path) -> None:
    load_classifier(classifier_dir)
    _nan_finished(classifier_dir, "classifier.head.1.bias")
    with pytest.raises(DemixganError, match=r"classifier\.head\.1\.bias has 1 NaN"):
        load_classifier(classifier_dir)


# -- run configurations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a = " + "[" * 100_000, "nests arrays or tables too deeply"),
        ("seed = " + "1" * 5000, "Exceeds the limit"),
        ("[[components]]\nname = 'd'\nkind = 'learned'\nhidden = 2000000000\n", "<= 16384"),
        ("description = " + "[" * 40 + "]" * 40, "more than 16 levels deep"),
    ],
    ids=["nested 100,000 deep", "integer of 5000 digits", "hidden 2e9", "nested 40 deep"],
)
def test_a_tampered_toml_config_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(DemixganError, match=message):
        load_config(path)


def test_an_override_too_deep_or_too_large_is_refused() -> None:
    base = {"components": [{"name": "d", "kind": "learned"}]}
    with pytest.raises(DemixganError, match="<= 16384, but got 2000000000"):
        parse_config(base, name="x", overrides=["components.0.hidden=2000000000"])
    with pytest.raises(DemixganError, match="is not a value a setting takes"):
        parse_config(base, name="x", overrides=["seed=" + "[" * 100_000])
