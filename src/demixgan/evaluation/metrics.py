"""Image metrics (peak 1) and permutation-invariant matching of estimated to true components.

>>> mse(torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.1)).tolist()
[0.010000000707805157, 0.010000000707805157]
"""

from __future__ import annotations

import torch


def mse(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error [N]."""
    return (estimate - truth).pow(2).flatten(1).mean(1)


def psnr(estimate: torch.Tensor, truth: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Per-image PSNR in dB with peak 1: 10 log10(1 / MSE), as in the paper's tables."""
    return 10 * torch.log10(1.0 / (mse(estimate, truth) + eps))


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
