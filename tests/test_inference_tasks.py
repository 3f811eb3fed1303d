"""Each solver mode on small real trained generators: outcomes a user cares about."""

from __future__ import annotations

import pytest
import torch

import demixgan
from demixgan.data.families import get_family
from demixgan.errors import DemixganError
from demixgan.evaluation.metrics import psnr
from demixgan.inference.options import FitOptions
from demixgan.models.operators import GaussianOperator
from demixgan.spec.image import MNIST_IMAGE

FAST = FitOptions(iterations=100, restarts=3, lr=0.05, seed=1)


def _draw(trained, n: int, seed: int) -> torch.Tensor:
    """Components the trained generators can produce [n, K, 1, 28, 28]."""
    model = trained.model
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        parts = model.components(model.sample_latents(n, g), model.sample_known(n, g))
    return parts[:, [model.names.index(k) for k in model.learned]]


def test_denoising_removes_structured_corruption(tiny_runs):
    trained = demixgan.load(tiny_runs["denoise"])
    clean = _draw(trained, 8, seed=3)[:, 0]
    corrupted = clean + get_family("sines").sample(8, 1, torch.Generator().manual_seed(4))
    estimate = trained.denoise(corrupted, FAST)
    assert estimate.shape == (8, 1, 28, 28)
    assert psnr(estimate, clean).mean() > psnr(corrupted, clean).mean() + 3


@pytest.mark.parametrize("update", ["joint", "alternating"])
def test_demixing_recovers_both_components(tiny_runs, update):
    trained = demixgan.load(tiny_runs["demix"])
    truth = _draw(trained, 8, seed=5)
    mixtures = truth.sum(1)
    parts = trained.demix(mixtures, FitOptions(**{**FAST.__dict__, "update": update}))
    assert parts.shape == (8, 2, 1, 28, 28)
    for k in range(2):
        gain = psnr(parts[:, k], truth[:, k]).mean() - psnr(mixtures / 2, truth[:, k]).mean()
        assert gain > 3, f"component {k} only {gain:.1f} dB above the split ({update})"


def test_compressive_sensing_improves_with_more_measurements(tiny_runs):
    trained = demixgan.load(tiny_runs["denoise"])
    clean = _draw(trained, 6, seed=6)[:, 0]
    scores = []
    for m in (5, 200):
        operator = GaussianOperator(m, MNIST_IMAGE, seed=7)
        estimate = trained.recover(operator(clean), operator, FAST)[:, 0]
        scores.append(psnr(estimate, clean).mean().item())
    assert scores[1] > scores[0] + 3
    assert scores[1] > 25  # 200 Gaussian measurements pin down an 8-d latent


def test_convergence_stop_ends_early_and_latent_weight_shrinks_latents(tiny_runs):
    trained = demixgan.load(tiny_runs["denoise"])
    clean = _draw(trained, 4, seed=8)[:, 0]
    stopped = trained.fit(clean, FitOptions(iterations=1000, restarts=2, lr=0.05, tolerance=1e-2))
    assert stopped.iterations < 1000
    free = trained.fit(clean + 0.3, FitOptions(iterations=50, restarts=2))
    priced = trained.fit(clean + 0.3, FitOptions(iterations=50, restarts=2, latent_weight=50.0))
    assert priced.latents["digit"].norm(dim=1).mean() < free.latents["digit"].norm(dim=1).mean()


def test_tasks_check_the_checkpoint_kind_and_the_input(tiny_runs):
    denoiser, demixer = demixgan.load(tiny_runs["denoise"]), demixgan.load(tiny_runs["demix"])
    y = torch.rand(2, 1, 28, 28)
    with pytest.raises(DemixganError, match="cannot demix"):
        denoiser.demix(y)
    with pytest.raises(DemixganError, match="cannot denoise"):
        demixer.denoise(y)
    with pytest.raises(DemixganError, match="grey 28x28 images"):
        demixer.demix(torch.rand(2, 3, 28, 28))
    with pytest.raises(DemixganError, match="NaN or infinite"):
        demixer.demix(torch.full((2, 28, 28), float("nan")))
    with pytest.raises(DemixganError, match="empty"):
        demixer.demix(torch.zeros(0, 28, 28))
    with pytest.raises(DemixganError, match="restarts must be an integer >= 1"):
        FitOptions(restarts=0)


def test_l1_residual_resists_sparse_corruption_that_pulls_the_l2_fit(tiny_runs):
    trained = demixgan.load(tiny_runs["denoise"])
    clean = _draw(trained, 8, seed=6)[:, 0]
    g = torch.Generator().manual_seed(7)
    spikes = torch.zeros_like(clean).flatten(1)
    spikes.scatter_(1, torch.randint(0, 784, (8, 40), generator=g), 3.0)
    corrupted = clean + spikes.view_as(clean)
    scores = {}
    for residual in ("l2", "l1"):
        options = FitOptions(**{**FAST.__dict__, "residual": residual})
        scores[residual] = psnr(trained.denoise(corrupted, options), clean).mean().item()
    assert scores["l1"] > scores["l2"] + 2, scores
