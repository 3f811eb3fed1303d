"""Classical baselines: ICA separates what it can, LASSO recovers sparse signals and digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from demixgan.data.sources import load_images
from demixgan.data.superposition import build_sampler, make_mixtures
from demixgan.evaluation.baselines import (
    ica_contributions,
    ica_demix,
    ica_shares,
    lasso_recover,
    with_rest_split,
)
from demixgan.evaluation.metrics import mse


def _gaussian_matrix(m: int, p: int, seed: int = 0) -> torch.Tensor:
    """A with i.i.d. N(0, 1/m) entries, float64."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(m, p, generator=generator, dtype=torch.float64) / m**0.5


def test_ica_separates_independent_sources_mixed_with_a_known_matrix():
    rng = np.random.default_rng(0)
    sources = np.stack([rng.uniform(-1, 1, 2000), rng.laplace(0, 1, 2000)], axis=1)
    mixing = np.array([[1.0, 0.5], [0.3, 1.0], [0.8, -0.4]])  # 3 sensors, 2 sources
    observations = sources @ mixing.T + 2.0
    shares = ica_contributions(observations, 2, seed=0)
    centred = sources - sources.mean(0)
    truths = [np.outer(centred[:, k], mixing[:, k]) for k in range(2)]
    for truth in truths:
        best = max(abs(np.corrcoef(share.ravel(), truth.ravel())[0, 1]) for share in shares)
        assert best > 0.99
    assert np.allclose(shares.sum(0), observations - observations.mean(0), atol=1e-8)


@pytest.fixture(scope="module")
def digit_sines() -> torch.Tensor:
    return make_mixtures(build_sampler("digit+sines", level=1, split="test"), 6, 0).mixtures


def test_ica_demix_components_sum_to_each_mixture(digit_sines):
    parts = ica_demix(digit_sines, n_components=2, seed=0)
    assert parts.shape == (6, 2, 1, 28, 28)
    assert parts.dtype == digit_sines.dtype
    assert torch.allclose(parts.sum(1), digit_sines, atol=1e-5)
    assert not torch.allclose(parts[:, 0], parts[:, 1])  # ICA did split, not just halve
    assert torch.equal(ica_demix(digit_sines[:2], seed=0), parts[:2])  # batch-independent


def test_ica_shares_leave_the_mean_out_and_the_rest_split_restores_the_sum(digit_sines):
    shares = ica_shares(digit_sines, n_components=2, seed=0)
    gap = (digit_sines - shares.sum(1)).flatten(1).mean(1)
    assert (gap > 0.05).all()  # the mean patch, which ICA removes, is not in any source
    assert torch.equal(with_rest_split(shares, digit_sines), ica_demix(digit_sines, seed=0))


def test_ica_demix_halves_a_blank_mixture(digit_sines):
    mixtures = torch.cat([torch.zeros(1, 1, 28, 28), digit_sines[:1]])
    parts = ica_demix(mixtures)
    assert torch.isfinite(parts).all()
    assert torch.equal(parts[0], torch.zeros(2, 1, 28, 28))


def test_lasso_recovers_a_sparse_vector_from_gaussian_measurements():
    p, m, k = 200, 80, 8
    generator = torch.Generator().manual_seed(1)
    x = torch.zeros(1, p, dtype=torch.float64)
    support = torch.randperm(p, generator=generator)[:k]
    x[0, support] = 1.0 + torch.rand(k, generator=generator, dtype=torch.float64)
    matrix = _gaussian_matrix(m, p)
    estimate = lasso_recover(x @ matrix.T, matrix, alpha=1e-3)
    assert (estimate - x).norm() < 0.05 * x.norm()
    assert set(estimate[0].abs().topk(k).indices.tolist()) == set(support.tolist())


def test_lasso_alpha_is_bora_et_al_lambda():
    # Their code: N(0, 1) matrix (sqrt(m) A here) and scikit-learn's alpha = lambda directly.
    from sklearn.linear_model import Lasso

    matrix = _gaussian_matrix(60, 100)
    y = torch.rand(2, 100, dtype=torch.float64) @ matrix.T
    scale = 60**0.5
    theirs = Lasso(alpha=0.1, fit_intercept=False).fit(scale * matrix.numpy(), scale * y.numpy().T)
    ours = lasso_recover(y, matrix, alpha=0.1)
    assert torch.allclose(ours, torch.from_numpy(theirs.coef_), atol=1e-3)


def test_lasso_recovers_digits_better_from_more_measurements():
    digits = load_images("mnist-embedded", "test", binarize=True).images[:4].flatten(1).double()
    errors = {}
    for m in (50, 300):
        matrix = _gaussian_matrix(m, digits.shape[1])
        estimate = lasso_recover(digits @ matrix.T, matrix).clamp(0, 1)
        errors[m] = mse(estimate, digits).mean().item()
    assert errors[300] < 0.6 * errors[50]


def test_lasso_reports_non_convergence_once_per_call_not_per_vector() -> None:
    """A cs run solves hundreds of LASSO problems: a warning per vector flooded its log."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(25, 784, generator=generator) / 5
    measurements = torch.randn(20, 25, generator=generator)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lasso_recover(measurements, matrix, alpha=1e-4)  # too weak a penalty to converge
    assert [w.category for w in caught] == [ConvergenceWarning]
    assert "of 20 measurement vectors (m = 25)" in str(caught[0].message)


def test_ica_reports_non_convergence_once_per_call_not_per_mixture() -> None:
    """ICA fits each mixture on its own: noise has no three sources to converge to, and a
    report of hundreds of such mixtures would print a warning each."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    noise = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ica_shares(noise, 3)
    assert [w.category for w in caught] == [ConvergenceWarning]
    assert "on 2 of 4 mixtures (3 sources)" in str(caught[0].message)
    assert caught[0].filename == __file__  # where the caller asked for it
