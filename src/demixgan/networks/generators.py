"""Generators G(z) -> [B, C, H, W] images in [0, 1], built for an ``ImageSpec``.

The paper's text leaves details open; the minimal consistent reading used here is written in
docs/networks.md. The convolutional generators map a latent z to an image through two fully
connected layers and ``image.stages`` stride-2 transposed convolutions from the spec's base
grid; at the paper's ``MNIST_IMAGE`` that is two of them, 7 -> 14 -> 28. The research
generators draw grey structure; in an RGB image it is grey strokes in a colour image, the same
in every channel.

>>> from demixgan.spec.image import ImageSpec
>>> ConvGenerator(8, hidden=16, base_channels=8)(torch.randn(2, 8)).shape  # MNIST_IMAGE
torch.Size([2, 1, 28, 28])
>>> ConvGenerator(8, image=ImageSpec(3, 64, 48), hidden=16)(torch.randn(2, 8)).shape
torch.Size([2, 3, 64, 48])
"""

from __future__ import annotations

import torch
from torch import nn

from demixgan.spec.image import MNIST_IMAGE, ImageSpec

#: The convolutional generators' narrowest stage, unless the first halving is already narrower.
MIN_CHANNELS = 8


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


def grey_image(grey: torch.Tensor, image: ImageSpec) -> torch.Tensor:
    """A grey drawing [B, 1, H, W] as an image of ``image.channels`` (a view, not a copy).

    Grey strokes in a colour image: an RGB image repeats the grey values in all three channels.
    """
    return grey if image.channels == 1 else grey.expand(-1, image.channels, -1, -1)


def _norm(kind: str, features: int, spatial: bool) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    return nn.BatchNorm2d(features) if spatial else nn.BatchNorm1d(features)


