"""Mixture consistency: the separated parts must add up to the mixture they came from.

A latent fit leaves a residual y - sum_k G_k(z_k) that no generator explains: thin details of a
stroke, the exact grey level of an overlap. The mixture itself knows those pixels. Projecting
the fitted parts onto the set of parts that sum to y and stay in the data range [0, 1] puts
every mixture pixel into some part and takes the closest such parts (in L2, pixel by pixel):

    x = argmin ||x - g||^2  subject to  sum_k x_k = y,  0 <= x_k <= 1,

solved by x_k = clamp(g_k + tau, 0, 1) with the per-pixel shift tau found by bisection (the sum
is monotone in tau). This is the mixture-consistency step of speech separation (Wisdom et al.,
ICASSP 2019) with the signals' known range added; it needs the identity operator (the whole
mixture observed, unclipped), so it applies to demixing, not to compressive sensing.

>>> g = torch.tensor([[0.9], [0.3]])  # two parts of one pixel whose mixture is 1.6
>>> project_onto_mixture(g[None], torch.tensor([[1.6]]))[0].flatten().tolist()
[1.0, 0.6000000238418579]
"""

from __future__ import annotations

import torch

BISECTION_STEPS = 60


def project_onto_mixture(
    estimates: torch.Tensor, mixtures: torch.Tensor, low: float = 0.0, high: float = 1.0
) -> torch.Tensor:
    """The parts closest to ``estimates`` [N, K, ...] that sum to ``mixtures`` [N, ...].

    Each part stays in [low, high]; a mixture pixel outside [K low, K high] (which no parts in
    range can sum to) is met as closely as the range allows.
    """
    parts = estimates.double()
    count = parts.shape[1]
    target = mixtures.double().clamp(count * low, count * high).unsqueeze(1)
    below = low - parts.amax(1, keepdim=True)  # sum at tau = below is K low <= target
    above = high - parts.amin(1, keepdim=True)  # sum at tau = above is K high >= target
    for _ in range(BISECTION_STEPS):
        middle = (below + above) / 2
        short = (parts + middle).clamp(low, high).sum(1, keepdim=True) < target
        below = torch.where(short, middle, below)
        above = torch.where(short, above, middle)
    return (parts + (below + above) / 2).clamp(low, high).to(estimates.dtype)
