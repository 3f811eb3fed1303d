"""Run configuration: shipped files load, overrides, every validation error, JSON round trip."""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace
from pathlib import Path

import pytest

from demixgan.errors import DemixganError
from demixgan.spec.config import (
    ComponentConfig,
    DataConfig,
    DiscriminatorConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    config_to_dict,
    learned_components,
    load_config,
    parse_config,
    write_resolved_config,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted((REPO / "configs").glob("*.toml"))
MINIMAL = {"components": [{"name": "digit", "kind": "learned"}]}
DEMIX = {
    "data": {"recipe": "digit+sines", "level": 1},
    "components": [
        {"name": "digit", "kind": "learned"},
        {"name": "sines", "kind": "learned", "latent_dim": 100},
    ],
}


def _parse(data: dict, *overrides: str) -> RunConfig:
    return parse_config(data, name="test", overrides=overrides)


def _error(data: dict, *overrides: str) -> str:
    with pytest.raises(DemixganError) as info:
        _parse(data, *overrides)
    return str(info.value)


def _with(**sections: dict) -> dict:
    """MINIMAL plus top-level keys / tables."""
    return {**MINIMAL, **sections}


def test_configs_directory_has_every_paper_setting():
    names = {path.stem for path in CONFIG_FILES}
    assert names == {
        "vanilla-mnist",
        "denoise-lines",
        "denoise-sines",
        "paper-demix-digit-sines",
        "paper-demix-digit-lines",
        "paper-demix-digit-waves",
        "paper-demix-digit-digit",
        "paper-demix-digits-1-2",
        "demix-fashion",
        "paper-demix-dress-bag",
        "demix-digit8-dress",
        "zcoupling-identical",
        "zcoupling-scaled",
        "tiny-demix",
        "tiny-split",
    }


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_every_config_file_loads_and_validates(path):
    config = load_config(path)
    assert config.name == path.stem
    assert path.read_text().startswith("# ")  # says which paper figure it reproduces
    assert learned_components(config)
    assert parse_config(config_to_dict(config), name="other") == config


def test_paper_settings_use_the_paper_networks_and_optimiser():
    for path in CONFIG_FILES:
        if path.stem.startswith("tiny-"):
            continue
        config = load_config(path)
        assert (config.train.loss, config.train.batch_size) == ("paper", 64)
        assert (config.train.lr_g, config.train.lr_d, config.train.beta1) == (2e-4, 2e-4, 0.5)
        assert config.discriminator == DiscriminatorConfig()
        for c in learned_components(config):
            assert (c.hidden, c.channels, c.norm) == (1024, 128, None)
            assert (c.arch, c.latent_dim) in {("dcgan", 100), ("infogan", 62)}


@pytest.mark.parametrize(
    ("stem", "recipe", "level", "observe", "kinds", "coupling"),
    [
        ("vanilla-mnist", "digit+sines", None, "digit", ("learned",), "independent"),
        ("denoise-lines", "digit+lines", 2, None, ("learned", "known"), "independent"),
        ("denoise-sines", "digit+sines", 1, None, ("learned", "known"), "independent"),
        ("paper-demix-digit-waves", "digit+waves", 1, None, ("learned", "learned"), "independent"),
        ("demix-digit8-dress", "digit8+dress", None, None, ("learned", "learned"), "independent"),
        ("zcoupling-identical", "digit+sines", 1, None, ("learned", "learned"), "identical"),
        ("zcoupling-scaled", "digit+sines", 1, None, ("learned", "learned"), "scaled"),
    ],
)
def test_config_files_describe_their_setting(stem, recipe, level, observe, kinds, coupling):
    config = load_config(REPO / "configs" / f"{stem}.toml")
    assert (config.data.recipe, config.data.level, config.data.observe) == (recipe, level, observe)
    assert tuple(c.kind for c in config.components) == kinds
    assert config.model.coupling == coupling


def test_specific_settings():
    denoise = load_config(REPO / "configs" / "denoise-lines.toml")
    assert denoise.components[1] == ComponentConfig(
        name="lines", kind="known", family="lines", level=2
    )
    mixed = load_config(REPO / "configs" / "demix-digit8-dress.toml")
    assert [(c.name, c.arch, c.latent_dim) for c in mixed.components] == [
        ("digit-8", "dcgan", 100),
        ("dress", "infogan", 62),
    ]
    assert load_config(REPO / "configs" / "zcoupling-scaled.toml").model.coupling_scale == 0.1
    tiny = load_config(REPO / "configs" / "tiny-demix.toml")
    assert {(c.latent_dim, c.hidden, c.channels) for c in tiny.components} == {(8, 32, 8)}
    assert (tiny.discriminator.channels, tiny.data.limit) == (8, 256)
    t = tiny.train
    assert (t.batch_size, t.max_steps, t.checkpoint_every, t.log_every) == (16, 20, 10, 5)


def test_defaults_are_filled_in():
    config = _parse(MINIMAL)
    assert config == RunConfig(
        name="test",
        data=DataConfig(),
        components=(ComponentConfig(name="digit", kind="learned"),),
        model=ModelConfig(),
        discriminator=DiscriminatorConfig(),
        train=TrainConfig(),
    )
    assert (config.seed, config.description, config.data.recipe) == (0, "", "digit+sines")
    c = config.components[0]
    assert (c.arch, c.latent_dim, c.norm, c.hidden, c.channels) == ("dcgan", 100, None, 1024, 128)
    assert (config.train.lr_g, config.train.beta1, config.train.device) == (2e-4, 0.5, "auto")
    assert _parse(_with(name="given")).name == "given"


def test_ints_become_floats_where_floats_are_expected():
    config = _parse(_with(train={"r1_gamma": 1, "lr_g": 1}))
    assert config.train.r1_gamma == 1.0 and isinstance(config.train.r1_gamma, float)
    assert isinstance(config.train.lr_g, float)


def test_configs_are_frozen_and_hashable():
    config = _parse(MINIMAL)
    with pytest.raises(AttributeError):
        config.seed = 1  # type: ignore[misc]
    assert hash(config) == hash(_parse(MINIMAL))


def test_learned_components_keeps_config_order():
    config = _parse(
        {
            "components": [
                {"name": "noise", "kind": "known", "family": "sines", "level": 1},
                {"name": "digit", "kind": "learned"},
            ]
        }
    )
    assert [c.name for c in learned_components(config)] == ["digit"]


# --- overrides -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "changed"),
    [
        ("train.batch_size=32", {"train": {"batch_size": 32}}),
        ("seed=3", {"seed": 3}),
        ("data.recipe=digit+lines", {"data": {"recipe": "digit+lines"}}),
        ("data.recipe='digit+waves'", {"data": {"recipe": "digit+waves"}}),
        ('description="a b"', {"description": "a b"}),
        ("train.lr_d=1e-4", {"train": {"lr_d": 1e-4}}),
        ("train.r1_gamma=10", {"train": {"r1_gamma": 10.0}}),
        ("discriminator.spectral_norm=true", {"discriminator": {"spectral_norm": True}}),
        ("train.device=cuda:1", {"train": {"device": "cuda:1"}}),
        (" train.epochs = 2 ", {"train": {"epochs": 2}}),
        ("data.level=", {"data": {"level": None}}),  # empty: back to the default
        ("name=", {"name": "test"}),
    ],
)
def test_override_changes_exactly_its_key(override, changed):
    base = _parse(DEMIX)
    expected = config_to_dict(base)
    for key, value in changed.items():
        if isinstance(value, dict):
            expected[key].update(value)
        else:
            expected[key] = value
    assert config_to_dict(_parse(DEMIX, override)) == expected


