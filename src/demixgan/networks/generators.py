"""Generators G(z) -> [B, 1, 28, 28] images in [0, 1].

The paper's text leaves details open; the minimal consistent reading used here is written in
docs/networks.md. Both generators map a latent z to an image through two fully connected
layers and two stride-2 transposed convolutions (7 -> 14 -> 28).
"""

from __future__ import annotations

import torch
from torch import nn


def _init_normal(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN initialisation: weights N(0, std), zero biases (batch-norm scales N(1, std))."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, std)
            nn.init.zeros_(layer.bias)


def _norm(kind: str, features: int, spatial: bool) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    return nn.BatchNorm2d(features) if spatial else nn.BatchNorm1d(features)


class ConvGenerator(nn.Module):
    """FC -> FC -> deconv(stride 2) -> deconv(stride 2) -> sigmoid.

    ``kernel`` 5 with ``norm="none"`` is the paper's DCGAN generator; ``kernel`` 4 with
    ``norm="batch"`` is the InfoGAN generator used for Fashion-MNIST.
    """

    def __init__(
        self,
        latent_dim: int,
        *,
        hidden: int = 1024,
        base_channels: int = 128,
        kernel: int = 5,
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        padding, output_padding = (2, 1) if kernel == 5 else (1, 0)
        mid = base_channels // 2
        self.body = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            _norm(norm, hidden, spatial=False),
            nn.ReLU(),
            nn.Linear(hidden, base_channels * 7 * 7),
            _norm(norm, base_channels * 7 * 7, spatial=False),
            nn.ReLU(),
            nn.Unflatten(1, (base_channels, 7, 7)),
            nn.ConvTranspose2d(base_channels, mid, kernel, 2, padding, output_padding),
            _norm(norm, mid, spatial=True),
            nn.ReLU(),
            nn.ConvTranspose2d(mid, 1, kernel, 2, padding, output_padding),
            nn.Sigmoid(),
        )
        _init_normal(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


def _coefficient_mlp(latent_dim: int, hidden: int, outputs: int, norm: str) -> nn.Sequential:
    """FC + norm + ReLU, FC + norm + ReLU, FC: latent -> coefficients of a fixed basis."""
    return nn.Sequential(
        nn.Linear(latent_dim, hidden),
        _norm(norm, hidden, spatial=False),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        _norm(norm, hidden, spatial=False),
        nn.ReLU(),
        nn.Linear(hidden, outputs),
    )


def _plane_wave_basis(size: int, max_frequency: float, spacing: float) -> torch.Tensor:
    """Real plane waves cos/sin(2 pi (u x + v y)) with |(u, v)| <= max_frequency cycles per image.

    Frequencies lie on a grid of ``spacing`` cycles per image in a half plane (the other half
    repeats them). Each row has unit root-mean-square over the image, so no coefficient starts
    out louder than another. Returns [n_basis, size * size].
    """
    steps = int(max_frequency / spacing)
    grid = torch.arange(-steps, steps + 1, dtype=torch.float64) * spacing
    u, v = torch.meshgrid(grid, grid, indexing="ij")
    u, v = u.flatten(), v.flatten()
    keep = (u.square() + v.square() <= max_frequency**2) & ((v > 0) | ((v == 0) & (u >= 0)))
    u, v = u[keep], v[keep]
    coords = torch.arange(size, dtype=torch.float64) / size
    x, y = torch.meshgrid(coords, coords, indexing="xy")
    phase = 2 * torch.pi * (u[:, None] * x.flatten() + v[:, None] * y.flatten())
    is_dc = (u == 0) & (v == 0)
    basis = torch.cat((phase.cos(), phase[~is_dc].sin()))  # sin of the zero frequency is 0
    basis /= basis.square().mean(dim=1, keepdim=True).sqrt()
    return basis.float()


class LowpassGenerator(nn.Module):
    """FC -> FC -> coefficients of a fixed band-limited basis: only smooth images.

    A research architecture for the demixing split, not the paper's: a generator that cannot
    draw sharp strokes cannot take a digit away from a convolutional generator, while it draws
    smooth textures (the ``waves`` family is band-limited to 4 cycles per image) exactly. The
    output is the band-limited field itself, without a squashing nonlinearity: a sigmoid would
    turn smooth waves into saturated stripes.
    """

    def __init__(
        self,
        latent_dim: int,
        *,
        hidden: int = 256,
        norm: str = "batch",
        max_frequency: float = 5.0,
        spacing: float = 0.5,
        size: int = 28,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.size = size
        self.register_buffer(
            "basis", _plane_wave_basis(size, max_frequency, spacing), persistent=False
        )
        self.body = _coefficient_mlp(latent_dim, hidden, self.basis.shape[0], norm)
        _init_normal(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.body(z) @ self.basis).view(-1, 1, self.size, self.size)


class CurveGenerator(nn.Module):
    """FC -> FC -> one smooth curve row = h(column) across the image, drawn as a thin stroke.

    A research architecture for the demixing split, not the paper's: its images are graphs of
    band-limited functions (up to ``max_frequency`` cycles per image, on a grid of ``spacing``)
    stroked with a learned cross-section, so it can draw pen-stroke curves that span the image
    but not a digit. What it learns from mixtures is the distribution of the curves (heights,
    frequencies, phases) and the stroke profile; it does not know the sampler of the data.
    The stroke follows the exact distance to the curve's polyline (two vertices per column), so
    steep flanks stay as thin as flat ones. ``bounded`` squashes the height into the image
    (tanh), so every latent draws a visible curve.
    """

    #: Distances (pixels) where the stroke profile is learned; it is zero beyond the last.
    PROFILE_KNOTS = 8
    PROFILE_STEP = 0.5
    #: Polyline vertices per pixel column.
    VERTICES_PER_PIXEL = 2

    def __init__(
        self,
        latent_dim: int,
        *,
        hidden: int = 256,
        norm: str = "batch",
        max_frequency: float = 4.0,
        spacing: float = 0.5,
        size: int = 28,
        bounded: bool = False,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.size = size
        self.bounded = bounded
        reach = int(self.PROFILE_KNOTS * self.PROFILE_STEP)  # no stroke reaches farther
        step = 1 / self.VERTICES_PER_PIXEL
        xs = torch.arange(-reach, size - 1 + reach + step / 2, step, dtype=torch.float64)
        freqs = torch.arange(0.0, max_frequency + spacing / 2, spacing, dtype=torch.float64)
        phase = 2 * torch.pi * freqs[:, None] * xs / size  # [n_freq, n_vertices]
        # Height in pixels per unit coefficient: a quarter of the image.
        basis = torch.cat((phase.cos(), phase[1:].sin())) * (size / 4)
        self.register_buffer("basis", basis.float(), persistent=False)
        self.window = 2 * reach * self.VERTICES_PER_PIXEL + 1  # vertices near one column
        offsets = torch.arange(self.window, dtype=torch.float32) * step - reach
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("rows", torch.arange(size, dtype=torch.float32), persistent=False)
        # Starts as a thin fading stroke: 0.5 on the curve, ~0 four knots out.
        self.profile_logits = nn.Parameter(torch.linspace(0.0, -12.0, self.PROFILE_KNOTS))
        self.body = _coefficient_mlp(latent_dim, hidden, basis.shape[0], norm)
        _init_normal(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        height = self.body(z) @ self.basis  # [B, V] pixels from mid-image
        if self.bounded:  # squash into the image: no latent is wasted on an empty picture
            height = (self.size / 2) * torch.tanh(height / (self.size / 2))
        height = height + (self.size - 1) / 2
        # Vertices within reach of each column, relative to each pixel: [B, H, W, window].
        near = height.unfold(1, self.window, self.VERTICES_PER_PIXEL)[:, None]
        ay = near[..., :-1] - self.rows[:, None, None]
        dy = near[..., 1:] - near[..., :-1]
        ax, dx = self.offsets[:-1], self.offsets[1:] - self.offsets[:-1]
        t = (-(ax * dx + ay * dy) / (dx.square() + dy.square())).clamp(0.0, 1.0)
        dist = ((ax + t * dx).square() + (ay + t * dy).square() + 1e-8).sqrt().amin(dim=-1)
        return self._stroke(dist).unsqueeze(1)

    def _stroke(self, dist: torch.Tensor) -> torch.Tensor:
        """Piecewise-linear learned profile in [0, 1] over the knots, zero beyond the last."""
        values = torch.cat((torch.sigmoid(self.profile_logits), self.profile_logits.new_zeros(1)))
        position = (dist / self.PROFILE_STEP).clamp(max=self.PROFILE_KNOTS)
        left = position.floor().long().clamp(max=self.PROFILE_KNOTS - 1)
        frac = position - left
        return values[left] * (1 - frac) + values[left + 1] * frac


class AxisLinesGenerator(nn.Module):
    """FC -> FC -> a row profile r and a column profile c; the image is max(r_i, c_j).

    A research architecture for the demixing split, not the paper's: its images are unions of
    full-length horizontal and vertical strokes (any number, any intensity, learned from the
    mixtures), so it can draw ruled lines but never a digit, whose pixels do not factor into
    rows and columns. The ``curve`` generator's analogue for the ``lines`` family.

    The image is transposed where the first latent coordinate is positive, so whatever the
    generator learns to draw in one orientation it draws in the other for half the latents.
    Without that, it learned vertical lines only and left the horizontal ones to the digit
    generator (docs/training.md, E12-E14). Ruled-lines images stay ruled-lines images when
    transposed, so the range is the same.
    """

    def __init__(
        self, latent_dim: int, *, hidden: int = 256, norm: str = "batch", size: int = 28
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.size = size
        self.body = _coefficient_mlp(latent_dim, hidden, 2 * size, norm)
        _init_normal(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        rows, columns = torch.sigmoid(self.body(z)).split(self.size, dim=1)
        image = torch.maximum(rows[:, :, None], columns[:, None, :])
        transposed = (z[:, 0] > 0)[:, None, None]
        return torch.where(transposed, image.transpose(1, 2), image).unsqueeze(1)
