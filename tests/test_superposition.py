"""Superposition recipes: exact linear mixtures, the right classes, determinism, disjoint splits."""

from __future__ import annotations

import pytest
import torch

from demixgan.data.sources import load_images
from demixgan.data.superposition import RECIPES, build_sampler, get_recipe, make_mixtures
from demixgan.errors import DemixganError

FASHION_RECIPES = {"fashion+fashion", "dress+bag", "digit8+dress"}


def _needs_fashion(name: str, request: pytest.FixtureRequest) -> None:
    if name in FASHION_RECIPES:
        request.getfixturevalue("fashion_dir")  # skips when Fashion-MNIST is not installed


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_mixes_its_components_exactly(name, request):
    _needs_fashion(name, request)
    sampler = build_sampler(name, split="test")
    batch = make_mixtures(sampler, 32, seed=1)
    assert batch.mixtures.shape == (32, 1, 28, 28)
    assert batch.components.shape == (32, len(RECIPES[name].components), 1, 28, 28)
    assert batch.mixtures.dtype == torch.float32
    assert torch.equal(batch.mixtures, batch.components.sum(dim=1))
    assert batch.components.min() >= 0 and batch.components.max() <= 1


@pytest.mark.parametrize(
    ("name", "expected"),
    [("digit1+digit2", (1, 2)), ("dress+bag", (3, 8)), ("digit8+dress", (8, 3))],
)
def test_class_pair_recipes_draw_only_their_classes(name, expected, request):
    _needs_fashion(name, request)
    batch = make_mixtures(build_sampler(name, split="train"), 200, seed=0)
    for k, label in enumerate(expected):
        assert set(batch.labels[:, k].tolist()) == {label}


def test_family_components_are_labelled_minus_one_and_levels_count_strokes():
    batch = make_mixtures(build_sampler("digit+lines", level=3), 50, seed=4)
    assert set(batch.labels[:, 1].tolist()) == {-1}
    lines = batch.components[:, 1, 0]
    full_rows = (lines == 1).all(dim=2).sum(dim=1)
    full_cols = (lines == 1).all(dim=1).sum(dim=1)
    assert torch.equal(full_rows + full_cols, torch.full((50,), 3))


def test_binary_digits_by_default_and_grayscale_on_request():
    binary = make_mixtures(build_sampler("digit+digit"), 64, seed=0).components
    assert set(torch.unique(binary).tolist()) <= {0.0, 1.0}
    gray = make_mixtures(build_sampler("digit+digit", binarize=False), 64, seed=0).components
    assert len(torch.unique(gray)) > 2


def test_same_seed_same_mixtures_other_seed_other_mixtures():
    sampler = build_sampler("digit+sines")
    first, again = make_mixtures(sampler, 16, seed=7), make_mixtures(sampler, 16, seed=7)
    other = make_mixtures(sampler, 16, seed=8)
    assert torch.equal(first.mixtures, again.mixtures)
    assert torch.equal(first.labels, again.labels)
    assert not torch.equal(first.mixtures, other.mixtures)
    rebuilt = make_mixtures(build_sampler("digit+sines"), 16, seed=7)
    assert torch.equal(first.mixtures, rebuilt.mixtures)


def test_two_digit_components_are_independent_draws():
    batch = make_mixtures(build_sampler("digit+digit"), 500, seed=3)
    a, b = batch.components[:, 0].flatten(1), batch.components[:, 1].flatten(1)
    assert (a == b).all(dim=1).float().mean() < 0.02
    agree = (batch.labels[:, 0] == batch.labels[:, 1]).float().mean()
    assert 0.03 < agree < 0.2  # about 1/10 for independent uniform classes


def test_test_mixtures_never_use_training_images():
    train = load_images("mnist-embedded", "train", binarize=True).images.flatten(1)
    train_keys = {row.numpy().tobytes() for row in train}
    batch = make_mixtures(build_sampler("digit+sines", split="test"), 100, seed=0)
    digits = batch.components[:, 0].flatten(1)
    assert not any(row.numpy().tobytes() in train_keys for row in digits)


def test_a_small_test_set_uses_each_image_once():
    sampler = build_sampler("digit1+digit2", split="test")
    digits = make_mixtures(sampler, 100, seed=0).components[:, 0].flatten(1)
    assert len({row.numpy().tobytes() for row in digits}) == 100


def test_sums_are_not_clipped_unless_asked():
    sampler = build_sampler("digit+sines")
    assert make_mixtures(sampler, 64, seed=0).mixtures.max() > 1
    clipped = make_mixtures(build_sampler("digit+sines", clip=True), 64, seed=0).mixtures
    assert clipped.max() <= 1


def test_full_mnist_test_split_feeds_recipes(shared_mnist_dir):
    sampler = build_sampler(
        "digit+sines", split="test", digit_source="mnist", data_dir=shared_mnist_dir
    )
    assert make_mixtures(sampler, 8, seed=0).mixtures.shape == (8, 1, 28, 28)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"recipe": "digit+noise"}, "Valid recipes"),
        ({"recipe": "digit+sines", "level": 0}, "level"),
        ({"recipe": "digit+sines", "level": 99}, "level"),
        ({"recipe": "digit+digit", "level": 2}, "no signal family"),
        ({"recipe": "digit+sines", "digit_source": "emnist"}, "Digits can come from"),
    ],
)
def test_bad_recipe_options_are_clear_errors(kwargs, needle):
    recipe = kwargs.pop("recipe")
    with pytest.raises(DemixganError, match=needle):
        build_sampler(recipe, **kwargs)


def test_recipe_lookup_names_the_components():
    assert [c.name for c in get_recipe("digit8+dress").components] == ["digit-8", "dress"]
