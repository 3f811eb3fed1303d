"""Checkpoints that load without pickles and survive a process killed at any moment.

One checkpoint at step N is three files in a run's checkpoints directory:

* ``step-00000000N.safetensors``: every module's tensors, keys ``<module name>.<state_dict key>``,
  so a generator loads with safetensors alone, without this repository's module paths;
* ``step-00000000N.resume.pt``: optimizer and RNG state (``torch.save``), read back only with
  ``torch.load(weights_only=True)``, which refuses anything that would run code;
* ``step-00000000N.json``: the sidecar (architecture, names, data recipe, versions, and the
  SHA-256 of the other two files). It is written last, so its presence marks the checkpoint
  complete, and the hashes expose a truncated or edited file instead of loading it.

Every file goes to a temp file that is renamed into place, so at each instant the newest
complete checkpoint is either the previous one or the new one.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import pickle
import platform
import re
import reprlib
import stat
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import safetensors
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.overrides import TorchFunctionMode

from demixgan import __version__
from demixgan.errors import DemixganError
from demixgan.io.atomic import atomic_path, check_writable_dir
from demixgan.io.json_files import json_problem
from demixgan.io.run_files import CHECKPOINT_DIR
from demixgan.spec.validation import whole

CHECKPOINT_FORMAT = "demixgan-checkpoint"
FORMAT_VERSION = 1

_WEIGHTS, _SIDECAR, _RESUME = ".safetensors", ".json", ".resume.pt"
# Final files, and the temp files atomic_path makes beside them (".<final name>.<random>.tmp").
_FINAL_NAME = re.compile(r"step-(\d{9,})(\.safetensors|\.json|\.resume\.pt)")
_TEMP_NAME = re.compile(r"\.step-(\d{9,})(?:\.safetensors|\.json|\.resume\.pt)\..+\.tmp")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RESERVED = (
    "format",
    "format_version",
    "step",
    "modules",
    "weights_file",
    "weights_sha256",
    "resume_file",
    "resume_sha256",
    "created",
    "versions",
)
_CHUNK = 1 << 20
#: The sidecar field that says where a training checkpoint's steps ran (device, torch
#: threads): the same seed gives the same weights only on the same device and thread count.
TRAINED_ON = "trained_on"
#: A sidecar is a few kilobytes; a far larger "sidecar" is not one and is not read into memory.
MAX_SIDECAR_BYTES = 16 << 20
#: Sidecars nest a few levels (config -> components -> a table); deeper nesting is tampering.
MAX_SIDECAR_DEPTH = 32
#: Floating dtypes whose values are checked to be finite when weights load.
_CHECKED_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint: its three paths and the sidecar's content."""

    step: int
    weights_path: Path
    sidecar_path: Path
    resume_path: Path
    metadata: dict


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as a safetensors header describes it, before any of its data is read."""

    dtype: str  # safetensors' name: "F32", "I64", "BOOL", ...
    shape: tuple[int, ...]


def _subject(key: str) -> str:
    return "the network built to receive it"


@dataclass(frozen=True)
class Fit:
    """What a checkpoint's weights must fit before any tensor is read: the modules they are
    loaded into (their state_dicts' shapes and dtypes; see ``shapes_only``), and the words of
    the error that names the first tensor that does not fit.

    ``what`` completes "The weights of PATH do not fit ...", ``subject(key)`` names what builds
    a tensor ("the config (latent_dim = 8)"), ``remedy`` ends the message.
    """

    modules: Mapping[str, nn.Module]
    what: str = "the networks built to receive them"
    subject: Callable[[str], str] = _subject
    remedy: str = (
        "The checkpoint was written for other networks (another run, or one whose configuration "
        "was edited since): use a checkpoint of this run, or start a new one."
    )


def save_checkpoint(
    directory: str | os.PathLike,
    step: int,
    modules: Mapping[str, torch.nn.Module],
    metadata: Mapping[str, Any],
    resume_state: Mapping[str, Any] | None,
    keep_last: int = 3,
    keep_every: int = 0,
) -> Checkpoint:
    """Write the checkpoint of ``step`` (weights, resume file, sidecar last), then prune.

    Everything a programming error can break (metadata, tensors, resume state) is checked
    before the first file is touched. Only the newest ``keep_last`` complete checkpoints (always
    including this one) are kept, and beyond them those of a step that is a multiple of
    ``keep_every`` (0: none), the milestones a run is compared at while it checkpoints more often;
    leftovers of interrupted saves older than the newest complete checkpoint are deleted.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, not {step!r}")
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
        raise ValueError(f"keep_last must be an int >= 1, not {keep_last!r}")
    if isinstance(keep_every, bool) or not isinstance(keep_every, int) or keep_every < 0:
        raise ValueError(f"keep_every must be an int >= 0, not {keep_every!r}")
    if not all(isinstance(key, str) for key in metadata):
        raise TypeError("checkpoint metadata keys must be strings (JSON object keys)")
    clashes = [key for key in _RESERVED if key in metadata]
    if clashes:
        raise ValueError(f"checkpoint metadata may not set the reserved keys {clashes}")
    sidecar_text(dict(metadata))  # a TypeError now rather than after the weights are written
    tensors, keys = _flatten(modules)
    resume_bytes = None if resume_state is None else _serialize_resume(resume_state)

    directory = check_writable_dir(directory, "checkpoints")
    weights_path, sidecar_path, resume_path = _paths(directory, f"step-{step:09d}")
    try:
        # Re-saving a step: drop its sidecar first, so no instant pairs it with new files.
        _remove(sidecar_path, weights_path, resume_path)
        with atomic_path(weights_path) as tmp:
            save_file(tensors, str(tmp))
            weights_sha256 = _sha256(tmp, sync=True)
        resume_sha256 = None
        if resume_bytes is not None:
            with atomic_path(resume_path) as tmp:
                _write_synced(tmp, resume_bytes)
            resume_sha256 = hashlib.sha256(resume_bytes).hexdigest()
        sidecar = {
            **metadata,
            "format": CHECKPOINT_FORMAT,
            "format_version": FORMAT_VERSION,
            "step": step,
            "modules": keys,
            "weights_file": weights_path.name,
            "weights_sha256": weights_sha256,
            "resume_file": resume_path.name if resume_bytes is not None else None,
            "resume_sha256": resume_sha256,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": {
                "demixgan": __version__,
                "torch": torch.__version__,
                "safetensors": safetensors.__version__,
                "python": platform.python_version(),
            },
        }
        text = sidecar_text(sidecar)
        with atomic_path(sidecar_path) as tmp:
            _write_synced(tmp, text.encode("utf-8"))
        _prune(directory, step, keep_last, keep_every)
    except OSError as exc:
        raise DemixganError(
            f"Could not write the checkpoint of step {step} to '{directory}': "
            f"{exc.strerror or exc}. The previous checkpoints are intact; free disk space or fix "
            "the directory's permissions, then resume the run."
        ) from None
    return Checkpoint(step, weights_path, sidecar_path, resume_path, json.loads(text))


