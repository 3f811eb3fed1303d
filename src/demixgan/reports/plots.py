"""Line plots for experiment reports (matplotlib, written atomically)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from demixgan.io.atomic import atomic_path


def line_plot(
    path: str | os.PathLike,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> None:
    """One line per series over the shared ``x``; a dashed line where the label says 'input'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.2, 3.6))
    for label, values in series.items():
        style = "--" if "input" in label else "-"
        axis.plot(list(x), list(values), style, marker="o", label=label)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title, fontsize=11)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
