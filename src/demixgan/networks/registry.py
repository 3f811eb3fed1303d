"""Networks by name, so a checkpoint's JSON sidecar (architecture + options) rebuilds them."""

from __future__ import annotations

from typing import Any

from torch import nn

from demixgan.errors import DemixganError
from demixgan.networks.discriminators import ConvDiscriminator
from demixgan.networks.generators import (
    AxisLinesGenerator,
    ConvGenerator,
    CurveGenerator,
    LowpassGenerator,
)
from demixgan.spec.image import MNIST_IMAGE, ImageSpec

#: Generator architectures and their fixed options; ``norm`` may be overridden per component.
GENERATOR_ARCHS: dict[str, dict[str, Any]] = {
    "dcgan": {"kernel": 5, "norm": "none"},  # the paper's MNIST generator, z in R^100
    "infogan": {"kernel": 4, "norm": "batch"},  # the paper's Fashion-MNIST generator, z in R^62
    "lowpass": {"norm": "batch"},  # research: band-limited images only (docs/networks.md)
    "curve": {"norm": "batch"},  # research: one smooth pen-stroke curve (docs/networks.md)
    "curve-bounded": {"norm": "batch", "bounded": True},  # the curve kept inside the image
    "curve-ink": {"norm": "batch", "bounded": True, "ink": True},  # per-curve width and gain
    "axis-lines": {"norm": "batch"},  # research: full-length horizontal/vertical strokes
    # research: one ink-like ruled line of either orientation (a constant curve-ink, turned)
    "line-ink": {
        "norm": "batch",
        "bounded": True,
        "ink": True,
        "max_frequency": 0.0,
        "transpose": True,
    },
}
DISCRIMINATOR_ARCHS = ("dcgan",)


def build_generator(
    arch: str,
    latent_dim: int,
    *,
    image: ImageSpec = MNIST_IMAGE,
    hidden: int = 1024,
    channels: int = 128,
    norm: str | None = None,
) -> nn.Module:
    """Build a generator of ``image``-shaped images from the options a sidecar records.

    ``channels`` sizes the convolutional generators; the research ones have no channels.
    """
    if arch not in GENERATOR_ARCHS:
        raise DemixganError(
            f"Unknown generator architecture '{arch}'. Known: {', '.join(GENERATOR_ARCHS)}."
        )
    options = dict(GENERATOR_ARCHS[arch])
    if norm is not None:
        options["norm"] = norm
    if arch == "lowpass":
        return LowpassGenerator(latent_dim, image=image, hidden=hidden, **options)
    if arch == "axis-lines":
        return AxisLinesGenerator(latent_dim, image=image, hidden=hidden, **options)
    if arch.startswith("curve") or arch == "line-ink":
        return CurveGenerator(latent_dim, image=image, hidden=hidden, **options)
    return ConvGenerator(latent_dim, image=image, hidden=hidden, base_channels=channels, **options)


def build_discriminator(
    arch: str,
    *,
    image: ImageSpec = MNIST_IMAGE,
    channels: int = 64,
    spectral_norm: bool = False,
    code_dim: int = 0,
) -> nn.Module:
    """Build a discriminator of ``image``-shaped images from the options a sidecar records."""
    if arch not in DISCRIMINATOR_ARCHS:
        raise DemixganError(
            f"Unknown discriminator architecture '{arch}'. Known: {', '.join(DISCRIMINATOR_ARCHS)}."
        )
    return ConvDiscriminator(
        image=image, channels=channels, use_spectral_norm=spectral_norm, code_dim=code_dim
    )