def list_checkpoints(directory: str | os.PathLike) -> list[Checkpoint]:
    """The complete checkpoints in ``directory`` (sidecar present and valid), ascending step.

    Files are not hashed here; :func:`latest_checkpoint` does that.
    """
    found = []
    for step, sidecar_path in _sidecar_files(Path(directory)):
        try:
            found.append(_read_checkpoint(sidecar_path, step))
        except DemixganError:
            continue
    return found


@dataclass(frozen=True)
class Skipped:
    """A newer checkpoint passed over on the way to the newest usable one, and why."""

    sidecar_path: Path
    reason: str

    def __str__(self) -> str:
        return f"Skipping checkpoint '{self.sidecar_path}': {self.reason}"


def newest_usable(
    directory: str | os.PathLike, *, verify: bool = True
) -> tuple[Checkpoint | None, list[Skipped]]:
    """The newest complete checkpoint whose files match their recorded hashes (or None), and
    the newer ones that were unreadable or failed verification, newest first."""
    skipped = []
    for step, sidecar_path in reversed(_sidecar_files(Path(directory))):
        try:
            checkpoint = _read_checkpoint(sidecar_path, step)
            if verify:
                _verify(checkpoint.weights_path, checkpoint.metadata["weights_sha256"], "weights")
                if checkpoint.metadata.get("resume_file") is not None:
                    _verify(checkpoint.resume_path, checkpoint.metadata["resume_sha256"], "resume")
        except DemixganError as exc:
            skipped.append(Skipped(sidecar_path, str(exc)))
            continue
        return checkpoint, skipped
    return None, skipped


