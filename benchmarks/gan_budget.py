"""A GAN's training budget chosen on validation mixtures: one run, a separator per candidate.

Run: ``python benchmarks/gan_budget.py CONFIG --budgets 2000 4000 6000 --out DIR [--device auto]
[--set KEY=VALUE ...] [--jobs 2] [--json OUT]``. One run of CONFIG (with the ``--set`` settings)
trains to the largest budget in ``DIR/run``, keeping the checkpoint of every candidate
(``train.keep_every`` = their greatest common divisor) while it checkpoints at most every
``SAVE_EVERY`` steps (so a stop loses little), without the epoch-end checkpoints and evolution
grids: these settings change nothing learned; each candidate's checkpoint gets a separator with
the default options (``SeparatorOptions()``, every experiment's) in ``DIR/sep-B``, scored on the 500
validation mixtures that choose a run's method (benchmarks/separator_budget.py). The chosen budget
has the best mean PSNR over the parts (the smaller one on a tie). A stopped call continues where it
stopped (the run and each separator resume); a run already in ``DIR/run`` is continued to this
call's largest budget (a longer grid continues the same run; a shorter one reuses its checkpoints
and trains nothing past its own largest candidate), and must have kept a checkpoint at every
candidate. With ``--jobs 2`` a second process trains each candidate's separator
as soon as the run has written its checkpoint, while the run goes on (each process on half the
cores: the numbers equal a one-process call's on that many threads). The test split is never read.

A denoiser of denoise-test (``denoise-digit-*.toml``) is chosen as that report uses it:
``--max-level 6`` trains each candidate's separator on draws of every level up to 6
(``Context.separator_options``), and scores its digit part on ``CHOICE_MIXTURES`` validation
digits under the draws of each level 1..6 that choose the report's level threshold
(``experiments/denoising.validation_corrupted``): the chosen budget has the best mean over
the levels.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import torch
from published import command_line, publish
from separator_budget import model_of, score, scored

from demixgan.errors import DemixganError
from demixgan.evaluation.metrics import psnr
from demixgan.experiments.context import Context
from demixgan.experiments.denoising import DENOISERS, Denoiser, validation_corrupted
from demixgan.experiments.profiles import get_profile
from demixgan.inference.amortized import load_separator
from demixgan.inference.choice import CHOICE_MIXTURES
from demixgan.inference.options import LEVELS, SeparatorOptions
from demixgan.io.checkpoints import list_checkpoints
from demixgan.io.json_files import read_json
from demixgan.io.run_files import CHECKPOINT_DIR, CONFIG_FILE, training_minutes
from demixgan.reports.experiment import run_record
from demixgan.spec.config import config_to_dict, load_config, parse_config
from demixgan.training.loop import train
from demixgan.training.separator_runs import JOB_FILE, finished_run, new_job, run_job

#: The most steps between two checkpoints of a budget run (a divisor of the candidates' gcd).
SAVE_EVERY = 500


def train_run(
    config_path: Path, budgets: list[int], run: Path, device: str, extra: Sequence[str] = ()
) -> float:
    """The run to the largest budget (new, continued or stopped there; ``extra`` settings of
    the config apply to a new one); its training minutes to that budget."""
    every = math.gcd(*budgets)
    lengths = [
        f"train.max_steps={max(budgets)}",
        f"train.epochs={max(budgets)}",  # every epoch has a step: the epoch cap never binds
        f"train.checkpoint_every={max(d for d in range(1, SAVE_EVERY + 1) if every % d == 0)}",
        "train.keep_last=2",
        f"train.keep_every={every}",
    ]
    settings = [
        *lengths,
        "train.checkpoint_every_epoch=false",
        # Nor the evolution grids (their own seeded draws, in eval mode): 367 digit 8s make an
        # epoch of 5 steps, and a grid each cost 12% of E25's run and 374 MB.
        "train.snapshot_every_epoch=false",
    ]
    resume = (run / CONFIG_FILE).is_file()
    if resume:  # continued, to longer budgets too (the data order is the seed's and epoch's)
        config = parse_config(read_json(run / CONFIG_FILE, "run config", ""), name=run.name)
        kept = [c.step for c in list_checkpoints(run / CHECKPOINT_DIR)]
        if kept and max(kept) >= max(budgets):  # trained that far already: nothing to train
            return training_minutes(run, config.train.batch_size, until=max(budgets))
        if config.train.max_steps != max(budgets):  # the budget and checkpoint settings only
            config = parse_config(config_to_dict(config), name=run.name, overrides=lengths)
    else:
        config = load_config(config_path, [*settings, *extra])
    train(config, run, resume=resume, device=device, progress=False)
    return training_minutes(run, config.train.batch_size, until=max(budgets))


def separator_for(
    run: Path, budget: int, folder: Path, device: str, options: SeparatorOptions
) -> Path:
    """The separator of the run's checkpoint at ``budget`` steps, in ``folder``."""
    if finished_run(folder) is not None:
        return folder
    checkpoints = {c.step: c for c in list_checkpoints(run / CHECKPOINT_DIR)}
    if budget not in checkpoints:
        raise DemixganError(f"the run in {run} kept no checkpoint at step {budget}")
    resume = (folder / JOB_FILE).is_file()
    job = new_job(checkpoints[budget].weights_path, options, device=device)
    run_job(job, folder, resume=resume, progress=False, device=device)
    return folder


