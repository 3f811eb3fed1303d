"""Run configuration: TOML files -> validated, frozen dataclasses, ``--set`` overrides, JSON.

A run is one :class:`RunConfig`: the data recipe whose mixtures the discriminator sees, the K
components whose sum models them (learned generators or known signal families), the
discriminator and the optimisation. All of it is checked before any work starts, by the validator
that checks every settings object (spec/validation.py: the dataclass types and the rules in
each field's metadata), so
every error names the file, the key path (``components[1].latent_dim``), the bad value and
what is allowed. Overrides are applied to the raw tables first and validated like the file.
The resolved config is written as JSON beside a run and parses back to the same object.

>>> config = parse_config(
...     {"components": [{"name": "digit", "kind": "learned"}]},
...     name="demo",
...     overrides=["train.batch_size=32", "components.digit.latent_dim=16", "data.level=2"],
... )
>>> config.name, config.train.batch_size, config.components[0].latent_dim, config.data.level
('demo', 32, 16, 2)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from demixgan.data.catalog import SPLITS
from demixgan.data.families import FAMILIES, MAX_LEVEL, MIN_LEVEL
from demixgan.data.superposition import DIGIT_SOURCES, RECIPES
from demixgan.errors import DemixganError
from demixgan.io.atomic import atomic_path
from demixgan.networks.precision import PRECISIONS
from demixgan.networks.registry import GENERATOR_ARCHS
from demixgan.spec.device import DEVICE_PATTERN
from demixgan.spec.image import MAX_SIDE
from demixgan.spec.validation import (
    Problem,
    build,
    hints,
    join,
    nesting_depth,
    rule,
    shown,
    suggest,
    unknown,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: Component names appear in override paths and file names: no dots, no spaces.
_COMPONENT_NAME = (r"[A-Za-z][A-Za-z0-9_+-]*", "starting with a letter, then letters, digits, _+-")
#: A known component's colour in RGB mixtures: learned by the GAN, or fixed.
_COLOR = (r"learned|#[0-9a-fA-F]{6}", "'learned' or a colour '#RRGGBB'")
#: Run names become directory names.
_RUN_NAME = (r"[A-Za-z0-9][A-Za-z0-9._+-]*", "of letters, digits and ._+-, starting alphanumeric")
_DEVICE = (DEVICE_PATTERN, "'auto', 'cpu', 'cuda' or 'cuda:N'")
#: Upper bounds of the network sizes: far above any real run (the paper: latent 100, hidden
#: 1024, 128 generator and 64 discriminator channels), far below sizes that cannot be allocated
#: (hidden = 2e9 alone would be 64 GB), so a typo or a tampered file is refused, not an OOM.
MAX_LATENT_DIM = 4096
MAX_HIDDEN = 16384
MAX_CHANNELS = 2048
#: Tables and arrays nest 3 levels in a run configuration; deeper nesting is not one.
MAX_DEPTH = 16


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """What the discriminator sees as real: mixtures of a recipe, one clean component, or a
    user's own observed ``mixtures`` (a folder of images or .npy stacks, any supported size),
    of which a seeded ``validation_share`` is held out; ``resize`` or ``crop`` (H, W) brings
    images of several sizes to one."""

    recipe: str = rule("digit+sines", choices=tuple(RECIPES))
    level: int | None = rule(None, ge=MIN_LEVEL, le=MAX_LEVEL)
    digit_source: str = rule("mnist-embedded", choices=DIGIT_SOURCES)
    split: str = rule("train", choices=SPLITS)
    binarize: bool | None = None
    clip: bool = False
    limit: int = rule(0, ge=0)
    data_dir: str | None = None
    observe: str | None = None
    mixtures: str | None = None
    resize: tuple[int, ...] | None = None
    crop: tuple[int, ...] | None = None
    validation_share: float = rule(0.1, ge=0, lt=1)


@dataclass(frozen=True, kw_only=True)
class ComponentConfig:
    """One summand of the model: a generator G_k(z_k) (learned) or a signal family (known)."""

    name: str = rule(pattern=_COMPONENT_NAME)
    kind: str = rule(choices=("learned", "known"))
    arch: str = rule("dcgan", choices=tuple(GENERATOR_ARCHS))
    latent_dim: int = rule(100, ge=1, le=MAX_LATENT_DIM)
    norm: str | None = rule(None, choices=("none", "batch"))
    hidden: int = rule(1024, ge=1, le=MAX_HIDDEN)
    channels: int = rule(128, ge=2, le=MAX_CHANNELS, even=True)
    mass_weight: float = rule(0.0, ge=0)
    family: str | None = rule(None, choices=tuple(FAMILIES))
    level: int | None = rule(None, ge=MIN_LEVEL, le=MAX_LEVEL)
    shares: str | None = None
    color: str | None = rule(None, pattern=_COLOR)


#: Network fields that a component sharing another's generator must repeat unchanged.
SHARED_NETWORK_FIELDS = ("arch", "latent_dim", "norm", "hidden", "channels")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """How the components' latents relate and how their sum is observed."""

    coupling: str = rule("independent", choices=("independent", "identical", "scaled"))
    coupling_scale: float = 0.1
    operator: str = rule("identity", choices=("identity",))


