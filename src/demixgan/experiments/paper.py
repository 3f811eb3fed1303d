"""The paper's numbers that our reports print beside ours.

Soltani, Jain and Sambasivan, "Learning generative models of structured signals from their
superposition using GANs with application to denoising and demixing" (arXiv:1902.04664).
PSNR in dB (peak 1) of single test images, as quoted in the issue that asked for these
reproductions; the paper's tables give no standard deviation and no y/2 split.
"""

from __future__ import annotations

#: Table 1: demixing-GAN and ICA on digit + sinusoid mixtures, and on digits 1 + 2.
TABLE_1: dict[str, dict[str, tuple[float, float]]] = {
    "digit+sines": {"demixing-GAN": (13.3, 14.6), "ICA": (10.5, 9.9)},
    "digits-1-2": {"demixing-GAN": (12.5, 12.9)},
}
#: Table 2: Fashion-MNIST dress + bag (the best demixing-GAN row).
TABLE_2: dict[str, dict[str, tuple[float, float]]] = {
    "dress+bag": {"demixing-GAN": (12.8, 14.8)},
}
#: Fig. 12: MNIST digit 8 + Fashion-MNIST dress, ICA.
FIGURE_12: dict[str, dict[str, tuple[float, float]]] = {
    "digit8+dress": {"ICA": (3.9, 8.0)},
}
