"""Tampered files: checkpoints, resume state, run files, separators and data files edited,
truncated or replaced, each handed to the command that reads it.

Edits that keep a file's recorded SHA-256 valid (the hash recomputed after the edit) model a
deliberate tamperer or a buggy tool: they get past verification and must be caught by the
checks behind it. A pickle that would run code must never run it: its marker file would show
up as a leftover.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

from assets import copy_run
from runner import Case

Tamper = Callable[[Path], None]  # gets the copied run directory
LATEST = "checkpoints/step-000000020"
FAST_FIT = ["--iterations", "2", "--restarts", "1"]
DEMIX_LATEST = ["demix", f"run/{LATEST}.safetensors", "{x}", "-o", "out", *FAST_FIT]
DEMIX_RUN = ["demix", "run", "{x}", "-o", "out", *FAST_FIT]
RESUME = ["train", "--resume", "run", "--no-progress"]


def _sidecars(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("step-*.json"))


def _latest(run: Path, suffix: str) -> Path:
    """A file of the run's newest checkpoint (step 20 for the GAN run, the separator's last)."""
    return _sidecars(run)[-1].with_suffix(suffix)


def _edit_json(path: Path, edit: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    result = edit(data)
    path.write_text(json.dumps(data if result is None else result))


def _rehash(sidecar: Path, key: str = "weights") -> None:
    """Record the current SHA-256 of the sidecar's weights (or resume) file."""
    data = json.loads(sidecar.read_text())
    target = sidecar.parent / data[f"{key}_file"]
    data[f"{key}_sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    sidecar.write_text(json.dumps(data))


def sidecar_edit(edit: Callable[[dict], object], every: bool = False) -> Tamper:
    def tamper(run: Path) -> None:
        for sidecar in _sidecars(run) if every else [_latest(run, ".json")]:
            _edit_json(sidecar, edit)

    return tamper


def sidecar_text(text: str | bytes) -> Tamper:
    def tamper(run: Path) -> None:
        path = _latest(run, ".json")
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return tamper


def _set(path: str, value) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        keys = path.split(".")
        node = data
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value

    return edit


def _tensors_edit(edit: Callable[[dict], dict], every: bool = False) -> Tamper:
    """Rewrite the weights with safetensors (a valid file), then record its hash."""

    def tamper(run: Path) -> None:
        from safetensors.torch import load_file, save_file

        for sidecar in _sidecars(run) if every else [_latest(run, ".json")]:
            weights = sidecar.with_suffix(".safetensors")
            save_file(edit(load_file(weights)), str(weights))
            _rehash(sidecar)

    return tamper


def _first_float(tensors: dict) -> str:
    """The first weight matrix of the networks inference loads (not the discriminator)."""
    return next(
        k
        for k, v in sorted(tensors.items())
        if v.is_floating_point() and v.ndim > 1 and not k.startswith("discriminator")
    )


def _nan_weights(tensors: dict) -> dict:
    key = _first_float(tensors)
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = float("nan")
    return tensors


def _inf_weights(tensors: dict) -> dict:
    key = _first_float(tensors)
    tensors[key] = tensors[key].clone().fill_(float("inf"))
    return tensors


def _extra_tensor(tensors: dict) -> dict:
    import torch

    tensors["model.intruder"] = torch.zeros(3)
    return tensors


def _missing_tensor(tensors: dict) -> dict:
    tensors.pop(_first_float(tensors))
    return tensors


def _reshaped_tensor(tensors: dict) -> dict:
    key = _first_float(tensors)
    tensors[key] = tensors[key].flatten()[:-1].clone()
    return tensors


def _integer_tensor(tensors: dict) -> dict:
    key = _first_float(tensors)
    import torch

    tensors[key] = tensors[key].to(dtype=torch.int32)
    return tensors


def weights_bytes(change: Callable[[bytes], bytes], rehash: bool) -> Tamper:
    def tamper(run: Path) -> None:
        weights = _latest(run, ".safetensors")
        weights.write_bytes(change(weights.read_bytes()))
        if rehash:
            _rehash(_latest(run, ".json"))

    return tamper


def _huge_header(data: bytes) -> bytes:
    return struct.pack("<Q", 2**62) + data[8:]


def _replace_with_directory(name: str) -> Tamper:
    def tamper(run: Path) -> None:
        path = run / name
        path.unlink()
        path.mkdir()

    return tamper


def _remove(pattern: str) -> Tamper:
    def tamper(run: Path) -> None:
        for path in run.glob(pattern):
            path.unlink()

    return tamper


class _RunsCode:
    """A pickle payload that would create a file if unpickled (it must never be)."""

    def __reduce__(self):
        return (os.system, ("touch CODE-WAS-EXECUTED",))


def _resume_payload(make: Callable[[], object], every: bool = True) -> Tamper:
    def tamper(run: Path) -> None:
        import torch

        for sidecar in _sidecars(run) if every else [_latest(run, ".json")]:
            resume = sidecar.with_name(sidecar.stem + ".resume.pt")
            payload = make()
            if isinstance(payload, bytes):
                resume.write_bytes(payload)
            else:
                torch.save(payload, resume)
            _rehash(sidecar, "resume")

    return tamper


def _resume_state_edit(edit: Callable[[dict], None]) -> Tamper:
    def tamper(run: Path) -> None:
        import torch

        for sidecar in _sidecars(run):
            resume = sidecar.with_name(sidecar.stem + ".resume.pt")
            state = torch.load(resume, weights_only=True)
            edit(state)
            torch.save(state, resume)
            _rehash(sidecar, "resume")

    return tamper


def _truncate(pattern: str, keep: int = 100) -> Tamper:
    def tamper(run: Path) -> None:
        for path in run.glob(pattern):
            path.write_bytes(path.read_bytes()[:keep])

    return tamper


def _config_edit(edit: Callable[[dict], None]) -> Tamper:
    def tamper(run: Path) -> None:
        _edit_json(run / "config.json", edit)

    return tamper


def _file_text(name: str, text: str) -> Tamper:
    def tamper(run: Path) -> None:
        (run / name).write_text(text)

    return tamper


def _truncated_stats_line(run: Path) -> None:
    path = run / "stats.jsonl"
    path.write_text(path.read_text() + '{"step": 21, "loss_d": 0.')


def _garbage_stats_line(run: Path) -> None:
    lines = (run / "stats.jsonl").read_text().splitlines()
    lines.insert(1, "this is not json")
    (run / "stats.jsonl").write_text("\n".join(lines) + "\n")


def _extend(run: Path) -> None:
    _edit_json(run / "config.json", _set("train.max_steps", 25))


def _lower_lr(run: Path) -> None:
    _edit_json(run / "config.json", _set("train.lr_g", 1e-4))


NESTED = "[" * 100000 + "]" * 100000
#: (name, tamper of the run copy, command line, expected outcome)
RUN_TAMPERS: list[tuple[str, Tamper, list[str], str]] = [
    ("sidecar not JSON", sidecar_text("{not json"), DEMIX_LATEST, "error"),
    (
        "sidecar truncated",
        sidecar_text('{"format": "demixgan-checkpoint", "st'),
        DEMIX_LATEST,
        "error",
    ),
    ("sidecar empty", sidecar_text(""), DEMIX_LATEST, "error"),
    ("sidecar not UTF-8", sidecar_text(b"\xff\xfe\x00garbage"), DEMIX_LATEST, "error"),
    ("sidecar a JSON list", sidecar_text("[1, 2, 3]"), DEMIX_LATEST, "error"),
    ("sidecar nested 100k deep", sidecar_text(NESTED), DEMIX_LATEST, "error"),
    (
        "sidecar nested config",
        sidecar_edit(_set("config", json.loads("[" * 900 + "]" * 900))),
        DEMIX_LATEST,
        "error",
    ),
    ("sidecar format", sidecar_edit(_set("format", "other")), DEMIX_LATEST, "error"),
    ("sidecar format_version 99", sidecar_edit(_set("format_version", 99)), DEMIX_LATEST, "error"),
    ("sidecar step a string", sidecar_edit(_set("step", "20")), DEMIX_LATEST, "error"),
    ("sidecar modules a list", sidecar_edit(_set("modules", [1])), DEMIX_LATEST, "error"),
    (
        "sidecar weights_file outside",
        sidecar_edit(_set("weights_file", "../../x")),
        DEMIX_LATEST,
        "error",
    ),
    (
        "sidecar wrong weights hash",
        sidecar_edit(_set("weights_sha256", "0" * 64)),
        DEMIX_LATEST,
        "error",
    ),
    (
        "sidecar latent_dim edited",
        sidecar_edit(_set("config.components.0.latent_dim", 9)),
        DEMIX_LATEST,
        "error",
    ),
    (
        "sidecar hidden 2e9",
        sidecar_edit(_set("config.components.0.hidden", 2_000_000_000)),
        DEMIX_LATEST,
        "error",
    ),
    (
        "sidecar hidden a string",
        sidecar_edit(_set("config.components.0.hidden", "wide")),
        DEMIX_LATEST,
        "error",
    ),
    (
        "sidecar hidden negative",
        sidecar_edit(_set("config.components.0.hidden", -4)),
        DEMIX_LATEST,
        "error",
    ),
    (
        "sidecar hidden true",
        sidecar_edit(_set("config.components.0.hidden", True)),
        DEMIX_LATEST,
        "error",
    ),
    ("sidecar no components", sidecar_edit(_set("config.components", [])), DEMIX_LATEST, "error"),
    (
        "sidecar unknown generator",
        sidecar_edit(_set("config.components.0.architecture", "bogus")),
        DEMIX_LATEST,
        "error",
    ),
    ("sidecar config missing", sidecar_edit(lambda d: d.pop("config")), DEMIX_LATEST, "error"),
    ("sidecar config a list", sidecar_edit(_set("config", [1])), DEMIX_LATEST, "error"),
    (
        "sidecar image channels 2",
        sidecar_edit(_set("image", {"channels": 2, "height": 28, "width": 28})),
        DEMIX_LATEST,
        "error",
    ),
    (
        "sidecar image height -1",
        sidecar_edit(_set("image", {"channels": 1, "height": -1, "width": 28})),
        DEMIX_LATEST,
        "error",
    ),
    (
        "sidecar image huge",
        sidecar_edit(_set("image", {"channels": 1, "height": 2**40, "width": 2**40})),
        DEMIX_LATEST,
        "error",
    ),
    ("sidecar image a string", sidecar_edit(_set("image", "28x28")), DEMIX_LATEST, "error"),
    (
        "sidecar operator bogus",
        sidecar_edit(_set("operator", {"kind": "bogus"})),
        DEMIX_LATEST,
        "error",
    ),
    (
        "sidecar operator huge m",
        sidecar_edit(_set("operator", {"kind": "gaussian", "measurements": 10**12, "seed": 0})),
        DEMIX_LATEST,
        "error",
    ),
    (
        "sidecar kind classifier",
        sidecar_edit(_set("kind", "mnist-classifier")),
        DEMIX_LATEST,
        "error",
    ),
    ("sidecar a directory", _replace_with_directory(f"{LATEST}.json"), DEMIX_LATEST, "error"),
    ("every sidecar removed", _remove("checkpoints/*.json"), DEMIX_RUN, "error"),
    (
        "every sidecar latent_dim edited",
        sidecar_edit(_set("config.components.0.latent_dim", 3), every=True),
        DEMIX_RUN,
        "error",
    ),
    ("newest sidecar damaged, older used", sidecar_text("{"), DEMIX_RUN, "ok"),
    ("weights truncated", weights_bytes(lambda b: b[: len(b) // 2], False), DEMIX_LATEST, "error"),
    (
        "weights truncated, hash recomputed",
        weights_bytes(lambda b: b[: len(b) // 2], True),
        DEMIX_LATEST,
        "error",
    ),
    (
        "weights zeroed, hash recomputed",
        weights_bytes(lambda b: bytes(len(b)), True),
        DEMIX_LATEST,
        "error",
    ),
    (
        "weights random, hash recomputed",
        weights_bytes(lambda b: os.urandom(len(b)), True),
        DEMIX_LATEST,
        "error",
    ),
    ("weights header length 2^62", weights_bytes(_huge_header, True), DEMIX_LATEST, "error"),
    ("weights NaN, hash recomputed", _tensors_edit(_nan_weights), DEMIX_LATEST, "error"),
    ("weights inf, hash recomputed", _tensors_edit(_inf_weights), DEMIX_LATEST, "error"),
    (
        "weights NaN in every checkpoint",
        _tensors_edit(_nan_weights, every=True),
        DEMIX_RUN,
        "error",
    ),
    ("weights extra tensor", _tensors_edit(_extra_tensor), DEMIX_LATEST, "error"),
    ("weights missing tensor", _tensors_edit(_missing_tensor), DEMIX_LATEST, "error"),
    ("weights reshaped tensor", _tensors_edit(_reshaped_tensor), DEMIX_LATEST, "error"),
    ("weights integer tensor", _tensors_edit(_integer_tensor), DEMIX_LATEST, "error"),
    (
        "weights a directory",
        _replace_with_directory(f"{LATEST}.safetensors"),
        DEMIX_LATEST,
        "error",
    ),
    ("weights removed", _remove(f"{LATEST}.safetensors"), DEMIX_LATEST, "error"),
    (
        "resume runs code (hash recomputed)",
        _resume_payload(lambda: pickle.dumps(_RunsCode())),
        RESUME,
        "error",
    ),
    ("resume holds a list", _resume_payload(lambda: [1, 2, 3]), RESUME, "error"),
    ("resume step 1e9", _resume_state_edit(lambda s: s.update(step=10**9)), RESUME, "error"),
    ("resume step negative", _resume_state_edit(lambda s: s.update(step=-5)), RESUME, "error"),
    (
        "resume step disagrees with sidecar",
        _resume_state_edit(lambda s: s.update(step=3)),
        RESUME,
        "error",
    ),
    ("every resume file truncated", _truncate("checkpoints/*.resume.pt"), RESUME, "error"),
    ("every weights file truncated", _truncate("checkpoints/*.safetensors"), RESUME, "error"),
    ("sidecar step 1e9 (every)", sidecar_edit(_set("step", 10**9), every=True), RESUME, "error"),
    ("config.json not JSON", _file_text("config.json", "{"), RESUME, "error"),
    ("config.json nested", _file_text("config.json", NESTED), RESUME, "error"),
    (
        "config.json latent_dim edited",
        _config_edit(_set("components.0.latent_dim", 9)),
        RESUME,
        "error",
    ),
    (
        "config.json recipe edited",
        _config_edit(_set("data.recipe", "digit+lines")),
        RESUME,
        "error",
    ),
    ("config.json lr lowered, steps extended", lambda r: (_lower_lr(r), _extend(r)), RESUME, "ok"),
    ("config.json steps extended", _extend, RESUME, "ok"),
    (
        "stats.jsonl truncated last line",
        lambda r: (_truncated_stats_line(r), _extend(r)),
        RESUME,
        "ok",
    ),
    ("stats.jsonl garbage line", lambda r: (_garbage_stats_line(r), _extend(r)), RESUME, "error"),
    (
        "component-names.json [1], then name",
        _file_text("component-names.json", "[1]"),
        ["name", "run", "digit=stroke"],
        "ok",
    ),
    (
        "component-names.json [1], then demix",
        _file_text("component-names.json", "[1]"),
        DEMIX_RUN,
        "error",
    ),
    ("component-names.json nested", _file_text("component-names.json", NESTED), DEMIX_RUN, "error"),
]


#: The assets' runs by name ("run", "separator"); the sweep fills it before running cases.
SOURCES: dict[str, Path] = {}


def run_cases() -> Iterator[Case]:
    for name, tamper, argv, expect in RUN_TAMPERS:
        yield Case("tampered file", name, argv, _copying("run", tamper), expect)


def _copying(asset: str, tamper: Tamper) -> Callable[[Path], None]:
    """Copy the asset into the sandbox, then tamper with the copy."""

    def prepare(sandbox: Path) -> None:
        tamper(copy_run(SOURCES[asset], sandbox, "run"))

    return prepare


SEPARATOR_TAMPERS: list[tuple[str, Tamper, str]] = [
    ("separator weights NaN", _tensors_edit(_nan_weights), "error"),
    ("separator sidecar not JSON", sidecar_text("{"), "error"),
    ("separator width edited", sidecar_edit(lambda d: _bump(d, "width")), "error"),
]


def _bump(data: dict, key: str) -> None:
    """Double the first field named ``key`` anywhere in the sidecar."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get(key), int):
                node[key] *= 2
                return
            stack.extend(node.values())


def separator_cases() -> Iterator[Case]:
    for name, tamper, expect in SEPARATOR_TAMPERS:
        argv = ["demix", "{run}", "{x}", "-o", "out", "--separator", "separator.safetensors"]
        yield Case("tampered file", name, argv, _copying_separator(tamper), expect)


def _copying_separator(tamper: Tamper) -> Callable[[Path], None]:
    """Copy the separator run, tamper with its newest checkpoint, link that file for demix."""

    def prepare(sandbox: Path) -> None:
        run = copy_run(SOURCES["separator"], sandbox, "run")
        tamper(run)
        newest = _latest(run, ".safetensors").relative_to(sandbox)
        (sandbox / "separator.safetensors").symlink_to(newest)
        (sandbox / "separator.json").symlink_to(newest.with_suffix(".json"))

    return prepare


def _idx_file(name: str, data: bytes, compress: bool) -> Callable[[Path], None]:
    import gzip

    def prepare(sandbox: Path) -> None:
        folder = sandbox / "data"
        folder.mkdir()
        (folder / name).write_bytes(gzip.compress(data) if compress else data)
        labels = struct.pack(">I", 0x801) + struct.pack(">I", 10) + bytes(10)
        (folder / "t10k-labels-idx1-ubyte").write_bytes(labels)

    return prepare


def _gzip_bomb(sandbox: Path) -> None:
    import zlib

    folder = sandbox / "data"
    folder.mkdir()
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    with open(folder / "t10k-images-idx3-ubyte.gz", "wb") as out:
        out.write(compressor.compress(struct.pack(">IIII", 0x803, 10000, 28, 28)))
        for _ in range(1024):  # 1 GiB of zeros in about 1 MB
            out.write(compressor.compress(chunk))
        out.write(compressor.flush())


IMAGES_HEADER = struct.pack(">IIII", 0x803, 10, 28, 28)
DATA_TAMPERS: list[tuple[str, Callable[[Path], None]]] = [
    ("data: a gzip bomb", _gzip_bomb),
    (
        "data: truncated images",
        _idx_file("t10k-images-idx3-ubyte", IMAGES_HEADER + bytes(100), False),
    ),
    (
        "data: wrong magic",
        _idx_file("t10k-images-idx3-ubyte", b"\x00\x00\x99\x03" + bytes(100), False),
    ),
    (
        "data: huge declared shape",
        _idx_file(
            "t10k-images-idx3-ubyte", struct.pack(">IIII", 0x803, 2**31, 2**16, 2**16), False
        ),
    ),
    (
        "data: corrupt gzip",
        lambda s: (
            (s / "data").mkdir(),
            (s / "data" / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + os.urandom(500)),
        ),
    ),
]


def data_cases() -> Iterator[Case]:
    for name, prepare in DATA_TAMPERS:
        argv = [
            "evaluate",
            "{run}",
            "--n",
            "3",
            "--methods",
            "split",
            "--digit-source",
            "mnist",
            "--data-dir",
            "data",
        ]
        yield Case("tampered file", name, argv, prepare, "error")


MIXTURE_TAMPERS: list[tuple[str, Callable[[Path], None]]] = [
    ("mixtures: a corrupt PNG among good ones", lambda s: _mixture_folder(s, corrupt=True)),
    ("mixtures: a .npy with NaN", lambda s: _mixture_folder(s, nan=True)),
    ("mixtures: sizes differ", lambda s: _mixture_folder(s, sizes=True)),
]


def _mixture_folder(sandbox: Path, corrupt=False, nan=False, sizes=False) -> None:
    import numpy as np
    from PIL import Image

    folder = sandbox / "mixtures"
    folder.mkdir()
    for i in range(20):
        Image.fromarray(np.full((28, 28), 60 + i, np.uint8)).save(folder / f"{i:03d}.png")
    if corrupt:
        (folder / "010.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    if nan:
        np.save(folder / "extra.npy", np.full((2, 28, 28), np.nan, np.float32))
    if sizes:
        Image.fromarray(np.zeros((30, 30), np.uint8)).save(folder / "odd.png")


def mixture_cases() -> Iterator[Case]:
    for name, prepare in MIXTURE_TAMPERS:
        argv = [
            "train",
            "--config",
            "{config}",
            "--set",
            "data.mixtures=mixtures",
            "--set",
            "train.max_steps=2",
            "--no-progress",
            "--run-dir",
            "r",
        ]
        yield Case("tampered file", name, argv, prepare, "error")


def all_cases() -> Iterator[Case]:
    yield from run_cases()
    yield from separator_cases()
    yield from data_cases()
    yield from mixture_cases()
