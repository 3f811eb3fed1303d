"""Write an inference task's outputs: one PNG per estimated component, ``.npy`` stacks, metrics.

Everything goes to a staging directory beside the output that is renamed into place at the
end, so a failed or interrupted run leaves no half-written output directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from demixgan.errors import DemixganError
from demixgan.evaluation.separation import METRICS, score_method
from demixgan.inference.api import TrainedModel
from demixgan.io.atomic import check_writable_dir
from demixgan.io.images import write_png


def check_new_output(path: str | os.PathLike) -> Path:
    """The output directory must be new (or empty) and its parent writable: checked up front."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DemixganError(
            f"The output '{path}' already exists and is not an empty directory; choose a new "
            "directory so no earlier result is overwritten."
        )
    check_writable_dir(path.parent if str(path.parent) else ".", "output")
    return path


def write_outputs(
    output: Path,
    trained: TrainedModel,
    task: str,
    estimates: torch.Tensor,
    truth: torch.Tensor | None,
) -> str:
    """Write ``estimates`` [N, K, C, H, W] (and metrics against ``truth``); return a summary.

    Per component: ``NAME.npy`` [N, C, H, W] and one PNG per input (grey or RGB, the input's
    size)."""
    names = trained.component_names
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.partial-"))
    try:
        for k, name in enumerate(names):
            folder = staging / name
            folder.mkdir()
            stack = estimates[:, k].numpy()
            np.save(folder.with_suffix(".npy"), stack)
            for i, image in enumerate(stack):
                write_png(folder / f"{i:05d}.png", image)
        summary = f"{task}: wrote {estimates.shape[0]} x {', '.join(names)} to {output}"
        if truth is not None:
            metrics = _metrics(estimates, truth, names)
            (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            summary += "\n" + _describe(metrics)
        if output.exists():
            output.rmdir()  # checked empty up front
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _metrics(estimates: torch.Tensor, truth: torch.Tensor, names) -> dict:
    truth_names = [f"truth {t + 1}" for t in range(truth.shape[1])]
    if truth.shape[1] == 1 and estimates.shape[1] == 1:
        truth_names = list(names)
    score = score_method("estimate", estimates, truth, truth_names, list(names))
    return {
        "n": int(estimates.shape[0]),
        "matching": score.matching,
        "metrics": {
            t: {m: {"mean": v[0], "std": v[1]} for m, v in s.items()}
            for t, s in score.scores.items()
        },
        "metric_notes": f"per image, then mean and std; PSNR peak 1; metrics: {list(METRICS)}",
    }


def _describe(metrics: dict) -> str:
    lines = []
    for truth_name, values in metrics["metrics"].items():
        psnr = values["psnr"]
        lines.append(
            f"  {truth_name} <- {metrics['matching'][truth_name]}: PSNR "
            f"{psnr['mean']:.2f} ± {psnr['std']:.2f} dB over {metrics['n']}"
        )
    return "\n".join(lines)
