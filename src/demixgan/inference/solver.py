"""One latent solver for denoising, demixing and compressive sensing.

Minimises ||y - A(sum_k G_k(z_k))||^2 + sum_k lambda_k ||z_k||^2 over the latents of the
learned components with Adam, for all observations x restarts at once (one batched tensor),
keeping per observation the restart with the lowest measurement error. Denoising (one
generator, A = identity), demixing (K generators) and compressive sensing (A Gaussian) differ
only in the model's components and the operator passed here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from demixgan.models.superposition_model import SuperpositionModel, uniform_latents

UPDATES = ("joint", "alternating")
#: Penalties of the residual A(sum G) - y: squared (the paper), absolute (robust), or squared
#: with shortfalls discounted (what the fit leaves unexplained is non-negative corruption).
RESIDUALS = ("l2", "l1", "nonnegative")
#: What a fit returns per observation: its best restart, or the restarts' outputs averaged with
#: weights softmax(-COMBINE_SHARPNESS * error / median error) of their measurement errors.
COMBINES = ("best", "weighted")
COMBINE_SHARPNESS = 2.0
#: Weight of a shortfall (observation brighter than the fit) under the ``nonnegative`` residual.
SHORTFALL_WEIGHT = 0.1
#: Width below which the absolute penalty is rounded off (keeps its gradient defined at 0).
L1_ROUNDING = 1e-3


@dataclass(frozen=True)
class LatentFit:
    latents: dict[str, torch.Tensor]  # [N, d_k] best restart per observation
    components: torch.Tensor  # [N, K_learned, 1, H, W] in the model's learned order
    measurement_error: torch.Tensor  # [N] mean squared residual (per measurement) of components
    iterations: int  # iterations run (the most over chunks; fewer than asked after convergence)


def fit_latents(
    model: SuperpositionModel,
    observations: torch.Tensor,
    *,
    operator: nn.Module | None = None,
    iterations: int = 500,
    lr: float = 0.01,
    restarts: int = 1,
    latent_weight: float | Mapping[str, float] = 0.0,
    update: str = "joint",
    tolerance: float = 0.0,
    smoothing: float = 0.0,
    residual: str = "l2",
    seed: int = 0,
    chunk: int = 4096,
    progress: Callable[[int], None] | None = None,
    initial: Mapping[str, torch.Tensor] | None = None,
    combine: str = "best",
) -> LatentFit:
    """Fit latents to ``observations`` (images [N, 1, H, W], or [N, m] under a Gaussian A).

    ``operator`` replaces the model's (identity after training) for this fit. ``update`` is
    ``joint`` (all latents in one Adam step) or ``alternating`` (the paper's block-coordinate
    updates: one step per component in turn, the others fixed). ``tolerance`` > 0 stops a chunk
    once 25 iterations lower its mean objective by less than that relative amount.
    ``smoothing`` > 0 fits coarse to fine: the image residual is blurred by a Gaussian whose
    width falls linearly from ``smoothing`` pixels to 0 over the first half of the iterations,
    which widens the basins of thin structures (a curve two pixels off has no overlap with the
    truth, blurred it has). ``residual`` = ``l1`` penalises |residual| instead of its square:
    sparse structure the generators do not draw (the lines of a denoising problem at a level
    above the training one) then pulls the fit less than the pixels they do draw.
    ``nonnegative`` keeps the square where the fit is brighter than the observation and
    discounts the other side by ``SHORTFALL_WEIGHT``: when the corruption only adds light
    (lines, curves on unclipped observations), a dark observed pixel is dark in the signal, but
    a bright one may be corruption the generator should not chase. Generators
    stay frozen; latents start from the prior, all drawn up front from ``seed`` so the result
    does not depend on ``chunk``, except the components named in ``initial``: [N, d_k] starts
    every restart of an observation there, [N, restarts, d_k] each restart at its own (a
    search's guesses: inference/stroke_search.py).
    ``progress(k)`` is called as k more observations are done (e.g. a tqdm bar's ``update``).
    ``combine`` = ``weighted`` returns the restarts' components averaged, weighted by how well
    each explains the observation (the latents stay the best restart's): where the
    measurements leave many solutions (compressive sensing with few measurements), their
    average is nearer the truth than any one of them (docs/inference.md).
    """
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
    if residual not in RESIDUALS:
        raise ValueError(f"residual must be one of {RESIDUALS}, got {residual!r}")
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
    operator = operator if operator is not None else model.operator
    weights = _latent_weights(model, latent_weight)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    operator.to(device)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    starts = {
        name: uniform_latents(observations.shape[0] * restarts, dim, generator)
        for name, dim in model.latent_dims().items()
    }
    for name, z in (initial or {}).items():
        starts[name] = _initial_starts(model, name, z, observations.shape[0], restarts)
    if smoothing and getattr(operator, "name", None) != "identity":
        raise ValueError("smoothing blurs image residuals; it needs the identity operator")
    problem = _Problem(
        model, operator, weights, update, lr, tolerance, smoothing, residual, combine
    )
    try:
        # Chunks of whole observations (all their restarts) bound memory for any input size.
        per_chunk = max(1, chunk // restarts)
        fits = []
        for begin in range(0, observations.shape[0], per_chunk):
            rows = slice(begin * restarts, (begin + per_chunk) * restarts)
            fits.append(
                problem.solve(
                    observations[begin : begin + per_chunk].to(device),
                    {name: z[rows].to(device) for name, z in starts.items()},
                    iterations,
                    restarts,
                )
            )
            if progress is not None:
                progress(fits[-1].components.shape[0])
    finally:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        model.train(was_training)
    return LatentFit(
        {name: torch.cat([f.latents[name] for f in fits]) for name in model.learned},
        torch.cat([f.components for f in fits]),
        torch.cat([f.measurement_error for f in fits]),
        max(f.iterations for f in fits),
    )


def _initial_starts(
    model: SuperpositionModel, name: str, z: torch.Tensor, n: int, restarts: int
) -> torch.Tensor:
    """Given latents of one component as [N * restarts, d]: [N, d] serves every restart of
    its observation, [N, restarts, d] gives each restart its own."""
    if name not in model.learned:
        raise ValueError(f"initial latents for unknown component {name!r}")
    dim = model.latent_dims()[name]
    if tuple(z.shape) == (n, dim):
        return z.float().repeat_interleave(restarts, dim=0)
    if tuple(z.shape) == (n, restarts, dim):
        return z.float().reshape(n * restarts, dim)
    raise ValueError(
        f"initial latents of {name!r} must be [{n}, {dim}] or [{n}, {restarts}, {dim}], "
        f"got {tuple(z.shape)}"
    )


def _latent_weights(
    model: SuperpositionModel, latent_weight: float | Mapping[str, float]
) -> dict[str, float]:
    if not isinstance(latent_weight, Mapping):
        return dict.fromkeys(model.learned, float(latent_weight))
    unknown = set(latent_weight) - set(model.learned)
    if unknown:
        raise ValueError(f"latent weights for unknown components {sorted(unknown)}")
    return {name: float(latent_weight.get(name, 0.0)) for name in model.learned}


@dataclass(frozen=True)
class _Problem:
    model: SuperpositionModel
    operator: nn.Module
    weights: dict[str, float]
    update: str
    lr: float
    tolerance: float
    smoothing: float
    residual: str
    combine: str

    #: Iterations between two convergence checks.
    CHECK_EVERY = 25

    def objective(
        self,
        latents: dict[str, torch.Tensor],
        target: torch.Tensor,
        sigma: float,
        block: list[str],
    ) -> torch.Tensor:
        """Sum over observations (so no latent's gradient shrinks with the batch size).

        Only the generators of ``block`` (the latents this step moves) are differentiated: the
        others' outputs are constants of the step, so backpropagating through them is waste.
        """
        learned = self.model.learned
        sum_ = sum(self._draw(k, latents[k], k in block) for k in learned)
        residual = self.operator(sum_) - target
        if sigma > 0:
            residual = gaussian_blur(residual, sigma)
        loss = self.penalty(residual).flatten(1).sum(1).sum()
        for name, weight in self.weights.items():
            if weight:
                loss = loss + weight * latents[name].pow(2).sum()
        return loss

    def _draw(self, name: str, latent: torch.Tensor, differentiate: bool) -> torch.Tensor:
        with torch.set_grad_enabled(differentiate):
            return self.model.generators[name](latent)

    def penalty(self, residual: torch.Tensor) -> torch.Tensor:
        if self.residual == "l1":
            return (residual.pow(2) + L1_ROUNDING**2).sqrt() - L1_ROUNDING
        if self.residual == "nonnegative":
            return torch.where(residual < 0, SHORTFALL_WEIGHT, 1.0) * residual.pow(2)
        return residual.pow(2)

    def solve(self, y, starts, iterations, restarts) -> LatentFit:
        latents = {name: z.clone().requires_grad_(True) for name, z in starts.items()}
        target = y.repeat_interleave(restarts, dim=0)
        blocks = [list(latents)] if self.update == "joint" else [[k] for k in latents]
        optimizers = [torch.optim.Adam([latents[k] for k in b], lr=self.lr) for b in blocks]
        previous = None
        done = 0
        coarse = max(1, iterations // 2)
        for done in range(1, iterations + 1):
            sigma = self.smoothing * max(0.0, 1.0 - (done - 1) / coarse)
            for block, optimizer in zip(blocks, optimizers, strict=True):
                optimizer.zero_grad(set_to_none=True)
                loss = self.objective(latents, target, sigma, block)
                loss.backward()
                optimizer.step()
            if self.tolerance and sigma == 0 and done % self.CHECK_EVERY == 0:
                value = loss.item()
                if previous is not None and previous - value <= self.tolerance * abs(previous):
                    break
                previous = value
        return self._best(latents, target, y.shape[0], restarts, done if iterations else 0)

    @torch.no_grad()
    def _best(self, latents, target, n, restarts, iterations) -> LatentFit:
        model = self.model
        parts = torch.stack([model.generators[k](latents[k]) for k in model.learned], dim=1)
        residual = self.operator(parts.sum(1)) - target
        errors = residual.pow(2).flatten(1).mean(1)
        penalties = self.penalty(residual).flatten(1).mean(1).view(n, restarts)
        offsets = torch.arange(n, device=target.device) * restarts
        best = penalties.argmin(dim=1) + offsets  # the fitted objective decides
        chosen, chosen_errors = parts[best], errors[best]
        if self.combine == "weighted" and restarts > 1:
            scale = penalties.median(dim=1, keepdim=True).values.clamp(min=1e-12)
            weights = torch.softmax(-COMBINE_SHARPNESS * penalties / scale, dim=1)
            by_restart = parts.view(n, restarts, *parts.shape[1:])
            chosen = (weights.view(n, restarts, *[1] * (parts.ndim - 1)) * by_restart).sum(1)
            chosen_errors = (self.operator(chosen.sum(1)) - target[offsets]).pow(2).flatten(1)
            chosen_errors = chosen_errors.mean(1)
        return LatentFit(
            {name: z.detach()[best].cpu() for name, z in latents.items()},
            chosen.cpu(),
            chosen_errors.cpu(),
            iterations,
        )


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W] with zero padding (kernel radius 3 sigma)."""
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    rows = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    images = nn.functional.conv2d(images, rows, padding=(radius, 0), groups=channels)
    return nn.functional.conv2d(images, cols, padding=(0, radius), groups=channels)
