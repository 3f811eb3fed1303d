"""Score separations of test mixtures: every method against the same truths, mean +- std.

A separation is only worth its gain over the trivial split x_hat = n_hat = y / 2, so every
table carries that row and the input (the mixture itself taken as each component) beside the
methods. Estimated components are matched to the true ones by the best permutation over the
whole test set (Hungarian assignment), and the matching is reported; exchangeable parts (two
digits of the same classes) are matched per mixture instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from demixgan.evaluation.metrics import align_each, match_components, mse, psnr, ssim

#: Per-image metrics in table order (PSNR and SSIM: higher is better; MSE: lower).
METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "psnr": psnr,
    "mse": mse,
    "ssim": ssim,
}


#: The same PSNR taken the other way, of the test set's mean MSE (10 log10(1 / mean MSE)):
#: lower than the per-image mean wherever errors vary, and what some papers report.
PSNR_OF_MEAN = "psnr_of_mean_mse"

#: The matching reported for exchangeable parts, matched mixture by mixture.
PER_MIXTURE = "best per mixture"


@dataclass(frozen=True)
class MethodScore:
    """One method's metrics per true component: {component: {metric: (mean, std)}}."""

    method: str
    scores: dict[str, dict[str, tuple[float, float]]]
    matching: dict[str, str]  # true component -> the estimate assigned to it
    seconds: float | None = None  # time per mixture to separate, where it was measured


def score_method(
    method: str,
    estimates: torch.Tensor,
    truths: torch.Tensor,
    names: Sequence[str],
    estimate_names: Sequence[str] | None = None,
    *,
    per_mixture: bool = False,
    seconds: float | None = None,
) -> MethodScore:
    """Match ``estimates`` [N, K_est, 1, H, W] to ``truths`` [N, K, 1, H, W] and score them.

    ``per_mixture``: match each mixture's estimates by its own best permutation (for
    exchangeable parts); the reported matching then reads "best per mixture". ``seconds``:
    the method's time per mixture, shown in the tables.
    """
    if per_mixture:
        chosen = align_each(estimates, truths)
        matching = dict.fromkeys(names, PER_MIXTURE)
    else:
        order = match_components(estimates, truths)
        chosen = estimates[:, order]
        estimate_names = estimate_names or [f"estimate {k + 1}" for k in range(estimates.shape[1])]
        matching = {name: estimate_names[order[t]] for t, name in enumerate(names)}
    scores = {}
    for t, name in enumerate(names):
        scores[name] = {
            metric: mean_std(fn(chosen[:, t], truths[:, t])) for metric, fn in METRICS.items()
        }
        mean_mse = scores[name]["mse"][0]
        scores[name][PSNR_OF_MEAN] = (10 * math.log10(1 / max(mean_mse, 1e-10)), 0.0)
    return MethodScore(method, scores, matching, seconds)


def reference_scores(
    mixtures: torch.Tensor, truths: torch.Tensor, names: Sequence[str]
) -> list[MethodScore]:
    """The rows every table carries: the mixture itself and the trivial split y / K."""
    k = truths.shape[1]
    repeated = mixtures.unsqueeze(1).expand(-1, k, -1, -1, -1)
    return [
        score_method("input (mixture)", repeated, truths, names, ["mixture"] * k),
        score_method(f"split y/{k}", repeated / k, truths, names, [f"y/{k}"] * k),
    ]


def table_cells(
    rows: Sequence[MethodScore], names: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """Header and cells "mean ± std" of PSNR / MSE / SSIM per component and the PSNR of the
    mean MSE, one row per method."""
    header = ["method"]
    for name in names:
        header += [f"{name} PSNR", f"{name} PSNR of mean MSE", f"{name} MSE", f"{name} SSIM"]
    timed = any(row.seconds is not None for row in rows)
    cells = []
    for row in rows:
        line = [row.method]
        for name in names:
            for metric in METRICS:
                mean, std = row.scores[name][metric]
                digits = 2 if metric == "psnr" else 4
                line.append(f"{mean:.{digits}f} ± {std:.{digits}f}")
                if metric == "psnr":
                    line.append(f"{row.scores[name][PSNR_OF_MEAN][0]:.2f}")
        if timed:
            line.append("" if row.seconds is None else f"{1e3 * row.seconds:.2f}")
        cells.append(line)
    return header + ["ms / mixture"] * timed, cells


def markdown_table(rows: Sequence[MethodScore], names: Sequence[str], n: int) -> str:
    """The scores as a Markdown table (mean ± std over ``n`` mixtures)."""
    header, cells = table_cells(rows, names)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(line) + " |" for line in cells]
    per_mixture = any(PER_MIXTURE in row.matching.values() for row in rows)
    matched = (
        "each mixture's parts matched to its truth by their best order (exchangeable parts)"
        if per_mixture
        else "each method's parts matched to the truth once over the whole set"
    )
    lines.append(
        f"\nmean ± std over {n} test mixtures of per-image values; PSNR in dB with peak 1; "
        f"PSNR of mean MSE: 10 log10(1 / the mean MSE over the set); {matched}."
    )
    return "\n".join(lines)


def mean_std(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of per-image values (std 0 for a single one)."""
    values = values.double()
    std = values.std().item() if values.numel() > 1 else 0.0
    return values.mean().item(), std