def separators_as_they_come(
    run: Path, budgets: list[int], out: Path, device: str, options: SeparatorOptions
) -> None:
    """Each candidate's separator, in order, once the run has kept its checkpoint (run by a
    second process while the first trains the run)."""
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    for budget in budgets:
        while budget not in {c.step for c in list_checkpoints(run / CHECKPOINT_DIR)}:
            time.sleep(POLL_SECONDS)
        separator_for(run, budget, out / f"sep-{budget}", device, options)


def denoiser_score(folder: Path, denoiser: Denoiser, max_level: int) -> dict:
    """``score``'s row for a denoiser's separator, its digit part scored at every level up to
    ``max_level`` on validation digits (the draws that choose denoise-test's level threshold);
    ``mean_psnr`` is the mean over those levels."""
    separator, sidecar = load_separator(folder)
    trained = model_of(sidecar)
    row = scored(folder, separator, sidecar, trained)  # the digit at the level it trained on
    context = Context(get_profile("cpu"), Path("."), Path("."), progress=False)
    digits = context.validation_digits(CHOICE_MIXTURES, denoiser.config).images
    by_level = {}
    for level in (level for level in LEVELS if level <= max_level):
        corrupted = validation_corrupted(digits, denoiser, level)
        digit = trained.separate(corrupted, separator)[:, 0]
        by_level[f"level {level}"] = round(psnr(digit, digits).mean().item(), 4)
    return {
        **row,
        "trained_level_psnr": row["validation_psnr"],
        "validation_psnr": by_level,
        "mean_psnr": round(sum(by_level.values()) / len(by_level), 4),
    }


#: How often the second process looks for the run's next candidate checkpoint.
POLL_SECONDS = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="the run configuration (TOML)")
    parser.add_argument("--budgets", type=int, nargs="+", required=True, help="GAN steps")
    parser.add_argument("--out", type=Path, required=True, help="directory of the run and seps")
    parser.add_argument("--device", default="auto", help="where to train: auto, cpu, cuda")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a config setting"
    )
    parser.add_argument("--jobs", type=int, choices=(1, 2), default=1, help="processes")
    parser.add_argument(
        "--max-level",
        type=int,
        default=0,
        help="a denoiser's separators: draws of every level up to this, scored at each",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    budgets = sorted(set(args.budgets))
    if budgets[0] < 1:
        parser.error("--budgets are positive step counts")
    denoiser = next((d for d in DENOISERS if d.config == args.config.stem), None)
    if args.max_level and (denoiser is None or args.max_level not in LEVELS):
        parser.error(
            f"--max-level is for a denoiser of denoise-test "
            f"({', '.join(d.config for d in DENOISERS)}), a level of {LEVELS}"
        )
    options = replace(SeparatorOptions(), max_level=args.max_level)
    record = run_record(command_line())
    run = args.out / "run"
    try:
        if args.jobs == 2:
            minutes = _side_by_side(args.config, budgets, args.out, args.device, args.set, options)
        else:
            minutes = train_run(args.config, budgets, run, args.device, args.set)
        rows = []
        for budget in budgets:
            folder = separator_for(run, budget, args.out / f"sep-{budget}", args.device, options)
            if args.max_level:
                rows.append({"budget": budget, **denoiser_score(folder, denoiser, args.max_level)})
            else:
                rows.append({"budget": budget, **score(folder)})
    except DemixganError as error:
        parser.error(str(error))
    best = max(rows, key=lambda row: (row["mean_psnr"], -row["budget"]))
    figures = {
        **record,
        "config": args.config.as_posix(),
        "settings": args.set,
        "gan_minutes_to_the_largest_budget": round(minutes, 1),
        "separator": vars(options),
        "rows": rows,
        "chosen": best["budget"],
    }
    return publish(figures, args.json)


def _side_by_side(
    config: Path,
    budgets: list[int],
    out: Path,
    device: str,
    extra: Sequence[str],
    options: SeparatorOptions,
) -> float:
    """The run, then the last candidate's separator, here; the separators of the others in a
    second process meanwhile (so a run continued to longer budgets trains two at once)."""
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    run = out / "run"
    with get_context("spawn").Pool(1) as pool:
        second = pool.apply_async(
            separators_as_they_come, (run, budgets[:-1], out, device, options)
        )
        minutes = train_run(config, budgets, run, device, extra)
        separator_for(run, budgets[-1], out / f"sep-{budgets[-1]}", device, options)
        second.get()  # its errors are raised here
        pool.close()  # a worker that exits on its own leaves no tqdm lock behind (a warning)
        pool.join()
    return minutes


if __name__ == "__main__":
    raise SystemExit(main())
