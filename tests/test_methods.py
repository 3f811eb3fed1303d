"""One way to separate: every method returns parts [N, K, C, H, W], and an evaluation is the
list of methods it is given (`demixgan evaluate --methods ...`)."""

from __future__ import annotations

import json

import pytest
import torch

import demixgan
from demixgan.cli.main import main
from demixgan.errors import DemixganError
from demixgan.inference.methods import (
    FIT_ROW,
    GENERATED_ROW,
    SEPARATOR_ROW,
    Ica,
    LatentFit,
    Mixture,
    Split,
    build_methods,
)
from demixgan.inference.options import FitOptions
from demixgan.inference.tasks import evaluate_checkpoint

FAST = FitOptions(iterations=5, restarts=1, seed=0)


@pytest.mark.filterwarnings("ignore:FastICA reached its iteration limit")  # noise has no sources
@pytest.mark.parametrize("parts", [2, 3])
def test_every_baseline_returns_k_parts_of_the_observations_shape(parts):
    """K = 3 as well as 2, grey and RGB: the split and ICA's full reading sum to each y."""
    for shape in ((1, 28, 28), (3, 32, 32)):
        y = torch.rand(2, *shape, generator=torch.Generator().manual_seed(parts))
        for method in (Split(parts), Mixture(parts), Ica(parts, seed=0)):
            estimate = method.separate(y)
            assert estimate.shape == (2, parts, *shape), method.name
            assert len(method.part_names) == parts
        assert torch.allclose(Split(parts).separate(y).sum(1), y)
        assert torch.allclose(Ica(parts).separate(y).sum(1), y, atol=1e-4)


def test_the_fits_two_rows_come_from_one_fit(tiny_runs):
    """G(z) as fitted and its consistent projection: one latent fit, two readings."""
    trained = demixgan.load(tiny_runs["demix"])
    calls = []
    methods = build_methods(["fit"], trained, FAST, progress=calls.append)
    assert [m.name for m in methods] == [FIT_ROW, GENERATED_ROW]
    y = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2
    consistent, generated = (m.separate(y) for m in methods)
    assert sum(calls) == pytest.approx(3)  # three mixtures fitted once
    assert torch.equal(generated, LatentFit(trained, FAST, consistent=False).separate(y))
    assert torch.allclose(consistent.sum(1), y.clamp(0, 2), atol=1e-4)


def test_an_evaluation_scores_the_methods_it_is_given(tiny_runs):
    trained = demixgan.load(tiny_runs["demix"])
    evaluation, separation = evaluate_checkpoint(trained, FAST, n=4, methods=("fit", "split"))
    rows = [row.method for row in evaluation.rows]
    assert rows == [FIT_ROW, GENERATED_ROW, "split y/2"]
    assert set(separation.estimates) == set(rows)


def test_methods_on_the_command_line(tiny_runs, tmp_path, capsys):
    out = tmp_path / "scores.json"
    args = ["evaluate", str(tiny_runs["demix"]), "--n", "4", "--iterations", "5", "--restarts"]
    assert main([*args, "1", "--methods", "split,mixture", "--json", str(out)]) == 0
    assert [row["method"] for row in json.loads(out.read_text())["rows"]] == [
        "input (mixture)",
        "split y/2",
    ]
    capsys.readouterr()
    assert main([*args, "1", "--methods", "fit,lasso"]) == 2
    err = capsys.readouterr().err
    assert "Unknown separation methods lasso" in err and "Traceback" not in err
    assert main([*args, "1", "--methods", "separator"]) == 2
    assert "add --separator DIR" in capsys.readouterr().err


def test_no_method_is_refused(tiny_runs):
    with pytest.raises(DemixganError, match="none given"):
        build_methods([], demixgan.load(tiny_runs["demix"]), FAST)


