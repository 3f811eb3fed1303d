"""Write an inference task's outputs: one PNG per estimated component, ``.npy`` stacks, metrics.

Everything goes to a staging directory beside the output that is renamed into place at the
end, so a failed or interrupted run leaves no half-written output directory; a command holds
the output's lock (``new_output``) from its first check to that rename, so a second command
writing the same output is refused at once instead of failing at the rename.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from demixgan.data.observed import Source, resized
from demixgan.errors import DemixganError
from demixgan.evaluation.separation import METRICS, PSNR_OF_MEAN, score_method
from demixgan.inference.api import TrainedModel
from demixgan.io.atomic import check_writable_dir
from demixgan.io.images import write_png
from demixgan.io.locks import output_lock
from demixgan.io.stale import make_temp_dir, remove_stale_temps

#: The table of an output directory: which input each row is and its parts' files.
INDEX_FILE = "index.csv"


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


@contextmanager
def new_output(path: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """``check_new_output`` under the output's lock, held until the block ends (the rename).

    Checked before the lock too, so that a refused output leaves no lock file behind.
    """
    check_new_output(path)
    with output_lock(path, what):
        yield check_new_output(path)


def write_outputs(
    output: Path,
    trained: TrainedModel,
    task: str,
    estimates: torch.Tensor,
    truth: torch.Tensor | None,
    sources: Sequence[Source] | None = None,
) -> str:
    """Write ``estimates`` [N, K, C, H, W] (and metrics against ``truth``); return a summary.

    Per component: ``NAME.npy`` [N, C, H, W] and one PNG per input, named after it (its
    ``sources``) with its channels, bit depth (16-bit grey stays 16-bit) and size (a part of
    an input the run resizes is scaled back to it; a cropped one stays the crop), and
    ``index.csv``: one row per input naming its parts' files."""
    names = trained.component_names
    if not torch.isfinite(estimates).all():
        raise DemixganError(
            f"The {task} estimates hold NaN or infinite values (the fit diverged), so nothing "
            "was written. Check the inputs' scale (images in [0, 1] per part), or lower --lr."
        )
    remove_stale_temps(output.parent, ".partial")  # staged by a killed run
    staging = make_temp_dir(output.parent, output.name, ".partial")
    try:
        stems = _file_stems(sources, estimates.shape[0])
        resize = trained.config.data.resize
        for k, name in enumerate(names):
            folder = staging / name
            folder.mkdir()
            stack = estimates[:, k].numpy()
            np.save(folder.with_suffix(".npy"), stack)
            for i, image in enumerate(stack):
                source = sources[i] if sources else None
                if source and resize and image.shape[1:] != (source.height, source.width):
                    image = resized(image, (source.height, source.width))  # back to its size
                bits = 16 if source and source.bits == 16 and image.shape[0] == 1 else 8
                write_png(folder / f"{stems[i]}.png", image, bits=bits)
        _write_index(staging / INDEX_FILE, names, stems, sources)
        summary = f"{task}: wrote {estimates.shape[0]} x {', '.join(names)} to {output}"
        if truth is not None:
            metrics = _metrics(estimates, truth, names)
            (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            summary += "\n" + _describe(metrics)
        try:
            if output.exists():
                output.rmdir()  # checked empty up front
            os.replace(staging, output)
        except OSError as exc:  # written meanwhile by a process that does not lock it
            raise DemixganError(
                f"The output '{output}' was created by another process while this one ran "
                f"({exc.strerror or exc}), so nothing was written, to keep that result. Run "
                "the command again with a new output directory."
            ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _file_stems(sources: Sequence[Source] | None, count: int) -> list[str]:
    """A file name per input: its own (``-2``, ``-3`` where two inputs share one), else its
    index."""
    if not sources:
        return [f"{i:05d}" for i in range(count)]
    stems, seen = [], Counter()
    for source in sources:
        seen[source.name] += 1
        count = seen[source.name]
        stems.append(source.name if count == 1 else f"{source.name}-{count}")
    return stems


def _write_index(path: Path, names, stems: list[str], sources: Sequence[Source] | None) -> None:
    """``index.csv``: each input (its name, size, channels, bits) and its parts' PNG files."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["index", "input", "height", "width", "channels", "bits", *names])
        for i, stem in enumerate(stems):
            source = sources[i] if sources else None
            described = (
                [source.name, source.height, source.width, source.channels, source.bits]
                if source
                else ["", "", "", "", ""]
            )
            writer.writerow([i, *described, *(f"{name}/{stem}.png" for name in names)])


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
        "metric_notes": f"per image, then mean and std; PSNR peak 1; metrics: {list(METRICS)}; "
        f"{PSNR_OF_MEAN}: 10 log10(1 / the mean MSE), of the set (std 0)",
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