def latest_checkpoint(directory: str | os.PathLike, *, verify: bool = True) -> Checkpoint | None:
    """The newest complete checkpoint whose files match their recorded hashes, or None.

    Newer checkpoints that are unreadable or fail verification are skipped with a warning
    naming them, so a corrupted file costs one checkpoint interval, not the run.
    """
    latest, skipped = newest_usable(directory, verify=verify)
    for passed in skipped:
        warnings.warn(str(passed), stacklevel=2)
    return latest


def unusable(directory: str | os.PathLike, skipped: list[Skipped]) -> DemixganError:
    """The error for a directory whose checkpoints all failed their checks."""
    which = "its one checkpoint" if len(skipped) == 1 else f"all {len(skipped)} checkpoints"
    return DemixganError(
        f"'{directory}' holds no usable checkpoint: {which} failed the checks (the newest, "
        f"'{skipped[0].sidecar_path}': {skipped[0].reason.split('. ')[0].rstrip('.')}). "
        "Restore the damaged files from their source, or pass another run directory or "
        ".safetensors checkpoint file."
    )


def read_sidecar(path: str | os.PathLike) -> dict:
    """Read and validate the sidecar of a checkpoint (``path``: its .json or its .safetensors).

    Whatever the file holds (not JSON, a directory, nesting 100,000 levels deep, gigabytes), the
    result is a validated sidecar or a DemixganError.
    """
    path = Path(path)
    sidecar_path = _companion(path, _SIDECAR)
    raw = _read_sidecar_bytes(path, sidecar_path)
    data, problem = json_problem(raw, MAX_SIDECAR_DEPTH)
    if problem is not None:
        raise DemixganError(
            f"The checkpoint sidecar '{sidecar_path}' is not valid JSON ({problem}): it is "
            "truncated, damaged or was edited. Use another checkpoint, or copy this one again "
            "from its source."
        )
    _validate(data, sidecar_path)
    return data


def _read_sidecar_bytes(given: Path, sidecar_path: Path) -> bytes:
    """The sidecar's bytes: a regular file of at most ``MAX_SIDECAR_BYTES``."""
    try:
        if not stat.S_ISREG(sidecar_path.stat().st_mode):
            raise DemixganError(
                f"The checkpoint sidecar '{sidecar_path}' is not a regular file (it is a "
                "directory or a device). Give the .json file written next to a checkpoint's "
                ".safetensors weights."
            )
        with open(sidecar_path, "rb") as file:
            raw = file.read(MAX_SIDECAR_BYTES + 1)
    except FileNotFoundError:
        if given != sidecar_path and _exists(given):
            raise DemixganError(
                f"The checkpoint sidecar '{sidecar_path}' does not exist: the checkpoint is "
                "incomplete (its save was interrupted) or its .json file was not copied along "
                "with the weights. Copy the .json file that belongs to these weights next to "
                "them, or use another checkpoint."
            ) from None
        weights_path = _companion(given, _WEIGHTS)
        raise DemixganError(
            f"The checkpoint '{given}' does not exist: neither its weights '{weights_path}' nor "
            f"its sidecar '{sidecar_path}' is there. Check the path: give a run directory of "
            "'demixgan train' or a checkpoint's .safetensors file (for example "
            "checkpoints/step-000001000.safetensors)."
        ) from None
    except OSError as exc:
        raise DemixganError(
            f"Cannot read the checkpoint sidecar '{sidecar_path}': {exc.strerror or exc}. Check "
            "the file and its permissions, or use another checkpoint."
        ) from None
    if len(raw) > MAX_SIDECAR_BYTES:
        raise DemixganError(
            f"The checkpoint sidecar '{sidecar_path}' is larger than {MAX_SIDECAR_BYTES >> 20} "
            "MiB, while demixgan writes a few kilobytes there: it is not a checkpoint sidecar. "
            "Use another checkpoint."
        )
    return raw


def _exists(path: Path) -> bool:
    """Whether anything (even a dangling link) is at ``path``."""
    return path.exists() or path.is_symlink()


