"""Classical baselines: FastICA demixing of single mixtures and LASSO compressive recovery.

Both only need the observations, like the GAN methods they are compared with; the setups, the
figures they reach and the paper's numbers are in docs/baselines.md.

>>> y = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
>>> parts = ica_demix(y)
>>> tuple(parts.shape), bool(torch.allclose(parts.sum(1), y, atol=1e-5))
((3, 2, 1, 28, 28), True)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

#: Side of the square patches that ``ica_demix`` takes as observations of one mixture.
ICA_PATCH = 5


def ica_contributions(observations: np.ndarray, n_components: int, seed: int = 0) -> np.ndarray:
    """Each independent source's share of the centred observations [P, d]: [n_components, P, d].

    FastICA finds sources only up to scale and sign; the product of a source with its column of
    the mixing matrix (its back-projection onto the observations) is free of both, so it needs no
    further fit, and sources are left at whatever variance FastICA gives them. The shares sum to
    a rank-``n_components`` approximation of the centred observations. Where those have lower
    rank (a blank image) there are not that many sources to find, and where FastICA collapses to
    a zero unmixing matrix (seen with few observations) it found none: the shares are zero.
    """
    from sklearn.decomposition import FastICA

    centred = observations - observations.mean(0)
    if np.linalg.matrix_rank(centred.T @ centred) < n_components:
        return np.zeros((n_components, *observations.shape))
    ica = FastICA(n_components, whiten="arbitrary-variance", random_state=seed)
    sources = ica.fit_transform(observations)
    return np.einsum("pk,dk->kpd", sources, ica.mixing_)


def ica_demix(
    mixtures: torch.Tensor, n_components: int = 2, seed: int = 0, patch: int = ICA_PATCH
) -> torch.Tensor:
    """Split each mixture [N, C, H, W] into ``n_components`` images [N, n_components, C, H, W].

    Single-channel ICA: one image is a single observation, so the observations of the sources
    are its overlapping ``patch`` x ``patch`` patches (stride 1), each a linear mixture of
    ``n_components`` independent sources. A source's image is its back-projected share of every
    patch (``ica_shares``), averaged where patches overlap. The rest of the mixture (the
    mean patch and what the sources leave unexplained) is split equally, so the components sum
    exactly to the mixture, as the true ones do; no clamping to [0, 1], which would break that.
    Every mixture is separated on its own with the same ``seed``: a result does not depend on
    the rest of the batch. The paper does not say how it applied ICA; docs/baselines.md
    compares this setup with others.
    """
    return with_rest_split(ica_shares(mixtures, n_components, seed, patch), mixtures)


def with_rest_split(shares: torch.Tensor, mixtures: torch.Tensor) -> torch.Tensor:
    """Shares [N, K, ...] plus an equal part of what they leave of each mixture [N, ...]."""
    remainder = mixtures - shares.sum(1)
    return shares + (remainder / shares.shape[1]).unsqueeze(1)


def ica_shares(
    mixtures: torch.Tensor, n_components: int = 2, seed: int = 0, patch: int = ICA_PATCH
) -> torch.Tensor:
    """The ICA sources' own shares of each mixture, without the rest: [N, K, C, H, W].

    They do not sum to the mixture (the mean patch is left out), which is the reading of the
    paper's ICA rows that comes closest to its numbers (docs/baselines.md).
    """
    if not 1 <= n_components <= mixtures.shape[1] * patch * patch:
        raise ValueError(f"n_components must be in [1, C * patch^2], got {n_components}")
    unconverged = (
        f"FastICA reached its iteration limit on {{}} of {len(mixtures)} mixtures "
        f"({n_components} sources); their shares are the last iterate."
    )
    # Each fit is tiny (patch^2 columns): BLAS threads only cost time, much of it when busy.
    with threadpool_limits(limits=1, user_api="blas"), convergence_counted(unconverged.format):
        shares = [_image_shares(image, n_components, seed, patch) for image in mixtures]
    return torch.stack(shares).to(mixtures)


def _image_shares(image: torch.Tensor, n_components: int, seed: int, patch: int) -> torch.Tensor:
    """ICA shares of one image [C, H, W] as images [n_components, C, H, W] (float64)."""
    size = tuple(image.shape[-2:])
    patches = F.unfold(image[None].detach().cpu().double(), patch)[0].T  # [P, C * patch^2]
    parts = ica_contributions(patches.numpy(), n_components, seed)
    columns = torch.from_numpy(parts).transpose(1, 2)  # [n_components, C * patch^2, P]
    overlaps = F.fold(torch.ones_like(columns[:1]), size, patch)
    return F.fold(columns, size, patch) / overlaps


def lasso_recover(
    measurements: torch.Tensor, matrix: torch.Tensor, alpha: float = 0.1
) -> torch.Tensor:
    """LASSO in the pixel basis: x_hat = argmin_x 1/2 ||y - A x||^2 + alpha ||x||_1 per row y.

    ``measurements`` [N, m], ``matrix`` A [m, p] (y = A x, no offset); returns [N, p], unclipped
    (Bora et al. clip images to [0, 1] afterwards: ``.clamp(0, 1)``). scikit-learn minimises
    1/(2m) ||y - A x||^2 + a ||x||_1, so it is given a = alpha / m. With A of N(0, 1/m) entries,
    as in Bora et al.'s "Compressed sensing using generative models" and ``GaussianOperator``,
    alpha = 0.1 is their lambda = 0.1: their code measures with the N(0, 1) matrix sqrt(m) A and
    passes a = 0.1 to scikit-learn, which is the same objective. One fit solves all N rows (one
    coordinate descent per row on a shared precomputed Gram matrix).
    """
    from sklearn.linear_model import Lasso

    m = matrix.shape[0]
    lasso = Lasso(alpha=alpha / m, fit_intercept=False, precompute=True)
    unconverged = (
        f"LASSO reached its iteration limit on {{}} of {len(measurements)} measurement vectors "
        f"(m = {m}); their estimates are the last iterate."
    )
    with convergence_counted(unconverged.format):
        lasso.fit(_numpy(matrix), _numpy(measurements).T)
    coef = torch.from_numpy(lasso.coef_).reshape(len(measurements), matrix.shape[1])
    return coef.to(measurements)


@contextmanager
def convergence_counted(summary: Callable[[int], str]) -> Iterator[None]:
    """scikit-learn's iteration-limit warnings inside the block as one line, ``summary(count)``:
    a report separates hundreds of mixtures, and a warning per mixture or measurement vector
    flooded its log. Other warnings pass through."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        yield
    unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    for other in (w for w in caught if not issubclass(w.category, ConvergenceWarning)):
        warnings.warn(other.message, other.category, stacklevel=4)
    if unconverged:
        warnings.warn(summary(unconverged), ConvergenceWarning, stacklevel=4)


#: LASSO's alpha grid for ``tuned_lasso_alpha`` (log-spaced, Bora et al.'s 0.1 in the middle).
LASSO_ALPHAS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def tuned_lasso_alpha(
    measurements: torch.Tensor,
    matrix: torch.Tensor,
    truth: torch.Tensor,
    alphas: tuple[float, ...] = LASSO_ALPHAS,
) -> tuple[float, dict[float, float]]:
    """The alpha of ``alphas`` whose recovery (clipped to [0, 1]) of validation measurements
    [N, m] is nearest their ``truth`` [N, p] in mean squared error, and every alpha's error:
    LASSO chosen as a tuned baseline would be, on validation data, never on the test set.
    The smallest alphas may stop at the iteration limit: their last iterate is a candidate
    like the others, so those warnings are not repeated here."""
    from sklearn.exceptions import ConvergenceWarning

    errors = {}
    for alpha in alphas:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimate = lasso_recover(measurements, matrix, alpha).clamp(0, 1)
        errors[alpha] = (estimate - truth.flatten(1)).pow(2).mean().item()
    return min(errors, key=errors.get), errors


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """float64 on the CPU: scikit-learn's precision, wherever the tensor lives."""
    return tensor.detach().cpu().double().numpy()