@dataclass(frozen=True, kw_only=True)
class DiscriminatorConfig:
    arch: str = rule("dcgan", choices=("dcgan",))
    channels: int = rule(64, ge=1, le=MAX_CHANNELS)
    spectral_norm: bool = False


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    loss: str = rule("paper", choices=("paper", "hinge"))
    r1_gamma: float = rule(0.0, ge=0)
    info_weight: float = rule(0.0, ge=0)
    info_dims: int = rule(4, ge=1)
    batch_size: int = rule(64, ge=1)
    epochs: int = rule(10, ge=1)
    max_steps: int = rule(0, ge=0)
    lr_g: float = rule(2e-4, gt=0, le=10.0)
    lr_d: float = rule(2e-4, gt=0, le=10.0)
    beta1: float = rule(0.5, ge=0, lt=1)
    beta2: float = rule(0.999, ge=0, lt=1)
    d_steps: int = rule(1, ge=1)
    checkpoint_every: int = rule(500, ge=1)
    keep_last: int = rule(3, ge=1)
    keep_every: int = rule(0, ge=0)
    log_every: int = rule(50, ge=1)
    snapshot_every_epoch: bool = True
    checkpoint_every_epoch: bool = True
    precision: str = rule("float32", choices=PRECISIONS)
    device: str = rule("auto", pattern=_DEVICE)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A whole run; build it with :func:`load_config` or :func:`parse_config` (validated)."""

    name: str = rule(pattern=_RUN_NAME)
    seed: int = rule(0, ge=0)
    data: DataConfig = field(default_factory=DataConfig)
    components: tuple[ComponentConfig, ...]
    model: ModelConfig = field(default_factory=ModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    description: str = ""


def _check_run(config: RunConfig) -> None:
    """The rules that relate several keys (field-level rules are already checked)."""
    recipe = RECIPES[config.data.recipe]
    _check_observed(config.data)
    if config.data.level is not None and not recipe.has_family:
        raise Problem(
            "data.level",
            f"= {config.data.level} does not apply: recipe '{recipe.name}' mixes no signal "
            "family. Remove the key (--set data.level= unsets it)",
        )
    parts = [c.name for c in recipe.components]
    if config.data.observe is not None and config.data.observe not in parts:
        raise Problem(
            "data.observe",
            f"must name a component of recipe '{recipe.name}' ({', '.join(map(repr, parts))})"
            f"{suggest(config.data.observe, parts)}, but got {config.data.observe!r}",
        )
    if not config.components:
        raise Problem("components", "must list at least one component ([[components]] table)")
    seen: set[str] = set()
    for index, component in enumerate(config.components):
        path = f"components[{index}]"
        if component.name in seen:
            raise Problem(f"{path}.name", f"'{component.name}' is used by another component")
        seen.add(component.name)
        if component.shares is not None:
            _check_shared(config, index)
        if component.kind == "learned" and component.color is not None:
            raise Problem(
                f"{path}.color",
                "is for known components (a signal family drawn in that colour); a learned "
                "generator draws its own colours. Remove the key",
            )
        for key in ("family", "level"):
            value = getattr(component, key)
            if component.kind == "known" and value is None:
                raise Problem(f"{path}.{key}", "is required for a known component")
            if component.kind == "learned" and value is not None:
                raise Problem(
                    f"{path}.{key}",
                    f"= {value!r} is only for known components; a learned one is a generator. "
                    'Remove the key or set kind = "known"',
                )
    learned = learned_components(config)
    if not learned:
        raise Problem("components", "must include a learned component: nothing would be trained")
    if config.model.coupling != "independent" and (
        len(learned) < 2 or any(c.latent_dim > learned[0].latent_dim for c in learned[1:])
    ):
        raise Problem(
            "model.coupling",
            f"= '{config.model.coupling}' derives every learned component's latent from the "
            "first one's (its leading coordinates), so it needs at least two learned components "
            "and none with a larger latent_dim than the first, but got "
            f"{[(c.name, c.latent_dim) for c in learned]}",
        )


def _check_observed(data: DataConfig) -> None:
    """Keys of a user's own mixtures apply to them alone; a size is two sides in pixels."""
    if data.mixtures is not None:
        for key in ("level", "observe"):
            if getattr(data, key) is not None:
                raise Problem(
                    f"data.{key}",
                    "does not apply to observed mixtures (data.mixtures): they are the real "
                    "data as they are. Remove the key",
                )
    else:
        for key in ("resize", "crop", "validation_share"):
            if getattr(data, key) != getattr(DataConfig(), key):
                raise Problem(
                    f"data.{key}",
                    "applies to observed mixtures (data.mixtures) only; a recipe's validation "
                    "images are its 'validation' split (data.split). Remove the key",
                )
    if data.resize is not None and data.crop is not None:
        raise Problem("data.crop", "and data.resize both set a size: give one of them")
    for key in ("resize", "crop"):
        size = getattr(data, key)
        if size is not None and (len(size) != 2 or not all(1 <= side <= MAX_SIDE for side in size)):
            raise Problem(
                f"data.{key}",
                f"must be [HEIGHT, WIDTH] in pixels, each from 1 to {MAX_SIDE}, but got "
                f"{shown(list(size))}",
            )


