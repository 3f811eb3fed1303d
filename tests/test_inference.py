"""Latent fitting, permutation matching and model loading on small real generators."""

from __future__ import annotations

import torch

from demixgan.evaluation.metrics import match_components, psnr
from demixgan.evaluation.separation import score_method
from demixgan.inference.loading import load_model
from demixgan.inference.options import FitOptions
from demixgan.inference.solver import fit_latents
from demixgan.models.superposition_model import LearnedComponent, SuperpositionModel
from demixgan.networks.registry import build_generator
from demixgan.spec.config import load_config
from demixgan.training.loop import train


def _tiny_model(seed: int = 0) -> SuperpositionModel:
    torch.manual_seed(seed)
    return SuperpositionModel(
        [
            LearnedComponent("a", build_generator("dcgan", 4, hidden=32, channels=8)),
            LearnedComponent("b", build_generator("dcgan", 4, hidden=32, channels=8)),
        ]
    )


def test_fitting_recovers_observations_the_model_can_produce():
    model = _tiny_model()
    g = torch.Generator().manual_seed(1)
    truth = model.sample_latents(8, g)
    with torch.no_grad():
        y = model(truth)
    start = fit_latents(model, y, FitOptions(iterations=0, restarts=1, seed=3)).measurement_error
    fit = fit_latents(model, y, FitOptions(iterations=200, lr=0.05, restarts=3, seed=3))
    assert fit.components.shape == (8, 2, 1, 28, 28)
    assert fit.measurement_error.mean() < 0.05 * start.mean()
    assert psnr(fit.components.sum(1), y).mean() > 35


def test_more_restarts_never_fit_worse_and_generators_stay_frozen():
    model = _tiny_model()
    before = [p.clone() for p in model.parameters()]
    y = torch.rand(8, 1, 28, 28)
    one = fit_latents(model, y, FitOptions(iterations=30, restarts=1, seed=5))
    many = fit_latents(model, y, FitOptions(iterations=30, restarts=6, seed=5))
    assert many.measurement_error.mean() < one.measurement_error.mean()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.requires_grad for p in model.parameters())


def test_chunking_gives_the_same_fit_as_one_batch():
    model = _tiny_model()
    y = torch.rand(6, 1, 28, 28)
    whole = fit_latents(model, y, FitOptions(iterations=20, restarts=2, seed=2, chunk=4096))
    assert whole.components.shape[0] == 6
    chunked = fit_latents(model, y, FitOptions(iterations=20, restarts=2, seed=2, chunk=4))
    # Each latent's update depends only on its own residual, so chunks change nothing.
    assert torch.allclose(chunked.components, whole.components, atol=1e-5)


def test_alternating_updates_are_the_papers_block_coordinate_descent():
    """Each block's step differentiates only its own generator; the result must equal plain
    block-coordinate Adam that backpropagates through every generator."""
    from demixgan.models.superposition_model import uniform_latents

    model = _tiny_model()
    y = torch.rand(5, 1, 28, 28)
    fit = fit_latents(
        model, y, FitOptions(iterations=15, lr=0.05, update="alternating", seed=4, restarts=1)
    )
    g = torch.Generator().manual_seed(4)
    z = {k: uniform_latents(5, d, g).requires_grad_(True) for k, d in model.latent_dims().items()}
    optimizers = {k: torch.optim.Adam([z[k]], lr=0.05) for k in z}
    model.requires_grad_(False).eval()
    for _ in range(15):
        for k in z:
            optimizers[k].zero_grad()
            (
                (model.generators["a"](z["a"]) + model.generators["b"](z["b"]) - y) ** 2
            ).sum().backward()
            optimizers[k].step()
    for k in z:
        assert torch.allclose(fit.latents[k], z[k].detach(), atol=1e-5)


def test_matching_finds_the_permutation():
    truths = torch.rand(20, 3, 1, 28, 28)
    estimates = truths[:, [2, 0, 1]] + 0.01 * torch.randn(20, 3, 1, 28, 28)
    assert match_components(estimates, truths) == [1, 2, 0]


def test_exchangeable_parts_are_matched_per_mixture():
    truths = torch.rand(20, 2, 1, 28, 28)
    swapped = truths.clone()
    swapped[::2] = truths[::2].flip(1)  # half the mixtures come out in the other order
    names = ["digit-a", "digit-b"]
    whole_set = score_method("m", swapped, truths, names)
    each = score_method("m", swapped, truths, names, per_mixture=True)
    assert whole_set.scores["digit-a"]["mse"][0] > 0.05  # half the images scored on the wrong part
    assert each.scores["digit-a"]["mse"] == (0.0, 0.0)
    assert each.matching == {"digit-a": "best per mixture", "digit-b": "best per mixture"}


def test_a_trained_run_loads_without_pickles(tmp_path):
    config = load_config("configs/tiny-demix.toml", ["train.max_steps=4"])
    result = train(config, tmp_path / "run", progress=False)
    model, loaded_config = load_model(result.run_dir)
    assert loaded_config == config
    assert model.learned == ("digit", "sines")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        assert model(model.sample_latents(2, g)).shape == (2, 1, 28, 28)


def test_coupled_latents_derive_from_the_first_even_when_smaller():
    torch.manual_seed(0)
    components = [
        LearnedComponent("digit", build_generator("dcgan", 6, hidden=32, channels=8)),
        LearnedComponent("curve", build_generator("dcgan", 2, hidden=32, channels=8)),
    ]
    g = torch.Generator().manual_seed(0)
    scaled = SuperpositionModel(components, coupling="scaled", coupling_scale=0.1)
    z = scaled.sample_latents(5, g)
    assert z["curve"].shape == (5, 2)
    torch.testing.assert_close(z["curve"], 0.1 * z["digit"][:, :2])
    same = SuperpositionModel(components, coupling="identical").sample_latents(5, g)
    torch.testing.assert_close(same["curve"], same["digit"][:, :2])


class _LinearImages(torch.nn.Module):
    """G(z) = B z on 28 x 28: a generator whose l2 fit is the projection onto B's span."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.basis = torch.nn.Parameter(
            torch.randn(784, latent_dim, generator=torch.Generator().manual_seed(0)) / 28
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.basis.T).view(-1, 1, 28, 28)


def test_nonnegative_residual_lets_bright_corruption_go_unexplained():
    model = SuperpositionModel([LearnedComponent("x", _LinearImages(16))])
    g = torch.Generator().manual_seed(1)
    truth = model.sample_latents(6, g)
    with torch.no_grad():
        clean = model(truth)
    lines = torch.zeros_like(clean)
    lines[:, :, :, 9] = lines[:, :, 20, :] = 1.0  # light added by a vertical and a horizontal line
    errors = {}
    for residual in ("l2", "nonnegative"):
        fit = fit_latents(
            model,
            clean + lines,
            FitOptions(iterations=300, lr=0.05, residual=residual, seed=2, restarts=1),
        )
        errors[residual] = (fit.components[:, 0] - clean).pow(2).mean().item()
    assert errors["nonnegative"] < 0.1 * errors["l2"], errors
