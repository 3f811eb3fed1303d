"""Where a run or an inference computes: one parser of ``--device`` / ``train.device``.

Training, separator runs and the inference commands accept the same words and refuse a device
this machine lacks with the same message, before any work starts.
"""

from __future__ import annotations

import re

import torch

from demixgan.errors import DemixganError

#: The devices a run or an inference may ask for (train.device, --device).
DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?"


def resolve_device(requested: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; anything else must be usable here."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if re.fullmatch(DEVICE_PATTERN, requested) is None:
        raise DemixganError(
            f"Device {requested!r} is not one demixgan computes on: use auto, cpu, cuda or cuda:N "
            "(--device, or train.device in the config)."
        )
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DemixganError(
            f"Device '{requested}' was requested but CUDA is not available on this machine "
            "(torch was built without it or no GPU is visible). Use --device cpu or auto."
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DemixganError(
            f"Device '{requested}' was requested but this machine has "
            f"{torch.cuda.device_count()} visible GPU(s), numbered from cuda:0. Use one of "
            "them, or --device auto."
        )
    return device