def _check_shared(config: RunConfig, index: int) -> None:
    """A shared generator is an earlier learned component's own network, drawn again."""
    component, path = config.components[index], f"components[{index}].shares"
    owners = {c.name: c for c in config.components[:index] if c.kind == "learned"}
    owner = owners.get(component.shares)
    if component.kind != "learned" or owner is None or owner.shares is not None:
        candidates = [name for name, c in owners.items() if c.shares is None]
        raise Problem(
            path,
            f"= {component.shares!r} must name an earlier learned component that has its own "
            f"generator ({', '.join(map(repr, candidates)) or 'none here'}), and only a learned "
            "component can share one",
        )
    differing = [
        f"{key} {getattr(component, key)!r} vs. {getattr(owner, key)!r}"
        for key in SHARED_NETWORK_FIELDS
        if getattr(component, key) != getattr(owner, key)
    ]
    if differing:
        raise Problem(
            path,
            f"= {owner.name!r} draws with {owner.name!r}'s network, so the component must repeat "
            f"its network settings, but {'; '.join(differing)}",
        )


def _plain(value: Any) -> Any:
    """A mutable deep copy: mappings -> dicts, sequences (not strings) -> lists."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _parse_value(text: str) -> Any:
    """A TOML value (``true``, ``3``, ``1e-4``, ``"x"``), else the bare string."""
    try:
        parsed = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        return text
    except (RecursionError, ValueError):  # nested too deeply, or an integer of 4300+ digits
        raise Problem(f"override value {shown(text)}", "is not a value a setting takes") from None
    return parsed["value"] if len(parsed) == 1 else text


def _select(items: Any, selector: str, path: str) -> int:
    """The index of a component chosen by ``selector``: an index or a component name."""
    items = items if isinstance(items, list) else []
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if selector.isdigit() and int(selector) < len(items):
        return int(selector)
    if selector in names:
        return names.index(selector)
    raise Problem(
        join(path, selector),
        f"matches no component: use an index below {len(items)} or a name "
        f"({', '.join(map(repr, names))})",
    )


def _apply_override(raw: dict[str, Any], text: str) -> None:
    """Apply ``key=value`` to the raw tables; an empty value removes the key (its default)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise Problem(f"override {text!r}", "must have the form KEY=VALUE, e.g. seed=3")
    *parents, last = key.strip().split(".")
    node, cls, path, walk = raw, RunConfig, "", iter(parents)
    for name in walk:
        known = [f.name for f in fields(cls)]
        if name not in known:
            raise unknown(path, name, known)
        tp, path = hints(cls)[name], join(path, name)
        if get_origin(tp) is tuple:
            selector = next(walk, None)
            if selector is None:
                raise Problem(
                    path,
                    "needs a component index or name in an override: components.0.latent_dim=16",
                )
            items = node.setdefault(name, [])
            index = _select(items, selector, path)
            node, cls, path = items[index], get_args(tp)[0], f"{path}[{index}]"
        elif is_dataclass(tp):
            node, cls = node.setdefault(name, {}), tp
        else:
            raise Problem(path, f"is not a table, so '{key.strip()}' names nothing")
        if not isinstance(node, dict):
            raise Problem(path, f"must be a table, but got {shown(node)}")
    known = [f.name for f in fields(cls)]
    if last not in known:
        raise unknown(path, last, known)
    if value.strip():
        node[last] = _parse_value(value.strip())
    else:
        node.pop(last, None)


