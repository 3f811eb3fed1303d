"""Structured "corruption" signal families: the known component N in y = x + n.

Each family is a seeded, batched sampler. The level k is the number of random
components superposed in one image (k curves, k lines or k plane waves), so a
higher level is a harder, busier corruption. Every sampler draws all of its
randomness from the ``torch.Generator`` it is given (never the global RNG), so a
seed fully determines a batch, and is vectorised over the batch and the k
components: there is no Python loop over images.

The exact parameter ranges are in the renderers' docstrings and in docs/families.md. The
continuous families are drawn by functions of their uniform parameters (``sines_image``,
``waves_image``), which a latent fit can also move (models/family_generators.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from numbers import Integral

import torch

from demixgan.data.descriptions import FAMILY_DESCRIPTIONS, MAX_LEVEL, MIN_LEVEL
from demixgan.errors import DemixganError
from demixgan.spec.image import MNIST_IMAGE

#: Half-width (pixels, measured perpendicular to the curve) of the ``sines`` stroke profile:
#: a tent of this half-width has a full width at half maximum of 1.25 px, a thin pen stroke.
SINE_HALF_WIDTH = 1.25

_TWO_PI = 2.0 * math.pi
#: Uniform parameters per curve of ``sines`` and per wave of ``waves`` (see their ``*_image``).
SINE_PARAMETERS = 4
WAVE_PARAMETERS = 4
#: ``ink``: the ``sines`` geometry plus a half-width and a gain per curve.
INK_PARAMETERS = SINE_PARAMETERS + 2
#: Half-width range (pixels) and gain range of an ``ink`` stroke: a gain above 1 saturates
#: the stroke's core at exactly 1, as a pen's ink does; below 1 the stroke is lighter.
INK_HALF_WIDTH = (0.75, 2.0)
INK_GAIN = (0.7, 2.0)

#: ``ink-lines``: orientation, position, half-width and gain per line.
INK_LINE_PARAMETERS = 4
#: ``brush``, the second renderer of out-of-distribution rows: the ``sines`` geometry over
#: wider amplitude and frequency ranges, a Gaussian profile of sigma in BRUSH_SIGMA pixels
#: (not a tent) and a gain in BRUSH_GAIN.
BRUSH_PARAMETERS = SINE_PARAMETERS + 2
BRUSH_AMPLITUDE = (0.04, 0.32)
BRUSH_FREQUENCY = (0.3, 3.5)
BRUSH_SIGMA = (0.5, 1.1)
BRUSH_GAIN = (0.8, 2.0)

Renderer = Callable[[int, int, torch.Generator, int, int], torch.Tensor]


def check_level(level: int) -> int:
    """Return ``level`` as an int, or raise if it is not an integer in [MIN_LEVEL, MAX_LEVEL].

    ``bool`` and floats such as 2.0 are rejected on purpose: a level is a count of components,
    and silently accepting ``True`` or a float usually hides a bug in the caller.
    """
    if isinstance(level, bool) or not isinstance(level, Integral):
        raise DemixganError(
            f"The signal level must be an integer from {MIN_LEVEL} to {MAX_LEVEL} (the number of "
            f"random components superposed in each corruption image), but got {level!r} of type "
            f"{type(level).__name__}. Pass a whole number in that range, e.g. --level 1."
        )
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise DemixganError(
            f"The signal level must be an integer from {MIN_LEVEL} to {MAX_LEVEL} (the number of "
            f"random components superposed in each corruption image), but got {level}. Pick a "
            f"level in that range; higher levels give busier, harder corruptions."
        )
    return int(level)


def _check_count(name: str, value: int, minimum: int) -> int:
    """Validate a batch size or image size so that the error names the bad argument."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise DemixganError(
            f"The {name} of a signal-family sample must be an integer >= {minimum}, but got "
            f"{value!r}. Pass a whole number of at least {minimum}."
        )
    return int(value)


