"""`demixgan demo`: separate held-out digit + ink mixtures and write a report.

The demo separates test mixtures of real MNIST digits (the embedded test split, never seen in
training) crossed by ink-like curves (level 1, the sum clipped to [0, 1]) with a
demixing-GAN's separator network, and with the latent fit started from its parts; it scores
them against the best pixel-value rule, ICA, the trivial split y/2 and the mixture itself,
and writes a run directory with the evolution grid, the separation grid, the scores (with
each method's time per mixture) and a self-contained ``report.html``. It uses the model and
separator that ship with the package (trained by ``demixgan train`` from the package's
``assets/experiments/demix-digit-ink.toml``, then ``demixgan separator``), or, with
``train=True``, trains both from scratch first. ``method="fit"`` runs the latent fit from
the prior's draws instead (the paper's inference, minutes instead of seconds).

The paper's digit + sines model ships beside it (``shipped_checkpoint``): the experiments
that reproduce the paper's figures use it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

from demixgan.errors import DemixganError
from demixgan.experiments.figures import separation_panels
from demixgan.inference.amortized import Separator
from demixgan.inference.api import TrainedModel, load
from demixgan.inference.choice import REFINE
from demixgan.inference.options import FitOptions, SeparatorOptions
from demixgan.inference.tasks import Evaluation, evaluate_checkpoint
from demixgan.io import checkpoints
from demixgan.io.atomic import atomic_path
from demixgan.reports.experiment import device_arguments, recorded_command, run_record
from demixgan.reports.grids import save_panels
from demixgan.reports.html import Figure, Section, Table, Text, write_report

#: The latent fit's budget (``method="fit"``): fits 200 mixtures in a few minutes on 2 cores.
DEMO_FIT = FitOptions(iterations=300, restarts=6, lr=0.05, smoothing=2.0, seed=0, chunk=240)
#: The rows of each demo method, in table order (inference/methods.py).
DEMO_METHODS = {
    "separator": ("refine", "separator", "pixel-rule", "ica", "mixture", "split"),
    "fit": ("fit", "pixel-rule", "ica", "mixture", "split"),
}
EXAMPLES = 8
#: The demo's config and model directory inside the package's assets: the model there was
#: trained from the config, and its separator (``separator/``) from the model.
DEMO_CONFIG = "experiments/demix-digit-ink.toml"
DEMO_MODEL = "demo-ink"
#: The paper's digit + sines model (attempt E11), which the paper's experiments reuse.
SHIPPED_CONFIG = "experiments/demix-digit-sines.toml"


@dataclass(frozen=True)
class DemoResult:
    run_dir: Path
    evaluation: Evaluation
    report: Path


def asset(name: str) -> Path:
    """A file shipped inside the package (config, checkpoint, figures)."""
    return Path(str(resources.files("demixgan") / "assets" / name))


def shipped_checkpoint(model: str = "demo") -> Path:
    """The checkpoint of a model shipped in ``assets/<model>``: the paper's digit + sines one
    by default, ``DEMO_MODEL`` for the demo's."""
    latest = checkpoints.latest_checkpoint(asset(model))
    if latest is None:
        raise DemixganError(
            f"The shipped checkpoint is missing from {asset(model)} (a damaged installation?). "
            "Reinstall demixgan, or train the demo's with 'demixgan demo --train'."
        )
    return latest.weights_path


def demo_separator() -> Separator:
    """The separator shipped beside the demo's model (``demixgan separator`` trained it)."""
    from demixgan.inference.amortized import load_separator

    return load_separator(asset(f"{DEMO_MODEL}/separator"))[0]


def demo_peers() -> dict[str, Separator]:
    """The peers shipped beside the demo's separator (``demixgan separator --peer``, with the
    same options), by kind: MixIT, RemixIT without the GAN, the supervised bound."""
    from demixgan.inference.amortized import load_separator
    from demixgan.inference.choice import PEERS

    folders = {kind: asset(f"{DEMO_MODEL}/peers/{kind}") for kind in PEERS}
    missing = [str(folder) for folder in folders.values() if not folder.is_dir()]
    if missing:
        raise DemixganError(
            f"The shipped peers are missing ({', '.join(missing)}; a damaged installation?). "
            "Reinstall demixgan, or train them with 'demixgan demo --train'."
        )
    return {kind: load_separator(folder)[0] for kind, folder in folders.items()}


