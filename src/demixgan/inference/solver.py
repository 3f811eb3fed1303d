"""One latent solver for denoising, demixing and compressive sensing.

Minimises ||y - A(sum_k G_k(z_k))||^2 + sum_k lambda_k ||z_k||^2 over the latents of the
learned components with Adam, for all observations x restarts at once (one batched tensor),
keeping per observation the restart with the lowest measurement error. Denoising (one
generator, A = identity), demixing (K generators) and compressive sensing (A Gaussian) differ
only in the model's components and the operator passed here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from demixgan.inference.options import FitOptions
from demixgan.models.operators import mix
from demixgan.models.superposition_model import SuperpositionModel, uniform_latents

#: ``combine = "weighted"`` averages the restarts with weights
#: softmax(-COMBINE_SHARPNESS * error / median error) of their measurement errors.
COMBINE_SHARPNESS = 2.0
#: Weight of a shortfall (observation brighter than the fit) under the ``nonnegative`` residual.
SHORTFALL_WEIGHT = 0.1
#: Width below which the absolute penalty is rounded off (keeps its gradient defined at 0).
L1_ROUNDING = 1e-3


@dataclass(frozen=True)
class LatentFit:
    latents: dict[str, torch.Tensor]  # [N, d_k] best restart per observation
    components: torch.Tensor  # [N, K_learned, C, H, W] in the model's learned order
    measurement_error: torch.Tensor  # [N] mean squared residual (per measurement) of components
    iterations: int  # iterations run (the most over chunks; fewer than asked after convergence)


def fit_latents(
    model: SuperpositionModel,
    observations: torch.Tensor,
    options: FitOptions | None = None,
    *,
    operator: nn.Module | None = None,
    progress: Callable[[int], None] | None = None,
    initial: Mapping[str, torch.Tensor] | None = None,
    device: torch.device | None = None,
) -> LatentFit:
    """Fit latents to ``observations`` (images [N, C, H, W], or [N, m] under a Gaussian A).

    ``options`` (inference/options.py, the one set of defaults) sets the budget. ``operator``
    replaces the model's (identity after training) for this fit. ``update`` is
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
    ``progress(k)`` is called as k more observations are done (e.g. a tqdm bar's ``update``),
    in shares of a chunk after each iteration, so a bar moves within a chunk.
    ``combine`` = ``weighted`` returns the restarts' components averaged, weighted by how well
    each explains the observation (the latents stay the best restart's): where the
    measurements leave many solutions (compressive sensing with few measurements), their
    average is nearer the truth than any one of them (docs/inference.md).
    ``device`` (default: where the model's weights are) runs the fit there, a GPU say, on
    copies of the model and operator moved there; the fit comes back on the observations'
    device, and the caller's model and operator stay where they were.
    """
    options = options or FitOptions()
    iterations, restarts = options.iterations, options.restarts
    operator = operator if operator is not None else model.operator
    weights = dict.fromkeys(model.learned, options.latent_weight)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if device.type == "cuda" and device.index is None:  # tensors say cuda:0, never "cuda"
        device = torch.device("cuda", torch.cuda.current_device())
    model, operator = _on(model, device), _on(operator, device)
    was_training = model.training
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    generator = torch.Generator().manual_seed(options.seed)
    starts = {
        name: uniform_latents(observations.shape[0] * restarts, dim, generator)
        for name, dim in model.latent_dims().items()
    }
    for name, z in (initial or {}).items():
        starts[name] = _initial_starts(model, name, z, observations.shape[0], restarts)
    if options.smoothing and getattr(operator, "name", None) not in ("identity", "clip"):
        raise ValueError("smoothing blurs image residuals; it needs an operator that gives images")
    problem = _Problem(model, operator, weights, options)
    try:
        # Chunks of whole observations (all their restarts) bound memory for any input size.
        per_chunk = max(1, options.chunk // restarts)
        fits = []
        for begin in range(0, observations.shape[0], per_chunk):
            rows = slice(begin * restarts, (begin + per_chunk) * restarts)
            fits.append(
                problem.solve(
                    observations[begin : begin + per_chunk].to(device),
                    {name: z[rows].to(device) for name, z in starts.items()},
                    iterations,
                    restarts,
                    progress,
                )
            )
    finally:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        model.train(was_training)
    home = observations.device
    return LatentFit(
        {name: torch.cat([f.latents[name] for f in fits]).to(home) for name in model.learned},
        torch.cat([f.components for f in fits]).to(home),
        torch.cat([f.measurement_error for f in fits]).to(home),
        max(f.iterations for f in fits),
    )


def _on(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` itself where its tensors lie on ``device`` already (or it has none), else a
    copy moved there: a fit on a GPU leaves the caller's model and operator on the CPU."""
    if all(t.device == device for t in (*module.parameters(), *module.buffers())):
        return module
    return copy.deepcopy(module).to(device)


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


@dataclass(frozen=True)
class _Problem:
    model: SuperpositionModel
    operator: nn.Module
    weights: dict[str, float]
    options: FitOptions

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
        residual = mix(self.model.learned_parts(latents, block), self.operator) - target
        if sigma > 0:
            residual = gaussian_blur(residual, sigma)
        loss = self.penalty(residual).flatten(1).sum(1).sum()
        for name, weight in self.weights.items():
            if weight:
                loss = loss + weight * latents[name].pow(2).sum()
        return loss

    def penalty(self, residual: torch.Tensor) -> torch.Tensor:
        if self.options.residual == "l1":
            return (residual.pow(2) + L1_ROUNDING**2).sqrt() - L1_ROUNDING
        if self.options.residual == "nonnegative":
            return torch.where(residual < 0, SHORTFALL_WEIGHT, 1.0) * residual.pow(2)
        return residual.pow(2)

    def solve(self, y, starts, iterations, restarts, progress=None) -> LatentFit:
        latents = {name: z.clone().requires_grad_(True) for name, z in starts.items()}
        share, reported = y.shape[0] / max(iterations, 1), 0.0
        target = y.repeat_interleave(restarts, dim=0)
        blocks = [list(latents)] if self.options.update == "joint" else [[k] for k in latents]
        optimizers = [torch.optim.Adam([latents[k] for k in b], lr=self.options.lr) for b in blocks]
        previous = None
        done = 0
        coarse = max(1, iterations // 2)
        for done in range(1, iterations + 1):
            sigma = self.options.smoothing * max(0.0, 1.0 - (done - 1) / coarse)
            for block, optimizer in zip(blocks, optimizers, strict=True):
                optimizer.zero_grad(set_to_none=True)
                loss = self.objective(latents, target, sigma, block)
                loss.backward()
                optimizer.step()
            if progress is not None:
                progress(share)
                reported += share
            if self.options.tolerance and sigma == 0 and done % self.CHECK_EVERY == 0:
                value = loss.item()
                if previous is not None and previous - value <= self.options.tolerance * abs(
                    previous
                ):
                    break
                previous = value
        if progress is not None and y.shape[0] - reported > 1e-6:
            progress(y.shape[0] - reported)  # stopped early, or no iterations at all
        return self._best(latents, target, y.shape[0], restarts, done if iterations else 0)

    @torch.no_grad()
    def _best(self, latents, target, n, restarts, iterations) -> LatentFit:
        parts = self.model.learned_parts(latents)
        residual = mix(parts, self.operator) - target
        errors = residual.pow(2).flatten(1).mean(1)
        penalties = self.penalty(residual).flatten(1).mean(1).view(n, restarts)
        offsets = torch.arange(n, device=target.device) * restarts
        best = penalties.argmin(dim=1) + offsets  # the fitted objective decides
        chosen, chosen_errors = parts[best], errors[best]
        if self.options.combine == "weighted" and restarts > 1:
            scale = penalties.median(dim=1, keepdim=True).values.clamp(min=1e-12)
            weights = torch.softmax(-COMBINE_SHARPNESS * penalties / scale, dim=1)
            by_restart = parts.view(n, restarts, *parts.shape[1:])
            chosen = (weights.view(n, restarts, *[1] * (parts.ndim - 1)) * by_restart).sum(1)
            chosen_errors = (mix(chosen, self.operator) - target[offsets]).pow(2).flatten(1)
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