@lru_cache(maxsize=32)
def _grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column pixel indices as float32 vectors on the parameters' device (a fit on a
    GPU draws its strokes there), cached because every call reuses them.

    The cached tensors are shared between calls and must never be modified in place.
    """
    rows = torch.arange(height, dtype=torch.float32, device=device)
    cols = torch.arange(width, dtype=torch.float32, device=device)
    return rows, cols


def _render_sines(
    n: int, k: int, generator: torch.Generator, height: int, width: int
) -> torch.Tensor:
    """k thin anti-aliased sinusoidal curves per image: ``sines_image`` of uniform parameters."""
    return sines_image(torch.rand(n, k, SINE_PARAMETERS, generator=generator), height, width)


def _render_ink(
    n: int, k: int, generator: torch.Generator, height: int, width: int
) -> torch.Tensor:
    """k ink-like sinusoidal strokes per image: ``ink_image`` of uniform parameters."""
    return ink_image(torch.rand(n, k, INK_PARAMETERS, generator=generator), height, width)


def ink_image(p: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Ink-like strokes of parameters ``p`` in [0, 1] ([n, k, 6]), combined by max.

    The curves of ``sines_image`` (``p[..., :4]``) drawn as a pen draws: stroke i has a
    half-width w ~ U[INK_HALF_WIDTH] pixels and a gain g ~ U[INK_GAIN], and a pixel at
    perpendicular distance d has ``clamp(g (1 - d / w), 0, 1)``. Most strokes (g > 1, 77%)
    reach exactly 1 over a core, like the digits they cross, so no pixel value tells ink from
    digit: the thin ``sines`` tents never reach 1 and a pixel rule splits them exactly.
    """
    rows, cols = _grid(height, width, p.device)
    low_w, high_w = INK_HALF_WIDTH
    low_g, high_g = INK_GAIN
    half_width = (low_w + (high_w - low_w) * p[..., 4:5])[:, :, None, :]  # [n, k, 1, 1]
    gain = (low_g + (high_g - low_g) * p[..., 5:6])[:, :, None, :]
    distance = _curve_distances(p[..., :SINE_PARAMETERS], rows, cols, width)
    strokes = (gain * (1.0 - distance / half_width)).clamp(0.0, 1.0)
    return strokes.amax(dim=1, keepdim=True)


def _render_ink_lines(
    n: int, k: int, generator: torch.Generator, height: int, width: int
) -> torch.Tensor:
    """k ink-like ruled lines per image: ``ink_lines_image`` of uniform parameters."""
    p = torch.rand(n, k, INK_LINE_PARAMETERS, generator=generator)
    return ink_lines_image(p, height, width)


