"""One latent solver for denoising, demixing and compressive sensing.

Minimises ||y - A(sum_k G_k(z_k))||^2 + sum_k lambda ||z_k||^2 over the latents of the learned
components with Adam, for all observations x restarts at once (one batched tensor), keeping per
observation the restart with the lowest measurement error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from demixgan.models.superposition_model import SuperpositionModel, uniform_latents


@dataclass(frozen=True)
class LatentFit:
    latents: dict[str, torch.Tensor]  # [N, d_k] best restart per observation
    components: torch.Tensor  # [N, K_learned, 1, H, W] in the model's learned order
    measurement_error: torch.Tensor  # [N] per-pixel mean squared residual of the best restart


def fit_latents(
    model: SuperpositionModel,
    observations: torch.Tensor,
    *,
    iterations: int = 500,
    lr: float = 0.01,
    restarts: int = 1,
    latent_weight: float = 0.0,
    seed: int = 0,
    chunk: int = 4096,
) -> LatentFit:
    """Fit latents to ``observations`` [N, 1, H, W]; generators stay frozen."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    # All starting points are drawn up front, so the result does not depend on the chunk size.
    starts = {
        name: uniform_latents(observations.shape[0] * restarts, dim, generator)
        for name, dim in model.latent_dims().items()
    }
    try:
        # Chunks of whole observations (all their restarts) bound memory for any input size.
        per_chunk = max(1, chunk // restarts)
        fits = []
        for begin in range(0, observations.shape[0], per_chunk):
            rows = slice(begin * restarts, (begin + per_chunk) * restarts)
            fits.append(
                _fit_chunk(
                    model,
                    observations[begin : begin + per_chunk].to(device),
                    {name: z[rows].to(device) for name, z in starts.items()},
                    iterations,
                    lr,
                    restarts,
                    latent_weight,
                )
            )
    finally:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        model.train(was_training)
    return LatentFit(
        {name: torch.cat([f.latents[name] for f in fits]) for name in model.learned},
        torch.cat([f.components for f in fits]),
        torch.cat([f.measurement_error for f in fits]),
    )


def _fit_chunk(model, y, starts, iterations, lr, restarts, latent_weight) -> LatentFit:
    n = y.shape[0]
    device = y.device
    latents = {name: z.clone().requires_grad_(True) for name, z in starts.items()}
    target = y.repeat_interleave(restarts, dim=0)
    optimizer = torch.optim.Adam(list(latents.values()), lr=lr)
    for _ in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        residual = model.operator(_learned_sum(model, latents)) - target
        # Sum over observations so each latent's gradient does not shrink with the batch size.
        loss = residual.pow(2).flatten(1).sum(1).sum()
        if latent_weight:
            loss = loss + latent_weight * sum(z.pow(2).sum() for z in latents.values())
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        parts = torch.stack([model.generators[k](latents[k]) for k in model.learned], dim=1)
        errors = (model.operator(parts.sum(1)) - target).pow(2).flatten(1).mean(1)
        best = errors.view(n, restarts).argmin(dim=1) + torch.arange(n, device=device) * restarts
    return LatentFit(
        {name: z.detach()[best].cpu() for name, z in latents.items()},
        parts[best].cpu(),
        errors[best].cpu(),
    )


def _learned_sum(model: SuperpositionModel, latents: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(model.generators[name](latents[name]) for name in model.learned)
