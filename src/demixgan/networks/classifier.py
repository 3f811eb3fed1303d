"""The paper's MNIST classifier for semantic evaluation of denoised digits.

The paper scores denoised digits by how often a separately trained classifier still recognises
them. Its classifier is the TensorFlow-tutorial CNN: conv 5x5 (32) + 2x2 max-pool, conv 5x5 (64)
+ 2x2 max-pool, fully connected (1024) + dropout, fully connected (10) + softmax. The widths are
parameters so a smaller network can be used where it is as accurate; the module returns logits
(softmax is folded into the cross-entropy loss and does not change the argmax).

It classifies MNIST digits, so its input is always ``MNIST_IMAGE``, whatever images a
demixing run uses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from demixgan.spec.image import MNIST_IMAGE

#: The images the classifier reads: MNIST digits.
IMAGE = MNIST_IMAGE
NUM_CLASSES = 10


@dataclass(frozen=True)
class ClassifierShape:
    """Layer widths; stored in checkpoints so the network is rebuilt exactly as trained."""

    conv1: int = 32
    conv2: int = 64
    hidden: int = 1024
    dropout: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


class MnistClassifier(nn.Module):
    """Two conv + max-pool stages, a dropout hidden layer, 10 logits; input [N, *IMAGE.shape]."""

    def __init__(self, shape: ClassifierShape | None = None) -> None:
        super().__init__()
        self.shape = shape or ClassifierShape()
        s = self.shape
        flat = s.conv2 * (IMAGE.height // 4) * (IMAGE.width // 4)  # after two 2x2 pools
        self.features = nn.Sequential(
            nn.Conv2d(IMAGE.channels, s.conv1, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(s.conv1, s.conv2, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, s.hidden),
            nn.ReLU(),
            nn.Dropout(s.dropout),
            nn.Linear(s.hidden, NUM_CLASSES),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))