def ink_lines_image(p: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Full-length ruled lines drawn as a pen draws, parameters ``p`` in [0, 1] ([n, k, 4]).

    Line i is vertical where ``p[..., 0] < 0.5``, else horizontal, centred on the pixel row or
    column nearest ``p[..., 1]`` across the image (so its peak is its gain), with the ``ink``
    profile: half-width U[INK_HALF_WIDTH] pixels, gain U[INK_GAIN], a pixel at distance d
    taking ``clamp(g (1 - d / w), 0, 1)``; the lines combine by max. Unlike ``lines`` (1-px
    lines of value exactly 1, beside binary digits a pixel rule cannot tell apart only where
    they cross) most lines saturate over a core of varying width and some are lighter.
    """
    rows, cols = _grid(height, width, p.device)
    vertical = (p[..., 0:1] < 0.5)[..., None]  # [n, k, 1, 1]
    side = torch.where(vertical, float(width - 1), float(height - 1))
    position = (p[..., 1:2][..., None] * side).round()
    low_w, high_w = INK_HALF_WIDTH
    low_g, high_g = INK_GAIN
    half_width = (low_w + (high_w - low_w) * p[..., 2:3])[..., None]
    gain = (low_g + (high_g - low_g) * p[..., 3:4])[..., None]
    across = torch.where(vertical, cols[None, None, None, :], rows[None, None, :, None])
    strokes = (gain * (1.0 - (across - position).abs() / half_width)).clamp(0.0, 1.0)
    return strokes.amax(dim=1, keepdim=True)


def _render_brush(
    n: int, k: int, generator: torch.Generator, height: int, width: int
) -> torch.Tensor:
    """k brush strokes per image (the out-of-distribution renderer): ``brush_image``."""
    return brush_image(torch.rand(n, k, BRUSH_PARAMETERS, generator=generator), height, width)


def brush_image(p: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Strokes of a second renderer, parameters ``p`` in [0, 1] ([n, k, 6]), combined by max.

    Sinusoidal curves like ``ink``'s but with amplitudes U[BRUSH_AMPLITUDE] (H - 1) and
    frequencies U[BRUSH_FREQUENCY] periods across the width, and a Gaussian profile
    ``clamp(g exp(-d^2 / (2 s^2)), 0, 1)`` of sigma s ~ U[BRUSH_SIGMA] and gain
    g ~ U[BRUSH_GAIN]: softer edges and other widths, amplitudes and gains than the ``ink``
    tents a model of ink strokes learned, so test strokes drawn by it are out of distribution.
    """
    rows, cols = _grid(height, width, p.device)
    low_s, high_s = BRUSH_SIGMA
    low_g, high_g = BRUSH_GAIN
    sigma = (low_s + (high_s - low_s) * p[..., 4:5])[:, :, None, :]
    gain = (low_g + (high_g - low_g) * p[..., 5:6])[:, :, None, :]
    distance = _curve_distances(
        p[..., :SINE_PARAMETERS], rows, cols, width, BRUSH_AMPLITUDE, BRUSH_FREQUENCY
    )
    strokes = (gain * torch.exp(-distance.pow(2) / (2 * sigma.pow(2)))).clamp(0.0, 1.0)
    return strokes.amax(dim=1, keepdim=True)


def _curve_distances(
    p: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    width: int,
    amplitude: tuple[float, float] = (0.10, 0.25),
    frequency: tuple[float, float] = (0.5, 3.0),
) -> torch.Tensor:
    """First-order perpendicular distance of every pixel to each ``sines`` curve: [n, k, H, W]
    (``amplitude`` in image heights and ``frequency`` in periods: the ranges of the draws)."""
    span = float(rows.shape[0] - 1)
    freq = frequency[0] + (frequency[1] - frequency[0]) * p[..., 0:1]  # [n, k, 1]
    amp = span * (amplitude[0] + (amplitude[1] - amplitude[0]) * p[..., 1:2])
    offset = amp + p[..., 2:3] * (span - 2.0 * amp)
    phase = _TWO_PI * p[..., 3:4]
    omega = (_TWO_PI / width) * freq  # radians per column
    arg = omega * cols + phase  # [n, k, W]
    y = offset + amp * torch.sin(arg)
    slope = (amp * omega) * torch.cos(arg)
    inv_norm = torch.rsqrt(1.0 + slope * slope)
    offsets = rows[:, None] - y[:, :, None, :]
    if torch.is_grad_enabled() and p.requires_grad:
        return offsets.abs() * inv_norm[:, :, None, :]
    # Sampling: the same values in place, which halves the sampler's time.
    return offsets.abs_().mul_(inv_norm[:, :, None, :])


def sines_image(p: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The curves of parameters ``p`` in [0, 1] ([n, k, 4]), combined by max (union of strokes).

    Curve i is ``y(x) = c + A sin(2π f x / W + φ)`` over columns x = 0..W-1 (rows are y), each
    parameter an affine map of one uniform draw (so the sampler's draws are independent):

    - periods across the width f ~ U[0.5, 3],
    - amplitude A ~ U[0.10, 0.25] · (H - 1) pixels,
    - vertical offset c ~ U[A, H - 1 - A], so the whole curve lies inside the image,
    - phase φ ~ U[0, 2π).

    A pixel's intensity is ``clamp(1 - d / SINE_HALF_WIDTH, 0, 1)`` with d the first-order
    perpendicular distance ``|row - y(x)| / sqrt(1 + y'(x)^2)``; dividing by the slope term
    widens the vertical extent on steep parts so that the stroke stays connected and of
    constant perpendicular width; the max of the curves' tents is the tent of the nearest
    curve. Differentiable in ``p``, so a fit can move the curves.
    """
    rows, cols = _grid(height, width, p.device)
    nearest = _curve_distances(p, rows, cols, width).amin(dim=1, keepdim=True)
    if torch.is_grad_enabled() and p.requires_grad:  # a fit differentiates through the image
        return (1.0 - nearest / SINE_HALF_WIDTH).clamp(0.0, 1.0)
    return nearest.mul_(-1.0 / SINE_HALF_WIDTH).add_(1.0).clamp_(0.0, 1.0)


def _render_lines(
    n: int, k: int, generator: torch.Generator, height: int, width: int
) -> torch.Tensor:
    """k full-length 1-px lines of value 1 per image, combined by max.

    Each line is vertical or horizontal with probability 1/2 each. Positions are integer
    columns (rows) drawn uniformly without replacement within each orientation, so two lines
    never coincide and the image has exactly k lines whenever the number of vertical lines is
    at most W and of horizontal lines at most H (always true at 28 x 28, where k <= 10). In a
    tiny image that cannot hold them, positions wrap around and some lines coincide.
    """
    vertical = torch.rand(n, k, generator=generator) < 0.5
    # A random permutation per image; the j-th line of an orientation takes its j-th entry.
    col_perm = torch.rand(n, width, generator=generator).argsort(dim=1, stable=True)
    row_perm = torch.rand(n, height, generator=generator).argsort(dim=1, stable=True)
    col_rank = (vertical.cumsum(dim=1) - 1).clamp_(min=0) % width
    row_rank = ((~vertical).cumsum(dim=1) - 1).clamp_(min=0) % height
    col_pos = torch.where(vertical, col_perm.gather(1, col_rank), width)  # `width` = no line
    row_pos = torch.where(vertical, height, row_perm.gather(1, row_rank))
    col_mask = torch.zeros(n, width + 1).scatter_(1, col_pos, 1.0)[:, :width]
    row_mask = torch.zeros(n, height + 1).scatter_(1, row_pos, 1.0)[:, :height]
    return torch.maximum(row_mask[:, None, :, None], col_mask[:, None, None, :])


def _render_waves(
    n: int, k: int, generator: torch.Generator, height: int, width: int
) -> torch.Tensor:
    """The sum of k random 2-D plane waves per image: ``waves_image`` of uniform parameters."""
    return waves_image(torch.rand(n, k, WAVE_PARAMETERS, generator=generator), height, width)


def waves_image(p: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The sum of the plane waves of parameters ``p`` in [0, 1] ([n, k, 4]), scaled to [0, 1].

    Wave i is ``a sin(2π (u x + v y) + φ)`` in normalised coordinates x = col / W and
    y = row / H (so frequencies are in cycles per image), each parameter an affine map of one
    uniform draw:

    - amplitude a ~ U[0.5, 1],
    - spatial frequency ρ = |(u, v)| ~ U[1, 4] cycles per image,
    - orientation θ ~ U[0, π), u = ρ cos θ, v = ρ sin θ,
    - phase φ ~ U[0, 2π).

    Each image is then min-max scaled to exactly [0, 1], so the contrast does not shrink as k
    grows (a sum of k waves concentrates near 0). The scaling is affine per image, so an image
    is still a superposition of k plane waves plus a constant. Differentiable in ``p``.
    """
    n = p.shape[0]
    rows, cols = _grid(height, width, p.device)
    amp = 0.5 + 0.5 * p[..., 0:1]  # [n, k, 1]
    rho = 1.0 + 3.0 * p[..., 1:2]
    theta = math.pi * p[..., 2:3]
    phase = _TWO_PI * p[..., 3:4]
    ax = (_TWO_PI / width) * rho * torch.cos(theta) * cols + phase  # [n, k, W]
    by = (_TWO_PI / height) * rho * torch.sin(theta) * rows  # [n, k, H]
    # sin(ax + by) = sin(ax) cos(by) + cos(ax) sin(by): a rank-2k product instead of k full
    # H x W sine evaluations.
    left = torch.cat((amp * torch.cos(by), amp * torch.sin(by)), dim=1)  # [n, 2k, H]
    right = torch.cat((torch.sin(ax), torch.cos(ax)), dim=1)  # [n, 2k, W]
    flat = torch.bmm(left.transpose(1, 2), right).reshape(n, height * width)
    low = flat.amin(dim=1, keepdim=True)
    scale = (flat.amax(dim=1, keepdim=True) - low).clamp(min=1e-6)
    return ((flat - low) / scale).clamp(0.0, 1.0).view(n, 1, height, width)


@dataclass(frozen=True)
class SignalFamily:
    """A named, seeded sampler of structured signals whose difficulty is set by a level."""

    name: str
    description: str
    render: Renderer = field(repr=False, compare=False)

    def sample(
        self,
        n: int,
        level: int,
        generator: torch.Generator,
        height: int = MNIST_IMAGE.height,
        width: int = MNIST_IMAGE.width,
    ) -> torch.Tensor:
        """Draw ``n`` images of ``level`` components: float32 [n, 1, height, width] in [0, 1].

        All randomness comes from ``generator`` (a CPU ``torch.Generator``), so re-seeding it
        reproduces the batch exactly; the global torch RNG is never touched.
        """
        k = check_level(level)
        n = _check_count("batch size n", n, 0)
        height = _check_count("height", height, 1)
        width = _check_count("width", width, 1)
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            raise DemixganError(
                f"Signal family '{self.name}' needs a CPU torch.Generator for its randomness, but "
                f"got {generator!r}. Create one with torch.Generator().manual_seed(seed) and move "
                f"the returned batch to the device afterwards."
            )
        if n == 0:
            return torch.zeros(0, 1, height, width)
        return self.render(n, k, generator, height, width).contiguous()


#: How each family of ``FAMILY_DESCRIPTIONS`` is drawn.
_RENDERERS: dict[str, Renderer] = {
    "sines": _render_sines,
    "waves": _render_waves,
    "ink": _render_ink,
    "lines": _render_lines,
    "ink-lines": _render_ink_lines,
    "brush": _render_brush,
}
FAMILIES: dict[str, SignalFamily] = {
    name: SignalFamily(name, description, _RENDERERS[name])
    for name, description in FAMILY_DESCRIPTIONS.items()
}


def get_family(name: str) -> SignalFamily:
    """Look up a family by name, failing with the list of valid names."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(FAMILIES))
        raise DemixganError(
            f"Unknown signal family {name!r}. The valid signal families are: {valid}. "
            f"Use one of these names (see docs/families.md for what each one draws)."
        ) from None