def read_header(path: str | os.PathLike) -> dict[str, TensorInfo]:
    """Name, dtype and shape of every tensor of a safetensors file, read from its header alone.

    safetensors also checks that the header is at most 100 MB and that every tensor lies
    inside the file, so the shapes bound what loading can allocate.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode  # a link loop is reported as such, not as a missing file
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        with safe_open(str(path), framework="pt") as file:
            slices = {key: file.get_slice(key) for key in file.keys()}  # noqa: SIM118
            header = {k: TensorInfo(t.get_dtype(), tuple(t.get_shape())) for k, t in slices.items()}
    except FileNotFoundError:
        raise _missing(path, "weights") from None
    except (SafetensorError, OSError) as exc:
        raise _unreadable(path, exc) from None
    return header


def load_weights(
    path: str | os.PathLike,
    *,
    verify: bool = True,
    fit: Fit | Mapping[str, nn.Module] | None = None,
) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """Load a checkpoint's weights as ``{module name: state_dict}`` plus its sidecar.

    ``path`` is the .safetensors file or its .json sidecar. Only safetensors is parsed (no
    pickle). With ``verify``, the weights must match the SHA-256 the sidecar records. Before
    any tensor is read, the header must list exactly the tensors the sidecar names and, with
    ``fit`` (modules, or a :class:`Fit`), hold the shapes and kinds of dtype their state_dicts
    have. Floating tensors must be finite: NaN weights are refused, not demixed.
    """
    path = Path(path)
    sidecar = read_sidecar(path)
    weights_path = _companion(path, _WEIGHTS)
    if verify:
        _verify(weights_path, sidecar["weights_sha256"], "weights")
    header = read_header(weights_path)
    listing = sidecar["modules"]
    expected = {f"{name}.{key}" for name, keys in listing.items() for key in keys}
    if set(header) != expected:
        raise DemixganError(
            f"The tensors in '{weights_path}' do not match the list in its sidecar "
            f"({len(set(header) - expected)} unexpected, {len(expected - set(header))} missing): "
            "the weights and the .json belong to different checkpoints. Keep each checkpoint's "
            "files together, or use another checkpoint."
        )
    if fit is not None:
        _check_fit(weights_path, header, listing, fit if isinstance(fit, Fit) else Fit(fit))
    try:
        flat = load_file(weights_path)
    except (SafetensorError, OSError, RuntimeError) as exc:
        # Also a file removed since it was hashed (a writer pruning it), which safetensors
        # reports as a RuntimeError.
        if not weights_path.is_file():
            raise _missing(weights_path, "weights") from None
        raise _unreadable(weights_path, exc) from None
    if set(flat) != expected:  # replaced since its header was read
        raise DemixganError(
            f"The checkpoint weights '{weights_path}' changed while they were loaded. Load them "
            "again once nothing writes to the file."
        )
    _check_finite(weights_path, flat)
    weights = {name: {key: flat[f"{name}.{key}"] for key in keys} for name, keys in listing.items()}
    return weights, sidecar


def _unreadable(path: Path, exc: Exception) -> DemixganError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return DemixganError(
        f"The checkpoint weights '{path}' cannot be read as safetensors ({reason}): the file is "
        "tampered or truncated. Use another checkpoint, or copy this one again from its source."
    )


def _kind(dtype: str | torch.dtype) -> str:
    """What a dtype holds, by safetensors name ("F32") or torch dtype: the classes of values
    load_state_dict converts within (a float16 export loads into float32), "" for the rest."""
    name = str(dtype).removeprefix("torch.")
    if name in ("F16", "BF16", "F32", "F64", "float16", "bfloat16", "float32", "float64"):
        return "floating-point"
    if name in ("BOOL", "bool"):
        return "boolean"
    if name.startswith(("I", "U", "int", "uint")):
        return "integer"
    return ""  # complex, float8 and the like: nothing demixgan saves


def _shape(shape: tuple[int, ...] | torch.Size) -> str:
    return str(list(shape))


def _check_fit(
    path: Path, header: Mapping[str, TensorInfo], listing: Mapping[str, list[str]], fit: Fit
) -> None:
    """Refuse weights that ``fit.modules`` cannot take, naming the first tensor that differs."""

    def refuse(detail: str) -> DemixganError:
        return DemixganError(
            f"The weights of '{path}' do not fit {fit.what}: {detail}. {fit.remedy}"
        )

    for name, module in fit.modules.items():
        if name not in listing:
            raise refuse(
                f"they hold no '{name}' network (only {', '.join(map(repr, listing)) or 'none'})"
            )
        built = {f"{name}.{key}": value for key, value in module.state_dict().items()}
        stored = [f"{name}.{key}" for key in listing[name]]
        missing = [key for key in built if key not in header]
        extra = [key for key in stored if key not in built]
        if missing or extra:
            counts = f"{len(missing)} missing from the file, {len(extra)} unexpected"
            if missing:
                raise refuse(
                    f"{fit.subject(missing[0])} builds {missing[0]}, which the file lacks "
                    f"({counts})"
                )
            raise refuse(
                f"the file holds {extra[0]}, which {fit.subject(extra[0])} does not build "
                f"({counts})"
            )
        for key, tensor in built.items():
            info = header[key]
            if info.shape != tuple(tensor.shape):
                raise refuse(
                    f"{key} has shape {_shape(info.shape)} in the file but "
                    f"{fit.subject(key)} builds {_shape(tensor.shape)}"
                )
            if _kind(info.dtype) != _kind(tensor.dtype) or not _kind(info.dtype):
                raise refuse(
                    f"{key} holds {info.dtype} values in the file but {fit.subject(key)} builds "
                    f"a {str(tensor.dtype).removeprefix('torch.')} tensor"
                )


def _check_finite(path: Path, flat: Mapping[str, torch.Tensor]) -> None:
    """Refuse NaN or infinite weights: a network with them computes NaN everywhere."""
    bad = {}
    for key, tensor in sorted(flat.items()):
        if tensor.dtype in _CHECKED_FLOATS:
            count = tensor.numel() - int(torch.isfinite(tensor).sum())
            if count:
                bad[key] = count
    if bad:
        key, count = next(iter(bad.items()))
        more = f", and {len(bad) - 1} more tensors hold some too" if len(bad) > 1 else ""
        raise DemixganError(
            f"The checkpoint weights '{path}' hold non-finite values: {key} has {count} NaN or "
            f"infinite among its {flat[key].numel()} values{more}. A network with them computes "
            "NaN for every input; training diverged before the save or the file was tampered with. "
            "Use another (earlier) checkpoint."
        )


#: Factories that allocate a tensor of a given size; ``shapes_only`` moves large ones to meta.
_FACTORIES = frozenset({torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn})
#: Under ``shapes_only``, tensors of more elements than this have no storage.
_META_ABOVE = 1 << 16


class _LargeOnMeta(TorchFunctionMode):
    """Create every tensor of more than ``_META_ABOVE`` elements on the meta device."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = dict(kwargs or {})
        if func in _FACTORIES and kwargs.get("device") is None and _numel(args) > _META_ABOVE:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def _numel(args: tuple) -> int:
    """Elements a factory call's size arguments ask for (0 where they are not a size)."""
    size = args[0] if args and isinstance(args[0], tuple | list | torch.Size) else args
    if not all(isinstance(n, int) for n in size):
        return 0
    return math.prod(size)


