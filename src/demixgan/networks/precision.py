"""The arithmetic of a training step's forward passes: float32, or bfloat16 under autocast.

Autocast runs convolutions and matrix products in bfloat16 and keeps the weights, the
optimizer's state and the losses in float32: on a CPU with AVX512-BF16 a separator's step
takes about 0.6 of the time and a GAN's two thirds (docs/BENCHMARKS.md; GPUs unmeasured).
bfloat16 keeps float32's range, so no loss scaling is needed. Inference stays in float32
whatever trained the weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Torch-free, for the options and configs that the CLI's flags are built from.
PRECISIONS = ("float32", "bfloat16")


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The context a step's forward passes run in; ``float32`` leaves them as they are."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")
