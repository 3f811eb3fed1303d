"""The paper's experiments by name, and running one (or all) into a report.

An experiment is a function of a ``Context`` (profile, run directory, checkpoint store) that
returns an ``Outcome``; ``reproduce`` gives it a staging directory, writes the outcome with the
shared report writer and renames the directory into place, so a failed experiment leaves no
half-written output (its trained checkpoints stay in the store and are reused by the rerun).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from demixgan.errors import DemixganError
from demixgan.experiments.profiles import get_profile
from demixgan.reports.experiment import (
    Header,
    Outcome,
    device_arguments,
    recorded_command,
    run_record,
    write_outcome,
)
from demixgan.reports.html import Links, Section, Text, write_report

if TYPE_CHECKING:  # type hints only: the context (and torch) loads when an experiment runs
    from demixgan.experiments.context import Context


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    paper: str  # which figures and tables of the paper it reproduces
    run: Callable[[Context], Outcome]
    #: The experiment configs whose models it trains (or reuses), and whether it reads digits
    #: with the MNIST classifier: what ``train_models`` prepares.
    configs: tuple[str, ...] = ()
    classifier: bool = False
    #: The separators it trains (or reuses) beside those models, at the profile's separator
    #: budget: (config, whether the peers and the bound too).
    separators: tuple[tuple[str, bool], ...] = ()
    #: The configs whose models get a separator of the profile's cs measurements (cs's).
    measured: tuple[str, ...] = ()


EXPERIMENTS: dict[str, Experiment] = {}
#: name -> (title, the paper's figures and tables it reproduces) of every experiment, in the
#: order `list` and `all` go. `list` prints this without importing the experiments (and torch);
#: ``register`` takes each experiment's words from here.
DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "denoise-train": ("a denoising-GAN learns clean digits from corrupted ones", "Fig. 2"),
    "denoise-test": ("denoising unseen digits at corruption levels 1..5", "Fig. 3"),
    "demix-train": (
        "demixing-GANs learn both parts from mixtures: digit + sines, digit + lines, two digits",
        "Fig. 4, 5 and Table 1 (digits 1 + 2)",
    ),
    "demix-test": ("separating unseen test mixtures vs. ICA", "Fig. 6 and Table 1"),
    "cs": ("compressive sensing y = A(x + n): LASSO vs. GAN priors", "Fig. 7"),
    "fashion": ("demixing two Fashion-MNIST objects vs. ICA", "Fig. 8-10 and Table 2"),
    "mnist-fashion": (
        "demixing an MNIST 8 from a Fashion-MNIST dress, InfoGAN and DCGAN generators",
        "Fig. 11, 12",
    ),
    "z-coupling": ("demixing fails when the generators' latents are aligned", "Fig. 13, 14"),
    "demix-k3": (
        "three parts learned from mixtures alone: digit + sines + lines",
        "beyond the paper (its experiments have K = 2)",
    ),
    "demix-ink": (
        "digits under ink-like strokes no pixel rule separates, against MixIT, RemixIT and the "
        "supervised bound",
        "beyond the paper (Table 1 with strokes that reach 1)",
    ),
}
#: Experiments past the paper's, run after its own by `list` and `all`.
BEYOND_PAPER = ("demix-k3", "demix-ink")
#: The paper's order, in which `list` and `all` go.
PAPER_ORDER = tuple(name for name in DESCRIPTIONS if name not in BEYOND_PAPER)


def register(
    name: str,
    *,
    configs: Iterable[str] = (),
    classifier: bool = False,
    separators: Iterable[tuple[str, bool]] = (),
    measured: Iterable[str] = (),
):
    """Decorator: add an experiment function to the registry under ``name`` (in DESCRIPTIONS)."""
    if name not in DESCRIPTIONS:
        raise ValueError(f"experiment {name!r} has no title and figures in DESCRIPTIONS")
    title, paper = DESCRIPTIONS[name]

    def add(run: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        if name in EXPERIMENTS:
            raise ValueError(f"experiment {name!r} is registered twice")
        EXPERIMENTS[name] = Experiment(
            name, title, paper, run, tuple(configs), classifier, tuple(separators), tuple(measured)
        )
        return run

    return add


def get_experiment(name: str) -> Experiment:
    _load_experiments()
    if name not in EXPERIMENTS:
        raise DemixganError(
            f"Unknown experiment {name!r}. The experiments are: {', '.join(EXPERIMENTS)} "
            "('demixgan reproduce list' describes them; 'all' runs every one)."
        )
    return EXPERIMENTS[name]


def all_experiments() -> list[Experiment]:
    _load_experiments()
    rank = {name: index for index, name in enumerate(PAPER_ORDER + BEYOND_PAPER)}
    return sorted(EXPERIMENTS.values(), key=lambda e: rank.get(e.name, len(rank)))


def reproduce_command(
    name: str, profile: str, data_dir: str | None, jobs: int = 1, device: str = "cpu"
) -> str:
    """The command line that reruns an experiment as it ran, for its report: with its
    ``--data-dir`` (without it the embedded test split stands in for the MNIST test set), its
    ``--jobs`` (models trained side by side train on fewer threads each: other bits) and a
    device other than the CPU (a GPU rounds differently: other last digits)."""
    data = [] if data_dir is None else ["--data-dir", str(data_dir)]
    parallel = [] if jobs == 1 else ["--jobs", str(jobs)]
    return recorded_command(
        ["reproduce", name, "--profile", profile, *data, *parallel, *device_arguments(device)]
    )


def reproduce(
    name: str,
    output: str | Path,
    *,
    profile: str = "cpu",
    checkpoint_store: str | Path = "runs/checkpoints",
    data_dir: str | None = None,
    progress: bool = True,
    jobs: int = 1,
    device: str = "cpu",
) -> Path:
    """Run experiment ``name`` into the new directory ``output``; return its report.html.
    With ``jobs`` > 1 what it trains is trained first, that many at a time (``train_models``).
    The latent fits, separators and peers run on ``device`` (refused before any work where it
    is not here); the GANs train where their configs say."""
    from demixgan.experiments.context import Context
    from demixgan.inference.outputs import check_new_output
    from demixgan.spec.device import resolve_device

    where = resolve_device(device)
    experiment = get_experiment(name)
    chosen = get_profile(profile)
    output = check_new_output(output)
    if jobs > 1:
        train_models(
            name,
            profile=profile,
            checkpoint_store=checkpoint_store,
            data_dir=data_dir,
            jobs=jobs,
            device=str(where),
        )
    staging = output.with_name(output.name + ".incomplete")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    context = Context(chosen, staging, Path(checkpoint_store), data_dir, progress, where)
    record = run_record(reproduce_command(name, profile, data_dir, jobs, str(where)))
    started = time.perf_counter()
    try:
        outcome = experiment.run(context)
        header = Header(
            title=f"{experiment.name}: {experiment.title}",
            paper=experiment.paper,
            record=record,
            profile=f"{chosen.name} ({chosen.description})",
            provenance=context.provenance,
            minutes=(time.perf_counter() - started) / 60,
        )
        write_outcome(staging, header, outcome)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output / "report.html"


def train_models(
    name: str,
    *,
    profile: str = "cpu",
    checkpoint_store: str | Path = "runs/checkpoints",
    data_dir: str | None = None,
    progress: bool = True,
    jobs: int = 1,
    threads: int | None = None,
    device: str = "cpu",
) -> list[str]:
    """Train (or find) every model experiment ``name`` needs (and the separators and peers it
    declares), without evaluating anything, ``jobs`` trainings at a time
    (experiments/preparation.py; ``threads``: each one's).

    Training is most of an experiment's time and the store keeps what it trains, so the models
    can be trained first (several at once, or on another machine sharing the store) and the
    experiment run later reuses them. Returns where each model came from.
    """
    from demixgan.experiments.preparation import Setup, prepare
    from demixgan.spec.device import resolve_device

    setup = Setup(profile, str(checkpoint_store), data_dir, progress, str(resolve_device(device)))
    return prepare(get_experiment(name), setup, jobs, threads)


def reproduce_all(output: str | Path, **options) -> Path:
    """Every experiment into ``output``/NAME, and an index page linking their reports."""
    from demixgan.inference.outputs import check_new_output

    output = check_new_output(output)
    output.mkdir(parents=True)
    links = []
    for experiment in all_experiments():
        reproduce(experiment.name, output / experiment.name, **options)
        links.append((f"{experiment.name}/report.html", f"{experiment.name}: {experiment.title}"))
    return write_report(
        output / "index.html",
        "demixgan: the paper's experiments",
        [
            Section(
                "Reports",
                [
                    Text("One report per experiment of the paper, in the registry's order."),
                    Links(links),
                ],
            )
        ],
    )


def _load_experiments() -> None:
    """Import the modules whose functions register themselves."""
    from demixgan.experiments import (  # noqa: F401
        compressive,
        coupling,
        demixing,
        denoising,
        fashion,
        ink,
    )
