"""The image spec: channels, height and width of every image a run sees, from data to report.

One object says what shape an observation and each of its parts has, so networks, signal
families, operators, separators and reports are built for the data instead of assuming the
paper's 1 x 28 x 28 digits. Checkpoints record it in their sidecar; one written before it
existed is an MNIST-sized one (``MNIST_IMAGE``).

>>> spec = ImageSpec(3, 64, 48)
>>> spec.shape, spec.pixels, spec.stages, spec.base
((3, 64, 48), 9216, 3, (8, 6))
>>> MNIST_IMAGE.stages, MNIST_IMAGE.base  # 7 -> 14 -> 28, the paper's generators
(2, (7, 7))
>>> ImageSpec.from_dict(MNIST_IMAGE.to_dict()) == MNIST_IMAGE
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from demixgan.errors import DemixganError
from demixgan.spec.validation import shown, whole

#: Channel counts an image may have: grey or RGB.
CHANNELS = (1, 3)
#: Sides a network accepts: halving twice must leave at least this many pixels.
MIN_BASE = 4
MAX_SIDE = 1024
_KEYS = ("channels", "height", "width")
_ADVICE = ". Crop or resize the images to a supported size."


@dataclass(frozen=True)
class ImageSpec:
    """Shape of one image: ``channels`` (1 grey, 3 RGB) x ``height`` x ``width`` pixels.

    Convolutional networks grow from (or shrink to) a ``base`` grid through ``stages``
    stride-2 steps: the sides are halved while both stay even and at least ``MIN_BASE``, so a
    28 x 28 image has the paper's 7 -> 14 -> 28 and a 64 x 64 one 4 -> 8 -> 16 -> 32 -> 64.
    A size that cannot be halved twice is refused, with the nearest sizes that can.
    """

    channels: int = 1
    height: int = 28
    width: int = 28

    def __post_init__(self) -> None:
        problems = []
        if not whole(self.channels) or self.channels not in CHANNELS:
            problems.append(f"{shown(self.channels)} channels (1 grey or 3 RGB are supported)")
        for side in ("height", "width"):
            value = getattr(self, side)
            if not whole(value):
                problems.append(f"a {side} of {shown(value)} (a whole number of pixels is needed)")
            elif not 4 * MIN_BASE <= value <= MAX_SIDE or _halvings(value) < 2:
                problems.append(
                    f"a {side} of {value} px (sides from {4 * MIN_BASE} to {MAX_SIDE} that "
                    f"halve at least twice are supported: the nearest are {_nearest(value)})"
                )
        if problems:
            size = " x ".join(shown(getattr(self, key)) for key in _KEYS)
            raise DemixganError(f"Images of {size} cannot be used: {'; '.join(problems)}{_ADVICE}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width): the trailing shape of an image tensor."""
        return (self.channels, self.height, self.width)

    @property
    def pixels(self) -> int:
        """Values per image (channels x height x width): the length of a flattened image."""
        return self.channels * self.height * self.width

    @property
    def stages(self) -> int:
        """Stride-2 steps between the ``base`` grid and the full image."""
        return min(_halvings(self.height), _halvings(self.width))

    @property
    def base(self) -> tuple[int, int]:
        """The coarsest grid of a convolutional network: (height, width) / 2^stages."""
        return (self.height >> self.stages, self.width >> self.stages)

    def describe(self) -> str:
        colour = "grey" if self.channels == 1 else "RGB"
        return f"{colour} {self.height}x{self.width}"

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "the checkpoint") -> ImageSpec:
        """The spec recorded in a sidecar; a missing one is the paper's MNIST size."""
        if data is None:
            return MNIST_IMAGE
        if not isinstance(data, Mapping) or sorted(map(str, data)) != sorted(_KEYS):
            raise DemixganError(
                f"The image spec in {where} must be a table of {', '.join(_KEYS)}, but got "
                f"{shown(data)}. The file was edited or written by another program."
            )
        try:
            return cls(**{key: data[key] for key in _KEYS})
        except DemixganError as exc:  # "Images of ...": the images are the sidecar's, not given
            raise DemixganError(
                f"The image spec in {where} is not one this version supports: "
                f"{str(exc).removesuffix(_ADVICE)}. The file was edited or written by another "
                "program."
            ) from None


def _halvings(side: int) -> int:
    """How often ``side`` halves evenly while staying at least ``MIN_BASE``."""
    count = 0
    while side % 2 == 0 and side // 2 >= MIN_BASE:
        side //= 2
        count += 1
    return count


def _nearest(side: int) -> str:
    """The closest supported sides below and above ``side``, for an error message."""
    side = min(max(side, 4 * MIN_BASE), MAX_SIDE)  # no search from a side of -10**18
    low = next((s for s in range(side, 4 * MIN_BASE - 1, -1) if _halvings(s) >= 2), None)
    high = next((s for s in range(side, MAX_SIDE + 1) if _halvings(s) >= 2), None)
    return " or ".join(str(s) for s in dict.fromkeys((low, high)) if s is not None)


#: The paper's images (MNIST, Fashion-MNIST): what a checkpoint without a spec holds.
MNIST_IMAGE = ImageSpec(1, 28, 28)