def _parse(
    data: Any,
    *,
    name: str,
    overrides: Sequence[str],
    source: str,
    advice: str = "Fix it in the file or the override",
    tables: Mapping[str, Any] | None = None,
) -> RunConfig:
    if overrides:
        source += " with " + " ".join(f"--set {text}" for text in overrides)
    try:
        if nesting_depth(data, MAX_DEPTH) > MAX_DEPTH:
            raise Problem(
                "the configuration",
                f"nests tables or arrays more than {MAX_DEPTH} levels deep, where a run "
                "configuration has 3",
            )
        raw = _plain(data)
        if not isinstance(raw, dict):
            raise Problem("the configuration", f"must be a table, but got {shown(data)}")
        for section, values in (tables or {}).items():  # the command line's own flags
            if isinstance(values, Mapping):
                raw.setdefault(section, {}).update(_plain(values))
            else:
                raw[section] = _plain(values)
        for text in overrides:
            _apply_override(raw, text)
        raw.setdefault("name", name)
        config = build(RunConfig, raw, "")
        _check_run(config)
    except Problem as problem:
        raise DemixganError(
            f"Invalid run configuration {source}: {problem}. {advice}; "
            "docs/configs.md lists every key with its type and allowed values."
        ) from None
    return config


def parse_config(
    data: Mapping[str, Any],
    *,
    name: str,
    overrides: Sequence[str] = (),
    source: str | None = None,
    advice: str | None = None,
) -> RunConfig:
    """Validate a configuration mapping; ``name`` is used when ``data`` has no ``name``.

    ``source`` says where it comes from in errors (default: its name), ``advice`` how to fix
    it (default: in the file or the override), e.g. for a configuration read from a sidecar.
    """
    extra = {} if advice is None else {"advice": advice}
    source = f"'{name}'" if source is None else source
    return _parse(data, name=name, overrides=overrides, source=source, **extra)