@pytest.mark.parametrize("selector", ["1", "sines"])
def test_component_override_by_index_or_name(selector):
    base = _parse(DEMIX)
    config = _parse(
        DEMIX, f"components.{selector}.latent_dim=16", f"components.{selector}.norm=none"
    )
    assert config.components[0] == base.components[0]
    assert config.components[1] == replace(base.components[1], latent_dim=16, norm="none")
    assert replace(config, components=base.components) == base


def test_overrides_apply_in_order_and_before_validation():
    # Each alone would be invalid (level on a recipe without a family, then the reverse).
    config = _parse(DEMIX, "data.recipe=digit+digit", "data.level=")
    assert (config.data.recipe, config.data.level) == ("digit+digit", None)
    assert _parse(DEMIX, "seed=1", "seed=2").seed == 2


def test_override_creates_missing_tables():
    config = _parse(MINIMAL, "train.batch_size=8", "model.operator=identity")
    assert config.train.batch_size == 8


def test_load_config_applies_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[[components]]\nname = "digit"\nkind = "learned"\n')
    config = load_config(path, ["components.digit.latent_dim=16", "train.max_steps=5"])
    assert (config.name, config.components[0].latent_dim, config.train.max_steps) == ("run", 16, 5)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.batch_sise=3", r"train\.batch_sise .*did you mean 'batch_size'"),
        ("trian.epochs=3", r"trian .*did you mean 'train'"),
        ("components.0.latent=3", r"components\[0\]\.latent .*did you mean 'latent_dim'"),
        ("components.noise.latent_dim=3", r"components\.noise matches no component.*'digit'"),
        ("components.5.latent_dim=3", r"components\.5 matches no component"),
        ("components.latent_dim=3", r"components needs a component index or name"),
        ("components=3", r"components must be an array of tables"),
        ("seed.x=3", r"seed is not a table"),
        ("batch_size", r"override 'batch_size' must have the form KEY=VALUE"),
        ("=3", r"must have the form KEY=VALUE"),
        ("train.batch_size=abc", r"train\.batch_size must be an integer, but got 'abc'"),
    ],
)
def test_bad_overrides_are_reported_like_file_errors(override, expected):
    message = _error(MINIMAL, override)
    assert re.search(expected, message), message
    assert f"--set {override}" in message