def run_demo(
    run_dir: str | Path,
    *,
    train_first: bool = False,
    overrides: Sequence[str] = (),
    n: int = 200,
    method: str = "separator",
    options: FitOptions | None = None,
    separator_options: SeparatorOptions | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> DemoResult:
    """Run the whole demo into ``run_dir`` (a new directory) and return where things are.

    ``overrides`` (KEY=VALUE, as ``demixgan train --set``) change the demo config when
    ``train_first`` trains it (and its separator, with ``separator_options``). ``options``
    is the latent fit's budget: the refinement's (``REFINE``) for the separator method,
    the whole fit's (``DEMO_FIT``) for ``method="fit"``. Everything trains and separates on
    ``device`` (cpu, cuda, cuda:N or auto), refused before any work where it is not here.
    """
    if method not in DEMO_METHODS:
        raise DemixganError(
            f"The demo's method is one of {', '.join(DEMO_METHODS)}, not {method!r}."
        )
    from demixgan.inference.outputs import check_new_output
    from demixgan.spec.config import load_config
    from demixgan.spec.device import resolve_device

    where = resolve_device(device)
    run_dir = check_new_output(run_dir)
    config = None
    if train_first:  # the device first, so that an override of train.device wins
        config = load_config(asset(DEMO_CONFIG), [f"train.device={where}", *overrides])
    existed = run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _write_demo(
            run_dir, config, n, method, (options, separator_options), progress, where
        )
    except BaseException:
        if config is None:  # nothing trained worth keeping: leave no half-written demo behind
            for entry in run_dir.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            if not existed:
                run_dir.rmdir()
        raise


def _write_demo(run_dir, config, n, method, budgets, progress, device) -> DemoResult:
    """The demo's work and files in ``run_dir`` (checked new) on ``device``; ``config``: train
    it first; ``budgets``: the latent fit's and the separator's options (None: defaults)."""
    options, separator_options = budgets
    started = time.perf_counter()
    trained_here = config is not None
    train = ["--train"] if trained_here else []
    arguments = ["demo", "--method", method, "--n", str(n), *train, *device_arguments(device)]
    record = run_record(recorded_command(arguments))
    if trained_here:
        checkpoint, evolution = _train(config, run_dir, progress)
    else:
        checkpoint = shipped_checkpoint(DEMO_MODEL)
        evolution = run_dir / "evolution.png"
        shutil.copyfile(asset(f"{DEMO_MODEL}/evolution.png"), evolution)
    trained = load(checkpoint, device)
    separator = None
    if method == "separator":
        separator = (
            _train_separator(trained, separator_options, progress)
            if trained_here
            else demo_separator()
        )
    peers = _train_peers(trained, separator_options, progress) if trained_here else demo_peers()
    for network in [separator, *peers.values()]:  # the shipped ones load on the CPU
        if network is not None:
            network.network.to(device)
    options = options or (REFINE if separator is not None else DEMO_FIT)
    evaluation, examples = _evaluate(trained, n, method, options, separator, peers, progress)
    if not trained_here:  # the package's model, by its place in any installation
        checkpoint = Path(f"demixgan/assets/{DEMO_MODEL}/{checkpoint.name}")
        evaluation = replace(evaluation, checkpoint=str(checkpoint))
    grid = run_dir / "separation.png"
    save_panels(
        examples, grid, ncol=1, title=f"{min(EXAMPLES, n)} of the {n} held-out test mixtures"
    )
    with atomic_path(run_dir / "metrics.json") as tmp:
        record |= asdict(evaluation)
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with atomic_path(run_dir / "table.md") as tmp:
        tmp.write_text(evaluation.table + "\n", encoding="utf-8")
    elapsed = time.perf_counter() - started
    report = write_report(
        run_dir / "report.html",
        "demixgan demo: digit + ink separated by a demixing-GAN",
        _sections(trained, evaluation, checkpoint, trained_here, evolution, grid, elapsed, method),
    )
    return DemoResult(run_dir, evaluation, report)


def _train(config, run_dir: Path, progress: bool) -> tuple[Path, Path]:
    from demixgan.training.loop import train

    result = train(config, run_dir / "training", progress=progress)
    grids = sorted((result.run_dir / "evolution").glob("epoch-*.png"))
    return result.checkpoint, grids[-1]


def _train_separator(trained: TrainedModel, options: SeparatorOptions | None, progress: bool):
    from demixgan.io.progress import progress_bar
    from demixgan.training.separator import train_model_separator

    options = options or SeparatorOptions()
    total = options.steps + options.remix_steps
    with progress_bar(total, "training the separator", unit="step", enabled=progress) as bar:
        return train_model_separator(trained, options, progress=bar.update, device=trained.device)


def _train_peers(trained: TrainedModel, options: SeparatorOptions | None, progress: bool):
    """The peers of ``demo_peers``, trained here with the separator's options."""
    from demixgan.inference.choice import PEERS
    from demixgan.io.progress import progress_bar
    from demixgan.training.separator import train_peer

    options = options or SeparatorOptions()
    peers: dict[str, Separator] = {}
    for kind in PEERS:
        total = options.steps + options.remix_steps
        with progress_bar(total, f"training the {kind} peer", unit="step", enabled=progress) as bar:
            peers[kind] = train_peer(
                trained,
                kind,
                options,
                mixit=peers.get("mixit"),
                progress=bar.update,
                device=trained.device,
            )
    return peers


def _evaluate(trained, n: int, method: str, options: FitOptions, separator, peers, progress):
    from demixgan.io.progress import progress_bar

    shown = progress and method == "fit"  # only the latent fit reports as it goes
    with progress_bar(n, "fitting test mixtures", unit="mixture", enabled=shown) as bar:
        evaluation, separation = evaluate_checkpoint(
            trained,
            options,
            n=n,
            digit_source="mnist-embedded",
            methods=DEMO_METHODS[method],
            separator=separator,
            peers=peers,
            refine_options=options,
            progress=bar.update,
        )
    panels = separation_panels(trained, evaluation, separation, EXAMPLES)
    return evaluation, panels


def _sections(trained, evaluation, checkpoint, trained_here, evolution, grid, elapsed, method):
    header, cells = _table(evaluation)
    source = (
        "trained in this run from the demo config"
        if trained_here
        else "shipped with demixgan, trained by 'demixgan train' from the demo config"
    )
    config = json.dumps(asdict(trained.config), indent=2)
    how = (
        "by the demixing-GAN's separator network in one pass (trained on the GAN's own draws, "
        "then by remixing the training mixtures), and by a short latent fit started from the "
        "separator's parts"
        if method == "separator"
        else "by fitting the latents of the demixing-GAN's two generators to each mixture"
    )
    return [
        Section(
            "What this is",
            [
                Text(
                    f"{evaluation.n} held-out mixtures y = clip(digit + ink, 0, 1) (level 1) of "
                    f"real MNIST digits ({evaluation.digits}, never used in training) were "
                    f"separated {how}. The GAN and the separator learned from mixtures only: "
                    "neither saw a clean digit or curve. The ink strokes reach 1 like the "
                    "digits, so no rule on a pixel's value separates them; the pixel-value row "
                    "is the best such rule, fitted with the truth of validation mixtures."
                ),
                Text(f"Checkpoint: {checkpoint} ({source}). Total time {elapsed:.0f} s."),
            ],
        ),
        Section(
            "Scores (mean ± std per test mixture; PSNR in dB, peak 1)",
            [
                Table(header, cells),
                Text(
                    "A separation is worth its gain over the best of the trivial split "
                    "x = n = y/2 and the pixel-value rule (each part's mean given the mixture's "
                    "pixel value, a lookup table fitted on 2,000 validation mixtures with their "
                    "truth), and over its peers: the same network with the same budget trained "
                    "on the same mixtures without the GAN, by mixture invariant training "
                    "(MixIT, its outputs grouped without the truth, and its oracle grouping, "
                    "which sees it) and by RemixIT taught by MixIT. The supervised row is the "
                    "same network trained on the clean parts: the upper bound. ICA is "
                    "scikit-learn's FastICA on the patches of each mixture (docs/baselines.md). "
                    "PSNR is the per-image mean; 'PSNR of mean MSE' is 10 log10(1 / the mean "
                    "MSE). The last column is each method's time per mixture."
                ),
            ],
        ),
        Section(
            "Separations",
            [Figure(grid, "truth, mixture, GAN parts, generator outputs G(z), ICA parts")],
        ),
        Section("Training", [Figure(evolution, "generators for fixed latents (evolution)")]),
        Section(
            "Latent fit" if method == "fit" else "Refinement (latent fit from the separator)",
            [Text(json.dumps(evaluation.options, indent=2), preformatted=True)],
        ),
        Section("Model configuration", [Text(config, preformatted=True)]),
    ]


def _table(evaluation: Evaluation) -> tuple[list[str], list[list[str]]]:
    from demixgan.evaluation.separation import table_cells

    names = list(evaluation.rows[0].scores)
    return table_cells(evaluation.rows, names)