class ConvGenerator(nn.Module):
    """FC -> FC -> ``image.stages`` x deconv(stride 2) -> sigmoid, from the spec's base grid.

    ``kernel`` 5 with ``norm="none"`` is the paper's DCGAN generator; ``kernel`` 4 with
    ``norm="batch"`` is the InfoGAN generator used for Fashion-MNIST. The second FC layer fills
    ``base_channels`` maps of the ``image.base`` grid; each transposed convolution doubles the
    grid and halves the channels (not below ``MIN_CHANNELS``, unless the first halving already
    is), the last one gives ``image.channels``. At ``MNIST_IMAGE`` (7 -> 14 -> 28) the layers
    are exactly the paper's, so checkpoints written before the spec existed still load.
    """

    def __init__(
        self,
        latent_dim: int,
        *,
        image: ImageSpec = MNIST_IMAGE,
        hidden: int = 1024,
        base_channels: int = 128,
        kernel: int = 5,
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image = image
        padding, output_padding = (2, 1) if kernel == 5 else (1, 0)
        base_h, base_w = image.base
        grid = base_channels * base_h * base_w
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, hidden),
            _norm(norm, hidden, spatial=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, grid),
            _norm(norm, grid, spatial=False),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (base_channels, base_h, base_w)),
        ]
        floor = max(1, min(MIN_CHANNELS, base_channels // 2))
        inputs = base_channels
        for stage in range(1, image.stages + 1):
            last = stage == image.stages
            outputs = image.channels if last else max(base_channels >> stage, floor)
            layers.append(nn.ConvTranspose2d(inputs, outputs, kernel, 2, padding, output_padding))
            # In place: the norm's backward needs its input, not its output (less memory).
            activation = nn.ReLU(inplace=True)
            layers += [nn.Sigmoid()] if last else [_norm(norm, outputs, spatial=True), activation]
            inputs = outputs
        self.body = nn.Sequential(*layers)
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


def _plane_wave_basis(
    height: int, width: int, max_frequency: float, spacing: float
) -> torch.Tensor:
    """Real plane waves cos/sin(2 pi (u x + v y)) with |(u, v)| <= max_frequency cycles per image.

    Frequencies lie on a grid of ``spacing`` cycles per image in a half plane (the other half
    repeats them). Each row has unit root-mean-square over the image, so no coefficient starts
    out louder than another. x runs over the columns and y over the rows, each in cycles per
    image side, so a non-square image has the same frequencies stretched. Returns
    [n_basis, height * width].
    """
    steps = int(max_frequency / spacing)
    grid = torch.arange(-steps, steps + 1, dtype=torch.float64) * spacing
    u, v = torch.meshgrid(grid, grid, indexing="ij")
    u, v = u.flatten(), v.flatten()
    keep = (u.square() + v.square() <= max_frequency**2) & ((v > 0) | ((v == 0) & (u >= 0)))
    u, v = u[keep], v[keep]
    columns = torch.arange(width, dtype=torch.float64) / width
    rows = torch.arange(height, dtype=torch.float64) / height
    x, y = torch.meshgrid(columns, rows, indexing="xy")  # [height, width] each
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
    turn smooth waves into saturated stripes. The field is grey (the same in every channel).
    """

    def __init__(
        self,
        latent_dim: int,
        *,
        hidden: int = 256,
        norm: str = "batch",
        max_frequency: float = 5.0,
        spacing: float = 0.5,
        image: ImageSpec = MNIST_IMAGE,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image = image
        basis = _plane_wave_basis(image.height, image.width, max_frequency, spacing)
        self.register_buffer("basis", basis, persistent=False)
        self.body = _coefficient_mlp(latent_dim, hidden, self.basis.shape[0], norm)
        _init_normal(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        grey = (self.body(z) @ self.basis).view(-1, 1, self.image.height, self.image.width)
        return grey_image(grey, self.image)


class CurveGenerator(nn.Module):
    """FC -> FC -> one smooth curve row = h(column) across the image, drawn as a thin stroke.

    A research architecture for the demixing split, not the paper's: its images are graphs of
    band-limited functions (up to ``max_frequency`` cycles per image, on a grid of ``spacing``)
    stroked with a learned cross-section, so it can draw pen-stroke curves that span the image
    but not a digit. What it learns from mixtures is the distribution of the curves (heights,
    frequencies, phases) and the stroke profile; it does not know the sampler of the data.
    The stroke follows the exact distance to the curve's polyline (two vertices per column), so
    steep flanks stay as thin as flat ones. ``bounded`` squashes the height into the image
    (tanh), so every latent draws a visible curve. The curve runs across the width (frequencies
    in cycles per image width) and its height is in rows; it is grey strokes in a colour image
    when ``image`` has three channels. ``ink`` gives each curve its own width and gain
    (``clamp(gain * profile(d / width), 0, 1)``, gain up to ``INK_MAX_GAIN``), so it can draw
    pen strokes that vary in width and intensity and saturate at 1 (the ``ink`` family).
    ``transpose`` turns a square image where z_1 > 0 (as ``AxisLinesGenerator`` does), so a
    constant curve (``max_frequency=0``) is a full-length ruled line of either orientation.
    """

    #: Distances (pixels) where the stroke profile is learned; it is zero beyond the last.
    PROFILE_KNOTS = 8
    PROFILE_STEP = 0.5
    #: Polyline vertices per pixel column.
    VERTICES_PER_PIXEL = 2
    #: ``ink``: the largest gain, and the width scale's range [1 / INK_WIDTH, INK_WIDTH].
    INK_MAX_GAIN = 3.0
    INK_WIDTH = 2.0

    def __init__(
        self,
        latent_dim: int,
        *,
        hidden: int = 256,
        norm: str = "batch",
        max_frequency: float = 4.0,
        spacing: float = 0.5,
        image: ImageSpec = MNIST_IMAGE,
        bounded: bool = False,
        ink: bool = False,
        transpose: bool = False,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image = image
        self.bounded = bounded
        self.ink = ink
        self.transpose = transpose and image.height == image.width
        height, width = image.height, image.width
        reach = int(self.PROFILE_KNOTS * self.PROFILE_STEP)  # no stroke reaches farther
        step = 1 / self.VERTICES_PER_PIXEL
        xs = torch.arange(-reach, width - 1 + reach + step / 2, step, dtype=torch.float64)
        freqs = torch.arange(0.0, max_frequency + spacing / 2, spacing, dtype=torch.float64)
        phase = 2 * torch.pi * freqs[:, None] * xs / width  # [n_freq, n_vertices]
        # Height in pixels per unit coefficient: a quarter of the image.
        basis = torch.cat((phase.cos(), phase[1:].sin())) * (height / 4)
        self.register_buffer("basis", basis.float(), persistent=False)
        self.window = 2 * reach * self.VERTICES_PER_PIXEL + 1  # vertices near one column
        offsets = torch.arange(self.window, dtype=torch.float32) * step - reach
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("rows", torch.arange(height, dtype=torch.float32), persistent=False)
        # Starts as a thin fading stroke: 0.5 on the curve, ~0 four knots out.
        self.profile_logits = nn.Parameter(torch.linspace(0.0, -12.0, self.PROFILE_KNOTS))
        styles = 2 if ink else 0  # a width scale and a gain per curve
        self.body = _coefficient_mlp(latent_dim, hidden, basis.shape[0] + styles, norm)
        _init_normal(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        rows = self.image.height
        coefficients = self.body(z)
        if self.ink:
            coefficients, style = coefficients[:, :-2], coefficients[:, -2:]
        height = coefficients @ self.basis  # [B, V] pixels from mid-image
        if self.bounded:  # squash into the image: no latent is wasted on an empty picture
            height = (rows / 2) * torch.tanh(height / (rows / 2))
        height = height + (rows - 1) / 2
        # Vertices within reach of each column, relative to each pixel: [B, H, W, window].
        near = height.unfold(1, self.window, self.VERTICES_PER_PIXEL)[:, None]
        ay = near[..., :-1] - self.rows[:, None, None]
        dy = near[..., 1:] - near[..., :-1]
        ax, dx = self.offsets[:-1], self.offsets[1:] - self.offsets[:-1]
        t = (-(ax * dx + ay * dy) / (dx.square() + dy.square())).clamp(0.0, 1.0)
        dist = ((ax + t * dx).square() + (ay + t * dy).square() + 1e-8).sqrt().amin(dim=-1)
        if self.ink:
            width = self.INK_WIDTH ** torch.tanh(style[:, 0, None, None])
            gain = self.INK_MAX_GAIN * torch.sigmoid(style[:, 1, None, None])
            stroke = (gain * self._stroke(dist / width)).clamp(max=1.0)
        else:
            stroke = self._stroke(dist)
        if self.transpose:
            stroke = torch.where((z[:, 0] > 0)[:, None, None], stroke.transpose(1, 2), stroke)
        return grey_image(stroke.unsqueeze(1), self.image)

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
    transposed, so the range is the same. A non-square image is drawn without the transpose:
    transposed, an H x W image would be W x H, not an image of the spec. It has ``height`` row
    and ``width`` column intensities and is grey strokes in a colour image.
    """

    def __init__(
        self,
        latent_dim: int,
        *,
        hidden: int = 256,
        norm: str = "batch",
        image: ImageSpec = MNIST_IMAGE,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image = image
        self.body = _coefficient_mlp(latent_dim, hidden, image.height + image.width, norm)
        _init_normal(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        sides = [self.image.height, self.image.width]
        rows, columns = torch.sigmoid(self.body(z)).split(sides, dim=1)
        grey = torch.maximum(rows[:, :, None], columns[:, None, :])
        if self.image.height == self.image.width:
            transposed = (z[:, 0] > 0)[:, None, None]
            grey = torch.where(transposed, grey.transpose(1, 2), grey)
        return grey_image(grey.unsqueeze(1), self.image)
