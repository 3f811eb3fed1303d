"""Image metrics (peak 1) and permutation-invariant matching of estimated to true components.

>>> mse(torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.1)).tolist()
[0.010000000707805157, 0.010000000707805157]
>>> ssim(torch.zeros(2, 1, 28, 28), torch.zeros(2, 1, 28, 28)).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: Pixels at each edge where the 11 x 11 SSIM window would reach outside the image.
SSIM_BORDER = 5


def mse(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error [N].

    Its mean over a test set is the paper's per-pixel reconstruction error (squared error per
    pixel, averaged over images), so no separate helper is needed: ``mse(x_hat, x).mean()``.
    """
    return (estimate - truth).pow(2).flatten(1).mean(1)


def psnr(estimate: torch.Tensor, truth: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Per-image PSNR in dB with peak 1: 10 log10(1 / MSE), as in the paper's tables."""
    return 10 * torch.log10(1.0 / (mse(estimate, truth) + eps))


def ssim(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM [N] of [N, C, H, W] images, with data range 1 like ``psnr``'s peak.

    Wang et al.'s setting and border rule: an 11 x 11 Gaussian window of sigma 1.5, k1 0.01,
    k2 0.03, averaged only where the window lies inside the image (the central 18 x 18 of a
    28 x 28 image), as scikit-image's ``structural_similarity(..., data_range=1.0,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``. torchmetrics' own mean
    would also cover the reflect-padded border, 59% of a 28 x 28 image, so its SSIM map is
    cropped here. The range is fixed rather than read from the data, where torchmetrics would
    take it over the whole batch and so make one image's score depend on the others.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    _, full = structural_similarity_index_measure(
        estimate, truth, gaussian_kernel=True, sigma=1.5, data_range=1.0, return_full_image=True
    )
    inside = full[..., SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER]
    return inside.flatten(1).mean(1)


def match_components(estimates: torch.Tensor, truths: torch.Tensor) -> list[int]:
    """Best assignment of estimated to true components over a whole test set (Hungarian).

    ``estimates`` [N, K_est, ...] and ``truths`` [N, K_true, ...]; returns, for each true
    component, the index of the estimate assigned to it (lowest total MSE).
    """
    from scipy.optimize import linear_sum_assignment

    cost = torch.stack(
        [
            torch.stack(
                [mse(estimates[:, e], truths[:, t]).mean() for e in range(estimates.shape[1])]
            )
            for t in range(truths.shape[1])
        ]
    )
    rows, cols = linear_sum_assignment(cost.numpy())
    assignment = dict(zip(rows.tolist(), cols.tolist(), strict=True))
    return [assignment[t] for t in range(truths.shape[1])]


def aligned(estimates: torch.Tensor, truths: torch.Tensor, *, per_mixture: bool) -> torch.Tensor:
    """The estimates in the order of the truths, as every table scores them: each mixture's
    best order where the parts are exchangeable (``align_each``), else one order over the whole
    set (``match_components``: a generator may have learned the other part). Validation
    choices score the same way, so a choice and the report it serves agree on what is good."""
    if per_mixture:
        return align_each(estimates, truths)
    return estimates[:, match_components(estimates, truths)]


def order_errors(
    estimates: torch.Tensor, truths: torch.Tensor, orders: Sequence[Sequence[int]]
) -> torch.Tensor:
    """Per-mixture mean squared error [N, len(orders)] of the estimates taken in each order.

    The one permutation matching of demixgan (as asteroid's PIT wrapper serves training and
    evaluation): the separator's loss takes each mixture's best order among those its
    exchangeable parts allow, evaluation the best of all orders (``align_each``).
    """
    return torch.stack(
        [(estimates[:, list(order)] - truths).pow(2).flatten(1).mean(1) for order in orders],
        dim=1,
    )


def align_each(estimates: torch.Tensor, truths: torch.Tensor) -> torch.Tensor:
    """Each mixture's estimates in the order of its truths, by that mixture's best permutation.

    For exchangeable parts (two digits from the same classes) no generator owns one part, so
    matching over the whole set, as ``match_components`` does, would score an arbitrary order;
    asteroid's permutation-invariant losses decide per example in the same way. Returns
    [N, K_true, ...] (lowest MSE per mixture; K! orders, so for a handful of parts).
    """
    from itertools import permutations

    orders = torch.tensor(list(permutations(range(estimates.shape[1]), truths.shape[1])))
    best = orders[order_errors(estimates, truths, orders.tolist()).argmin(1)]  # [N, K_true]
    return estimates[torch.arange(len(best))[:, None], best]