def load_config(
    path: str | os.PathLike,
    overrides: Sequence[str] = (),
    tables: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Read and validate a TOML run configuration; its name defaults to the file's stem.

    ``tables`` replace keys of the file before the overrides (``{"data": {"mixtures": ...}}``,
    ``{"components": [...]}``): what the command line's flags set."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise DemixganError(
            f"The run configuration file '{file}' does not exist. Pass the path of a TOML file, "
            "e.g. configs/tiny-demix.toml (docs/configs.md lists the shipped ones)."
        ) from None
    except OSError as exc:
        raise DemixganError(
            f"Cannot read the run configuration '{file}': {exc.strerror or exc}. Check the path "
            "and its permissions, then run the command again."
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DemixganError(
            f"The run configuration '{file}' is not valid UTF-8 TOML: {exc}. Fix the syntax "
            "there (docs/configs.md shows the layout) and run the command again."
        ) from None
    except RecursionError:
        raise DemixganError(
            f"The run configuration '{file}' nests arrays or tables too deeply to parse, where a "
            "run configuration nests 3 levels. Fix the file (docs/configs.md shows the layout)."
        ) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise DemixganError(
            f"The run configuration '{file}' holds a value TOML cannot represent here ({exc}). "
            "Fix it there (docs/configs.md lists every key) and run the command again."
        ) from None
    return _parse(data, name=file.stem, overrides=overrides, source=f"'{file}'", tables=tables)


#: The stroke generators draw from a few numbers: the size every shipped config gives them.
STROKE_ARCHS = ("curve", "curve-bounded", "curve-ink", "axis-lines", "line-ink")
SMALL_GENERATOR = {"latent_dim": 8, "hidden": 256}


def components_from_spec(text: str) -> list[dict[str, Any]]:
    """Component tables of a ``--components`` list: ``NAME=ARCH`` (a learned generator),
    ``NAME=OTHER`` (another learned component's generator, shared), ``NAME=FAMILY:LEVEL`` (a
    known signal family; ``:learned`` or ``:#RRGGBB`` adds its colour), comma-separated:
    ``digit=dcgan,strokes=curve``, ``photo=dcgan,pattern=lines:2:learned``. The stroke
    generators get the size of the shipped configs (``SMALL_GENERATOR``), the others the
    defaults of ``ComponentConfig``."""
    tables: list[dict[str, Any]] = []
    for item in (part.strip() for part in text.split(",")):
        name, sep, kind = (piece.strip() for piece in item.partition("="))
        family, colon, rest = kind.partition(":")
        level, _, color = rest.partition(":")
        names = [t["name"] for t in tables if t["kind"] == "learned"]
        if sep and name and kind in GENERATOR_ARCHS:
            small = SMALL_GENERATOR if kind in STROKE_ARCHS else {}
            tables.append({"name": name, "kind": "learned", "arch": kind, **small})
        elif sep and name and kind in names:
            owner = next(t for t in tables if t["name"] == kind)
            tables.append({**owner, "name": name, "shares": owner.get("shares") or kind})
        elif sep and name and colon and family in FAMILIES and level.isdigit():
            known = {"name": name, "kind": "known", "family": family, "level": int(level)}
            tables.append(known | ({"color": color} if color else {}))
        else:
            raise DemixganError(
                f"--components: {shown(item)} is not NAME=ARCH (a learned generator: "
                f"{', '.join(GENERATOR_ARCHS)}), NAME=OTHER (share an earlier learned "
                f"component's generator) or NAME=FAMILY:LEVEL[:COLOR] (a known signal family: "
                f"{', '.join(FAMILIES)}, level {MIN_LEVEL}..{MAX_LEVEL}, in RGB optionally "
                "'learned' or '#RRGGBB'); e.g. --components digit=dcgan,strokes=curve or "
                "photo=dcgan,pattern=lines:2:learned."
            )
    return tables


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """Plain JSON-serialisable data that :func:`parse_config` turns back into ``config``."""
    data = asdict(config)
    data["components"] = list(data["components"])
    return data


def write_resolved_config(config: RunConfig, path: str | os.PathLike) -> None:
    """Record exactly what a run used (defaults and overrides included), atomically."""
    text = json.dumps(config_to_dict(config), indent=2, sort_keys=True) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def learned_components(config: RunConfig) -> tuple[ComponentConfig, ...]:
    """The components that have a generator to train, in config order."""
    return tuple(c for c in config.components if c.kind == "learned")