@contextmanager
def shapes_only() -> Iterator[None]:
    """Build modules whose state_dicts have the true shapes and dtypes, at almost no cost.

    For checking a checkpoint before its tensors are read: the sizes a tampered sidecar asks
    for (a hidden width of 2e9) must cost nothing. Unlike ``torch.device("meta")``, only
    tensors of more than 65,536 elements are made without storage, so the small buffers some
    networks compute from the image size (with boolean masks, which meta tensors cannot
    evaluate) are still computed. The global RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]), _LargeOnMeta():
        yield


def plan(
    build: Callable[[], Mapping[str, nn.Module]], path: str | os.PathLike, what: str
) -> dict[str, nn.Module]:
    """The modules ``build`` makes under ``shapes_only``, for a :class:`Fit`.

    A size no machine could hold (beyond int64, or overflowing torch's storage size) is the
    sidecar's fault: it becomes one DemixganError naming ``what`` the sidecar records.
    """
    try:
        with shapes_only():
            return dict(build())
    except (RuntimeError, TypeError, ValueError, OverflowError, MemoryError) as exc:
        raise DemixganError(
            f"The checkpoint '{path}' records {what} that cannot be built ({type(exc).__name__}: "
            f"{reprlib.repr(str(exc))}): its sidecar was edited or written by another program. "
            "Use another checkpoint."
        ) from None


def load_resume_state(checkpoint: Checkpoint) -> dict:
    """Load the optimizer and RNG state of ``checkpoint``; hash-checked, never unpickles code."""
    if checkpoint.metadata.get("resume_file") is None:
        raise DemixganError(
            f"The checkpoint of step {checkpoint.step} ('{checkpoint.sidecar_path}') was saved "
            "without optimizer and RNG state, so training cannot continue from it. Start a new "
            "run, or resume from a checkpoint written by training."
        )
    path = checkpoint.resume_path
    _verify(path, checkpoint.metadata["resume_sha256"], "resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DemixganError(
            f"The resume file '{path}' holds objects other than tensors and plain data "
            f"({_refused_global(exc)}); demixgan never loads such files, because unpickling them "
            "can run arbitrary code. It was not written by demixgan or has been tampered with: "
            "resume from another checkpoint or start a new run."
        ) from None
    except Exception as exc:  # torch reports damaged archives with many exception types
        raise DemixganError(
            f"The resume file '{path}' cannot be loaded ({type(exc).__name__}: {exc}); it is "
            "damaged. Resume from another checkpoint or start a new run."
        ) from None
    if not isinstance(state, dict):
        raise DemixganError(
            f"The resume file '{path}' holds a {type(state).__name__}, not the dictionary "
            "demixgan writes: it was not written by demixgan. Resume from another checkpoint."
        )
    return state


# -- writing ------------------------------------------------------------------------------


def sidecar_text(data: dict) -> str:
    """Strict JSON (no NaN/inf, which other readers reject); anything else is a TypeError."""
    try:
        return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except ValueError as exc:
        raise TypeError(f"checkpoint metadata is not JSON-serialisable: {exc}") from None


def _flatten(
    modules: Mapping[str, torch.nn.Module],
) -> tuple[dict[str, torch.Tensor], dict[str, list[str]]]:
    """Prefixed CPU copies of every state_dict (copies: safetensors rejects shared storage)."""
    tensors: dict[str, torch.Tensor] = {}
    keys: dict[str, list[str]] = {}
    for name, module in modules.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"module names must be non-empty strings, not {name!r}")
        state = module.state_dict()
        keys[name] = sorted(state)
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name}.{key} is a {type(value).__name__}; only tensors are saved")
            full = f"{name}.{key}"
            if full in tensors:
                raise ValueError(f"two modules give the tensor key {full!r}; rename a module")
            tensors[full] = value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
    return tensors, keys


def _serialize_resume(state: Mapping[str, Any]) -> bytes:
    """``torch.save`` bytes, checked to load with weights_only=True, so no run is unresumable."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    data = buffer.getvalue()
    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise TypeError(
            f"resume_state must hold only tensors, numbers, strings, lists, tuples and dicts, "
            f"which torch.load(weights_only=True) accepts ({_refused_global(exc)})"
        ) from None
    return data


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _prune(directory: Path, saved: int, keep_last: int, keep_every: int) -> None:
    """Keep ``saved``, the newest others up to ``keep_last`` and every multiple of
    ``keep_every``; clear interrupted leftovers."""
    complete = list_checkpoints(directory)
    others = [c for c in reversed(complete) if c.step != saved]
    milestones = {c.step for c in complete if keep_every and c.step % keep_every == 0}
    kept = {saved} | {c.step for c in others[: keep_last - 1]} | milestones
    for old in others[keep_last - 1 :]:
        if old.step not in milestones:
            _remove(old.sidecar_path, old.weights_path, old.resume_path)  # sidecar first
    newest = max(c.step for c in complete)
    for entry in directory.iterdir():
        if not entry.is_file():
            continue
        if match := _TEMP_NAME.fullmatch(entry.name):
            # A temp file of a step whose save has completed (or was abandoned) is dead.
            if (step := _step_of(match[1])) is not None and step <= newest:
                entry.unlink(missing_ok=True)
        elif match := _FINAL_NAME.fullmatch(entry.name):
            step = _step_of(match[1])
            if step is not None and step < newest and step not in kept:
                entry.unlink(missing_ok=True)


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


# -- reading ------------------------------------------------------------------------------


def _step_of(digits: str) -> int | None:
    """The step a file name's digits spell, or None if they are not its canonical padding."""
    step = int(digits)
    return step if f"{step:09d}" == digits else None


def _paths(directory: Path, stem: str) -> tuple[Path, Path, Path]:
    return (
        directory / f"{stem}{_WEIGHTS}",
        directory / f"{stem}{_SIDECAR}",
        directory / f"{stem}{_RESUME}",
    )


def _companion(path: Path, suffix: str) -> Path:
    """The file of the same checkpoint with ``suffix``, from its .json or .safetensors file."""
    for known in (_SIDECAR, _WEIGHTS):
        if path.name.endswith(known):
            return path.with_name(path.name[: -len(known)] + suffix)
    missing = "" if _exists(path) else " does not exist and"
    raise DemixganError(
        f"'{path}'{missing} is not a checkpoint file: give the .safetensors weights or the .json "
        "sidecar of a checkpoint (for example checkpoints/step-000001000.safetensors), or a run "
        "directory."
    )


def _sidecar_files(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of every sidecar file name in ``directory``, ascending step."""
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _FINAL_NAME.fullmatch(entry.name)
        if match and match[2] == _SIDECAR and (step := _step_of(match[1])) is not None:
            found.append((step, entry))
    return sorted(found)


def _read_checkpoint(sidecar_path: Path, step: int) -> Checkpoint:
    sidecar = read_sidecar(sidecar_path)
    if sidecar["step"] != step:
        raise DemixganError(
            f"The checkpoint sidecar '{sidecar_path}' records step {sidecar['step']}, not the "
            f"step {step} of its name: it was renamed or tampered with. Use another checkpoint."
        )
    weights_path, _, resume_path = _paths(sidecar_path.parent, f"step-{step:09d}")
    return Checkpoint(step, weights_path, sidecar_path, resume_path, sidecar)


def _validate(data: Any, path: Path) -> None:
    """Raise DemixganError unless ``data`` is a sidecar this version can read."""
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise DemixganError(
            f"'{path}' is not a demixgan checkpoint sidecar (its \"format\" is not "
            f'"{CHECKPOINT_FORMAT}"). Give the .json file written next to a checkpoint\'s '
            ".safetensors weights."
        )
    version = data.get("format_version")
    if whole(version) and version > FORMAT_VERSION:
        raise DemixganError(
            f"The checkpoint '{path}' has format version {version}, but demixgan {__version__} "
            f"reads versions up to {FORMAT_VERSION}: it was written by a newer demixgan. Upgrade "
            "demixgan (pip install -U demixgan) to load it."
        )
    problems = []
    if not whole(version) or version < 1:
        problems.append("format_version")
    if not whole(data.get("step")) or data["step"] < 0:
        problems.append("step")
    modules = data.get("modules")
    if not (
        isinstance(modules, dict)
        and all(
            name
            and isinstance(keys, list)
            and all(isinstance(key, str) and key for key in keys)
            and len(set(keys)) == len(keys)
            for name, keys in modules.items()
        )
    ):
        problems.append("modules")
    if not isinstance(data.get("kind", ""), str):
        problems.append("kind")
    if not (_is_file_name(data.get("weights_file")) and _is_sha256(data.get("weights_sha256"))):
        problems.append("weights_file/weights_sha256")
    resume = data.get("resume_file"), data.get("resume_sha256")
    if resume != (None, None) and not (_is_file_name(resume[0]) and _is_sha256(resume[1])):
        problems.append("resume_file/resume_sha256")
    problems += [key for key in ("created", "versions") if key not in data]
    if problems:
        raise DemixganError(
            f"The checkpoint sidecar '{path}' is damaged: missing or invalid "
            f"{', '.join(problems)}. Use another checkpoint, or copy this one again from its "
            "source."
        )


def _is_file_name(value: Any) -> bool:
    """A plain name in the checkpoint's own directory, never a path elsewhere."""
    return isinstance(value, str) and value not in ("", ".", "..") and Path(value).name == value


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def _sha256(path: Path, *, sync: bool = False) -> str:
    """SHA-256 of a file; with ``sync``, also flush it to disk before it is renamed into place."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
        if sync:
            os.fsync(file.fileno())
    return digest.hexdigest()


def _verify(path: Path, expected: str, what: str) -> None:
    try:
        actual = _sha256(path)
    except FileNotFoundError:
        raise _missing(path, what) from None
    except OSError as exc:
        raise DemixganError(
            f"Cannot read the checkpoint {what} file '{path}': {exc.strerror or exc}. Check its "
            "permissions, or use another checkpoint."
        ) from None
    if actual != expected:
        raise DemixganError(
            f"The checkpoint {what} file '{path}' does not match the SHA-256 its sidecar records: "
            "it is tampered or truncated (for example by an interrupted copy or a full disk). "
            "Use another checkpoint, or copy this one again from its source."
        )


def _missing(path: Path, what: str) -> DemixganError:
    return DemixganError(
        f"The checkpoint {what} file '{path}' does not exist: the checkpoint is incomplete or "
        "its files were not copied together. Copy the missing file next to its .json sidecar, "
        "or use another checkpoint."
    )


def _refused_global(exc: pickle.UnpicklingError) -> str:
    """The global torch's weights-only unpickler refused, without its advice to disable it."""
    match = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return f"it refers to {match[1]}" if match else "it contains unsupported pickle content"


def check_finished_dir(directory: str | os.PathLike, kind: str, what: str) -> Path:
    """Create ``directory`` and make sure a finished ``kind`` model may be saved there.

    Saving replaces the checkpoints in the directory, so one holding checkpoints of another
    kind (a GAN run's, say) is refused rather than emptied. Call it before minutes of training.
    """
    path = check_writable_dir(directory, f"{what} checkpoint")
    others = [c for c in list_checkpoints(path) if c.metadata.get("kind") != kind]
    if others:
        raise DemixganError(
            f"'{path}' holds checkpoints that are not {what}s (e.g. '{others[0].sidecar_path}'"
            f", kind {others[0].metadata.get('kind')!r}); saving a {what} there would delete "
            "them. Choose another output directory."
        )
    return path


def save_finished(
    directory: str | os.PathLike,
    kind: str,
    what: str,
    modules: Mapping[str, torch.nn.Module],
    metadata: Mapping[str, Any],
) -> Checkpoint:
    """Write a finished model (no resume state) as step 0 with ``kind`` in its sidecar; an
    earlier one of the same kind there is replaced."""
    path = check_finished_dir(directory, kind, what)
    return save_checkpoint(path, 0, modules, {**metadata, "kind": kind}, None, keep_last=1)


def load_finished(
    path: str | os.PathLike,
    kind: str,
    what: str,
    writer: str,
    fit: Callable[[dict], Fit] | None = None,
) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """Weights and sidecar of a finished ``kind`` model from its directory or files.

    ``what`` names the kind for users ("an MNIST classifier"), ``writer`` the command that
    writes it; any other checkpoint (a GAN run's) is refused with both. ``fit(sidecar)`` gives
    the modules (see :func:`plan`) the weights must fit before they are read.
    """
    path = Path(path)
    if not _exists(path):
        raise DemixganError(
            f"'{path}' does not exist. Pass the directory written by '{writer}' or its "
            ".safetensors file."
        )
    if path.is_dir():
        # A GAN run directory keeps its checkpoints one level down: find them to name the kind.
        latest = latest_checkpoint(path) or latest_checkpoint(path / CHECKPOINT_DIR)
        if latest is None:
            raise DemixganError(
                f"'{path}' holds no complete checkpoint. Pass the directory written by "
                f"'{writer}' or its .safetensors file."
            )
        path = latest.weights_path
    sidecar = read_sidecar(path)
    found = sidecar.get("kind")
    if found != kind:
        raise DemixganError(
            f"The checkpoint '{path}' is a {found or 'untyped'} checkpoint, not {what} (its "
            f'sidecar\'s "kind" is {found!r}, not {kind!r}). Pass a checkpoint written by '
            f"'{writer}'."
        )
    weights, loaded = load_weights(path, fit=None if fit is None else fit(sidecar))
    if loaded != sidecar:
        raise changed_while_loading(path)
    return weights, loaded


def changed_while_loading(path: str | os.PathLike) -> DemixganError:
    """The error of a sidecar replaced between two reads of one load."""
    return DemixganError(
        f"The checkpoint '{path}' changed while it was loaded (its sidecar was rewritten). Load "
        "it again once nothing writes to it."
    )