def test_three_parts_train_and_evaluate_end_to_end(tmp_path):
    """K = 3 (digit + sines + lines, three learned generators): training, the latent fit, ICA,
    the split y/3 and the table all take the third part."""
    from demixgan.spec.config import parse_config
    from demixgan.training.loop import train

    network = {"latent_dim": 8, "hidden": 32}
    config = parse_config(
        {
            "data": {"recipe": "digit+sines+lines", "limit": 64},
            "components": [
                {"name": "digit", "kind": "learned", "channels": 8, **network},
                {"name": "sines", "kind": "learned", "arch": "curve", **network},
                {"name": "lines", "kind": "learned", "arch": "axis-lines", **network},
            ],
            "discriminator": {"channels": 8},
            "train": {"batch_size": 16, "max_steps": 2, "checkpoint_every": 2},
        },
        name="three-parts",
    )
    trained = demixgan.load(train(config, tmp_path / "run", progress=False).run_dir)
    evaluation, separation = evaluate_checkpoint(trained, FAST, n=4)
    assert [row.method for row in evaluation.rows] == [
        FIT_ROW,
        GENERATED_ROW,
        "ICA",
        "ICA, shares only",
        "input (mixture)",
        "split y/3",
    ]
    assert all(parts.shape == (4, 3, 1, 28, 28) for parts in separation.estimates.values())
    assert "| lines PSNR |" in evaluation.table
    consistent = separation.estimates[FIT_ROW].sum(1)
    assert torch.allclose(consistent, separation.batch.mixtures.clamp(0, 3), atol=1e-4)


def _psnr(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    mse = (estimate - truth).pow(2).flatten(2).mean(2).clamp(min=1e-10)
    return (10 * torch.log10(1 / mse)).mean().item()


def test_the_pixel_rule_splits_digit_sines_exactly_but_not_ink():
    """Why the demo moved to ink: binary digits are exactly 1 and sines never are, so a lookup
    table of the pixel value separates digit + sines; ink reaches 1 like the digits."""
    from demixgan.data.superposition import build_sampler, make_mixtures
    from demixgan.inference.methods import PixelRule

    scores = {}
    for recipe, clip in (("digit+sines", False), ("digit+ink", True)):
        validation = make_mixtures(build_sampler(recipe, clip=clip), 500, seed=1)
        test = make_mixtures(build_sampler(recipe, split="test", clip=clip), 200, seed=2)
        rule = PixelRule.fit(validation.mixtures, validation.components, ("a", "b"))
        parts = rule.separate(test.mixtures)
        assert parts.shape == test.components.shape
        scores[recipe] = [_psnr(parts[:, k], test.components[:, k]) for k in range(2)]
        split = [_psnr(test.mixtures / 2, test.components[:, k]) for k in range(2)]
        assert min(a - b for a, b in zip(scores[recipe], split, strict=True)) > 1
    assert min(scores["digit+sines"]) > 40
    assert max(scores["digit+ink"]) < 25


def test_refine_improves_on_the_separators_start(tiny_runs):
    """On the model's own draws (which its generators draw exactly) a short fit from a weak
    separator's parts lands nearer the truth than those parts."""
    from demixgan.inference.options import SeparatorOptions
    from demixgan.training.separator import train_model_separator

    trained = demixgan.load(tiny_runs["demix"])
    weak = SeparatorOptions(steps=15, width=8, batch_size=16, remix_steps=0)
    separator = train_model_separator(trained, weak)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        parts = trained.model.components(trained.model.sample_latents(24, g))
    mixtures = parts.sum(1)
    start = trained.separate(mixtures, separator)
    refined = trained.refine(mixtures, separator, FitOptions(iterations=80, restarts=1, lr=0.05))
    assert refined.shape == start.shape
    assert _psnr(refined, parts) > _psnr(start, parts) + 1
    methods = build_methods(["refine", "separator"], trained, FAST, separator=separator)
    assert [m.name for m in methods] == ["demixing-GAN, separator + fit", SEPARATOR_ROW]
    with pytest.raises(DemixganError, match="needs a separator"):
        build_methods(["refine"], trained, FAST)