# --- validation ------------------------------------------------------------------------------

_LEARNED = {"name": "digit", "kind": "learned"}
_KNOWN = {"name": "noise", "kind": "known", "family": "sines", "level": 1}
_SHARING = {"name": "b", "kind": "learned", "shares": "digit"}
_LARGER_COUPLED_LATENT = {
    "model": {"coupling": "scaled"},
    "components": [{**_LEARNED, "latent_dim": 8}, {**_LEARNED, "name": "s", "latent_dim": 9}],
}


@pytest.mark.parametrize(
    ("data", "path", "detail"),
    [
        # unknown keys, with a suggestion
        (_with(sed=1), "sed", "did you mean 'seed'"),
        (_with(train={"batchsize": 3}), "train.batchsize", "did you mean 'batch_size'"),
        (_with(data={"recipie": "digit+lines"}), "data.recipie", "did you mean 'recipe'"),
        ({"components": [{**_LEARNED, "latnt_dim": 3}]}, "components[0].latnt_dim", "latent_dim"),
        # wrong types
        (_with(seed="1"), "seed", "must be an integer, but got '1' (str)"),
        (_with(seed=True), "seed", "must be an integer, but got True (bool)"),
        (_with(seed=1.0), "seed", "must be an integer"),
        (_with(train={"lr_g": True}), "train.lr_g", "must be a finite number"),
        (_with(train={"lr_g": float("nan")}), "train.lr_g", "must be a finite number"),
        (_with(data={"clip": 1}), "data.clip", "must be true or false, but got 1"),
        (_with(data={"level": None, "binarize": "yes"}), "data.binarize", "true or false"),
        (_with(train=3), "train", "must be a table, but got 3"),
        ({"components": {"name": "digit"}}, "components", "must be an array of tables"),
        ({"components": [3]}, "components[0]", "must be a table"),
        (_with(name=None), "name", "must be a string"),
        # out of range
        (_with(train={"batch_size": 0}), "train.batch_size", "must be an integer >= 1, but got 0"),
        (_with(train={"beta1": 1.0}), "train.beta1", ">= 0 and < 1"),
        (_with(train={"lr_d": 0}), "train.lr_d", "> 0"),
        (_with(train={"r1_gamma": -1}), "train.r1_gamma", ">= 0"),
        (_with(train={"max_steps": -1}), "train.max_steps", ">= 0"),
        (_with(seed=-1), "seed", ">= 0"),
        (_with(data={"limit": -5}), "data.limit", ">= 0"),
        (_with(data={"level": 11}), "data.level", "<= 10"),
        (_with(data={"level": 0}), "data.level", ">= 1"),
        ({"components": [{**_LEARNED, "channels": 7}]}, "components[0].channels", "even"),
        ({"components": [{**_LEARNED, "latent_dim": 0}]}, "components[0].latent_dim", ">= 1"),
        ({"components": [_LEARNED, {**_KNOWN, "level": 99}]}, "components[1].level", "<= 10"),
        # unknown names
        (_with(data={"recipe": "digit+sine"}), "data.recipe", "did you mean 'digit+sines'"),
        (_with(data={"digit_source": "emnist"}), "data.digit_source", "'mnist-embedded'"),
        (_with(data={"split": "val"}), "data.split", "one of 'train', 'validation', 'test'"),
        (_with(train={"loss": "wgan"}), "train.loss", "one of 'paper', 'hinge'"),
        (_with(train={"device": "gpu"}), "train.device", "'cuda:N'"),
        (_with(train={"device": "cuda:x"}), "train.device", "but got 'cuda:x'"),
        (_with(model={"coupling": "same"}), "model.coupling", "'identical'"),
        (_with(model={"operator": "blur"}), "model.operator", "'identity'"),
        (_with(discriminator={"arch": "infogan"}), "discriminator.arch", "'dcgan'"),
        ({"components": [{**_LEARNED, "arch": "dcgn"}]}, "components[0].arch", "'dcgan'"),
        ({"components": [{**_LEARNED, "norm": "layer"}]}, "components[0].norm", "'batch'"),
        ({"components": [_LEARNED, {**_KNOWN, "family": "sine"}]}, "[1].family", "'sines'"),
        ({"components": [{**_LEARNED, "kind": "fixed"}]}, "components[0].kind", "'known'"),
        ({"components": [{**_LEARNED, "name": "a.b"}]}, "components[0].name", "'a.b'"),
        (_with(name="../x"), "name", "but got '../x'"),
        # missing keys
        ({}, "components", "is required but missing"),
        ({"components": [{"kind": "learned"}]}, "components[0].name", "is required"),
        ({"components": [{"name": "digit"}]}, "components[0].kind", "is required"),
        ({"components": []}, "components", "at least one component"),
        # relations between keys
        ({"components": [_LEARNED, _LEARNED]}, "components[1].name", "used by another component"),
        ({"components": [_KNOWN]}, "components", "must include a learned component"),
        ({"components": [{**_LEARNED, "family": "sines"}]}, "components[0].family", "only for"),
        ({"components": [{**_LEARNED, "level": 1}]}, "components[0].level", "only for known"),
        ({"components": [_LEARNED, {**_KNOWN, "family": None}]}, "[1].family", "is required"),
        ({"components": [_LEARNED, {**_KNOWN, "level": None}]}, "[1].level", "is required"),
        (_with(data={"recipe": "digit+digit", "level": 1}), "data.level", "mixes no signal"),
        (_with(data={"observe": "digt"}), "data.observe", "did you mean 'digit'"),
        (_with(data={"recipe": "dress+bag", "observe": "digit"}), "data.observe", "'bag'"),
        (_with(model={"coupling": "identical"}), "model.coupling", "two learned components"),
        (_LARGER_COUPLED_LATENT, "model.coupling", "larger latent_dim than the first"),
        ({"components": [_LEARNED, {**_SHARING, "shares": "digt"}]}, "[1].shares", "'digit'"),
        ({"components": [_SHARING, _LEARNED]}, "[0].shares", "none here"),
        ({"components": [_LEARNED, {**_SHARING, "latent_dim": 8}]}, "[1].shares", "latent_dim 8"),
        ({"components": [_KNOWN, {**_SHARING, "shares": "sines"}]}, "[1].shares", "none here"),
        (
            {"components": [_LEARNED, _SHARING, {**_SHARING, "name": "c", "shares": "b"}]},
            "components[2].shares",
            "own generator ('digit')",
        ),
    ],
)
def test_validation_errors_name_the_key_path_and_value(data, path, detail):
    message = _error(data)
    assert message.startswith("Invalid run configuration 'test': ")
    assert path in message and detail in message, message
    assert "docs/configs.md" in message


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[components]]\nname = "digit"\nkind = "learned"\nlatent_dim = -1\n')
    with pytest.raises(DemixganError, match=r"'.*bad\.toml': components\[0\]\.latent_dim must"):
        load_config(path)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(DemixganError, match=r"nope\.toml' does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(DemixganError, match="Cannot read the run configuration"):
        load_config(tmp_path)  # a directory


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("seed = 1\n\n[train\nbatch_size = 3\n")
    with pytest.raises(DemixganError, match=r"broken\.toml' is not valid UTF-8 TOML: .*line 3"):
        load_config(path)
    path.write_bytes(b"seed = 1\n\xff\n")
    with pytest.raises(DemixganError, match="not valid UTF-8 TOML"):
        load_config(path)


def test_a_non_mapping_is_rejected():
    with pytest.raises(DemixganError, match="must be a table"):
        parse_config([1, 2], name="x")  # type: ignore[arg-type]


# --- round trip and resolved JSON ------------------------------------------------------------


def test_round_trip_through_dict_and_json():
    config = _parse(
        DEMIX,
        "components.digit.norm=batch",
        "data.binarize=false",
        "data.data_dir=/tmp/d",
        "train.r1_gamma=2",
        "description=x",
    )
    data = config_to_dict(config)
    assert isinstance(data["components"], list)
    assert parse_config(data, name="ignored") == config
    assert parse_config(json.loads(json.dumps(data)), name="ignored") == config


def test_write_resolved_config_is_atomic_sorted_json(tmp_path, monkeypatch):
    config = load_config(REPO / "configs" / "denoise-lines.toml")
    path = tmp_path / "run" / "config.json"
    write_resolved_config(config, path)
    text = path.read_text()
    assert text.endswith("\n") and '\n  "components": [' in text
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert parse_config(json.loads(text), name="x") == config
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary left

    # A write that fails half-way leaves the previous file intact and no temporary behind.
    def half_write(self: Path, data: str, **kwargs) -> None:
        Path.write_bytes(self, data[: len(data) // 2].encode())
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_resolved_config(replace(config, seed=9), path)
    assert path.read_text() == text
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]


# --- docs ------------------------------------------------------------------------------------


def test_docs_list_every_key_and_config_file():
    docs = (REPO / "docs" / "configs.md").read_text()
    sections = {
        "top level": RunConfig,
        "`[data]`": DataConfig,
        "`[[components]]`": ComponentConfig,
        "`[model]`": ModelConfig,
        "`[discriminator]`": DiscriminatorConfig,
        "`[train]`": TrainConfig,
    }
    tables = {"data", "components", "model", "discriminator", "train"}
    for section, cls in sections.items():
        for spec in fields(cls):
            if spec.name not in tables:
                assert f"| {section} | `{spec.name}` |" in docs, (section, spec.name)
    for path in CONFIG_FILES:
        assert f"`{path.name}`" in docs


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs" / "research").glob("*.toml")), ids=lambda p: p.stem
)
def test_research_configs_behind_documented_attempts_load(path):
    config = load_config(path)
    assert config.name == path.stem
    assert len(learned_components(config)) >= 2  # demixing attempts: K = 2, E28's K = 3


@pytest.mark.parametrize("settings", ["TEST_SETTINGS", "TRAIN_SETTINGS"])
def test_papers_architecture_rows_train_as_their_setting(settings):
    """A row of the paper's two DCGANs isolates the generators only if everything else (data,
    discriminator, loss, budget) is its setting's: a budget chosen on validation for the
    setting must reach both configs."""
    from demixgan.experiments import demixing
    from demixgan.experiments.demo import asset

    rows = [s for s in getattr(demixing, settings) if s.amortized and not s.peers]
    assert rows, "no paper's-architecture row to compare"
    for row in rows:
        assert row.config.endswith("-dcgan"), row.config  # else it would be compared to itself
        ours = load_config(asset(f"experiments/{row.config.removesuffix('-dcgan')}.toml"))
        papers = load_config(asset(f"experiments/{row.config}.toml"))
        assert (papers.data, papers.discriminator, papers.train, papers.seed) == (
            ours.data,
            ours.discriminator,
            ours.train,
            ours.seed,
        ), row.config
        assert {c.arch for c in papers.components} == {"dcgan"}, row.config
