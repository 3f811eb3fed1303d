"""Mixture consistency: separated parts add up to the mixture, stay in range, and score better."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import demixgan
from demixgan.data.superposition import build_sampler, make_mixtures
from demixgan.evaluation.metrics import psnr
from demixgan.experiments.demo import shipped_checkpoint
from demixgan.inference.consistency import project_onto_mixture
from demixgan.inference.options import FitOptions


def _feasible(n: int, k: int, g: torch.Generator) -> torch.Tensor:
    """Parts in [0, 1] with exact zeros and ones, as binary digits and saturated strokes have."""
    return (torch.rand(n, k, 1, 6, 6, generator=g) * 1.6 - 0.3).clamp(0, 1)


@pytest.mark.parametrize("count", [2, 3])
def test_projection_sums_to_the_mixture_in_range_and_is_the_closest_such_parts(count):
    g = torch.Generator().manual_seed(count)
    mixtures = _feasible(50, count, g).sum(1)
    estimates = torch.rand(50, count, 1, 6, 6, generator=g) * 1.4 - 0.2
    parts = project_onto_mixture(estimates, mixtures)
    assert torch.allclose(parts.sum(1), mixtures, atol=1e-5)
    assert parts.min() >= 0 and parts.max() <= 1
    distance = (parts - estimates).pow(2).sum(1)
    for _ in range(20):  # other parts that also sum to the mixture in range are never closer
        other = project_onto_mixture(_feasible(50, count, g), mixtures)
        assert (distance <= (other - estimates).pow(2).sum(1) + 1e-5).all()


def test_projection_keeps_consistent_parts_and_meets_impossible_mixtures_halfway():
    g = torch.Generator().manual_seed(0)
    parts = _feasible(20, 2, g)
    assert torch.allclose(project_onto_mixture(parts, parts.sum(1)), parts, atol=1e-6)
    too_bright = torch.full((1, 1, 2, 2), 2.5)
    assert project_onto_mixture(torch.zeros(1, 2, 1, 2, 2), too_bright).eq(1).all()


def test_consistent_parts_separate_real_test_mixtures_better_than_the_raw_generator_outputs():
    trained = demixgan.load(shipped_checkpoint())
    sampler = build_sampler("digit+sines", level=1, split="test", digit_source="mnist-embedded")
    batch = make_mixtures(sampler, 12, seed=7)
    options = FitOptions(iterations=100, restarts=2, lr=0.05, smoothing=2.0, seed=0)
    raw = trained.demix(batch.mixtures, options, consistent=False)
    parts = trained.make_consistent(raw, batch.mixtures)
    few, short = batch.mixtures[:3], replace(options, iterations=3)  # demix's default is that
    raw_few = trained.demix(few, short, consistent=False)
    assert torch.equal(trained.demix(few, short), trained.make_consistent(raw_few, few))
    assert torch.allclose(parts.sum(1), batch.mixtures, atol=1e-5)
    for k in range(2):  # the shipped generators are named digit, sines: the truth's order
        gain = psnr(parts[:, k], batch.components[:, k]) - psnr(raw[:, k], batch.components[:, k])
        assert gain.mean() > 1, f"component {k}: only {gain.mean():.2f} dB from consistency"
