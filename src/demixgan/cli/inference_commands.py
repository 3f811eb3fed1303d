"""`demixgan denoise|demix|cs|evaluate|name`: use a trained checkpoint on new data.

Each command reads and checks everything first, fits, and writes its output directory in one
rename at the end, so a failure never leaves half an output behind.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import TYPE_CHECKING

from demixgan.cli.options import add_flags, from_flags
from demixgan.inference.choice import METHODS, PEERS, REFINE
from demixgan.inference.options import (
    DEFAULT_METHODS,
    METHOD_NAMES,
    FitOptions,
    SeparatorOptions,
)

if TYPE_CHECKING:
    import torch

    from demixgan.inference.amortized import Separator

#: What a denoiser can run: the latent fit, or its run's separator (one pass, no level).
DENOISE_METHODS = ("fit", "separator")
METHOD_HELP = {
    "denoise": "fit: G(z) fitted to the image (with --corruption-level, the corruption too); "
    "separator: the run's separator in one pass, never told the level (train it with "
    "'demixgan separator RUN --max-level 6'; default: the separator where the run has one and "
    "no --corruption-level is given, else fit)",
    "demix": "fit: the latent fit from the prior; separator: the run's separator in one pass; "
    "refine: the separator's parts, then a short fit (default: what validation chose when the "
    "run was given a separator, else fit)",
    "cs": "fit, or separator / refine with --separator (a separator trained for the same "
    "matrix; default fit)",
}


def register(commands: argparse._SubParsersAction) -> None:
    for task, help_text in (
        (
            "denoise",
            "fit one generator to corrupted images (paper eq. 3), or split the "
            "corruption off with the run's separator",
        ),
        ("demix", "fit every generator to mixtures and write each component (paper eq. 4)"),
        ("cs", "recover components from Gaussian compressive measurements y = A(x + n)"),
    ):
        parser = commands.add_parser(task, help=help_text, description=help_text)
        parser.add_argument("checkpoint", help="run directory (latest checkpoint) or .safetensors")
        parser.add_argument(
            "inputs",
            nargs="+",
            help="mixture images (PNG, JPEG, TIFF), .npy stacks [N, C, H, W] (grey: [N, H, W]) "
            "or folders of them, of the run's size",
        )
        parser.add_argument("-o", "--output", required=True, help="output directory (new)")
        parser.add_argument(
            "--truth",
            nargs="+",
            help="ground truth for a metrics.json: clean images (denoise, cs with one "
            "generator) or a .npy [N, K, C, H, W] of components (demix, cs)",
        )
        _fit_options(parser)
        add_device_option(parser)
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        if task == "cs":
            _matrix_options(
                parser,
                "m: measure the input images with an m x (C H W) Gaussian matrix first (inputs are "
                "images); without it the inputs are .npy measurements [N, m]",
            )
        if task == "denoise":
            parser.add_argument(
                "--corruption-level",
                type=_corruption_level,
                help="fit the checkpoint's known corruption too, as this many items of its "
                "family (curves, waves; lines at any level), or 'auto': each image's number "
                "chosen by the fit (docs/inference.md)",
            )
            parser.add_argument(
                "--level-threshold",
                type=_threshold,
                help="with --corruption-level auto: keep an item while it lowers the per-pixel "
                "squared error by at least this (default: chosen on 20 validation images per "
                "level of the run's recipe; your own mixtures need it given)",
            )
            parser.add_argument(
                "--estimate",
                choices=("generator", "subtract"),
                default="generator",
                help="generator: G(z) (the paper); subtract: the input minus the fitted "
                "corruption, clipped to [0, 1] (needs --corruption-level)",
            )
        if task == "demix":
            parser.add_argument(
                "--raw",
                action="store_true",
                help="write the generators' outputs G_k(z_k) as they are, not projected onto "
                "parts in [0, 1] that sum to the mixture (docs/inference.md)",
            )
        parser.add_argument(
            "--method",
            choices=DENOISE_METHODS if task == "denoise" else METHODS,
            help=METHOD_HELP[task],
        )
        parser.add_argument(
            "--separator",
            help="the separator network to use (written by 'demixgan separator'; for cs one "
            "trained for the same matrix); default for demix and denoise: the run's own, "
            "RUN/separator",
        )
        parser.set_defaults(run=run_task, task=task)

    separator = commands.add_parser(
        "separator",
        help="train a separator network for a demixing or denoising checkpoint (amortized "
        "inference)",
        description="Train a network that separates the checkpoint's mixtures in one pass: on "
        "the model's own draws, then by remixing the run's training mixtures; no clean parts "
        "(docs/inference.md). Use it with 'demix --separator' and 'evaluate --separator', or "
        "for a denoising-GAN with 'denoise' (--max-level: never told the corruption level). "
        "The output directory is a run: checkpoints and stats.jsonl while it trains, the "
        "separator when done; --resume DIR continues a killed run exactly.",
    )
    separator.add_argument(
        "checkpoint", nargs="?", help="run directory (latest checkpoint) or .safetensors"
    )
    separator.add_argument(
        "-o",
        "--output",
        help="directory of the separator run (new; default RUN/separator, where demix and "
        "evaluate find it)",
    )
    separator.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the separator run in DIR with the checkpoint and options it recorded",
    )
    add_flags(separator, SeparatorOptions)
    _matrix_options(
        separator,
        "m: separate compressive measurements by an m x (C H W) Gaussian matrix (for 'cs "
        "--separator'); a separator of whole mixtures is trained first to split the training "
        "mixtures for the remixing",
    )
    separator.add_argument(
        "--teacher",
        help="with --measurements: split the training mixtures with this separator of whole "
        "mixtures (from 'demixgan separator' without --measurements) instead of training one; "
        "with --peer remixit: the MixIT peer that teaches it (default RUN/peers/mixit)",
    )
    separator.add_argument(
        "--peer",
        choices=PEERS,
        help="train a peer of the run's separator instead, with the same network and options "
        "and without the GAN (default -o RUN/peers/KIND, where evaluate finds it): mixit "
        "(mixture invariant training on pairs of training mixtures), remixit (taught by the "
        "MixIT peer's remixed splits, then by itself), supervised (the clean parts of the "
        "training mixtures: the upper bound)",
    )
    separator.add_argument(
        "--device",
        help="cpu, cuda, cuda:N or auto (default: auto, a GPU when there is one; with --resume: "
        "the run's)",
    )
    separator.add_argument("--no-progress", action="store_true", help="no progress bar")
    separator.set_defaults(run=run_separator)

    evaluate = commands.add_parser(
        "evaluate",
        help="separate held-out test mixtures and print the metrics table",
        description="Separate N held-out test mixtures of a recipe with a demixing checkpoint "
        "and print PSNR / MSE / SSIM per component (mean ± std) next to ICA, the trivial split "
        "y/2 and the mixture itself.",
    )
    evaluate.add_argument("checkpoint", help="run directory (latest checkpoint) or .safetensors")
    evaluate.add_argument("--recipe", help="mixture recipe (default: the checkpoint's)")
    evaluate.add_argument("--level", type=int, help="signal level (default: the checkpoint's)")
    evaluate.add_argument("--n", type=int, default=1000, help="test mixtures (default 1000)")
    evaluate.add_argument(
        "--digit-source", default=None, help="mnist-embedded or mnist (default: mnist if found)"
    )
    evaluate.add_argument("--data-dir", help="directory holding the MNIST IDX files")
    evaluate.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"separation methods to score, comma-separated, from {', '.join(METHOD_NAMES)} "
        f"(default {','.join(DEFAULT_METHODS)}; --separator adds the separator)",
    )
    evaluate.add_argument("--no-ica", action="store_true", help="skip the ICA baseline")
    evaluate.add_argument(
        "--mixtures",
        nargs="+",
        metavar="PATH",
        help="your own mixtures (image files, .npy stacks, folders) instead of a recipe's "
        "(default for a run trained with --mixtures: its held-out validation mixtures)",
    )
    evaluate.add_argument(
        "--truth",
        nargs="+",
        help="with your own mixtures: their parts, a .npy [N, K, C, H, W], to add PSNR / SSIM",
    )
    evaluate.add_argument(
        "--grid", help="with your own mixtures: a PNG of the first 8 mixtures and their parts"
    )
    evaluate.add_argument("--json", help="also write the scores to this JSON file")
    evaluate.add_argument(
        "--separator",
        help="also score this separator network (written by 'demixgan separator' for the "
        "checkpoint; default: the run's own, RUN/separator, where it has one); the run's "
        "peers in RUN/peers/ (demixgan separator --peer) add their rows",
    )
    _fit_options(evaluate)
    add_device_option(evaluate)
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.set_defaults(run=run_evaluate)

    name = commands.add_parser(
        "name",
        help="name a checkpoint's generators once (e.g. generator2=digit)",
        description="Record user names for a checkpoint's generators; outputs and tables use "
        "them from then on. Without NAMES, print the current names.",
    )
    name.add_argument("checkpoint", help="run directory or .safetensors")
    name.add_argument("names", nargs="*", metavar="GENERATOR=NAME")
    name.set_defaults(run=run_name)


def _matrix_options(parser: argparse.ArgumentParser, measurements_help: str) -> None:
    parser.add_argument("--measurements", type=int, help=measurements_help)
    parser.add_argument("--matrix-seed", type=int, default=0, help="seed of the Gaussian matrix A")


def _corruption_level(text: str) -> int | str:
    """A number of items, or 'auto' (the fit chooses each image's)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of items or 'auto', not {text!r}") from None


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"a positive per-pixel squared error, not {text!r}")
    return value


def _fit_options(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, FitOptions, flags={"latent_weight": "--lambda"})


def add_device_option(
    parser: argparse.ArgumentParser, what: str = "the latent fits and separators"
) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help=f"where {what} run: cpu, cuda, cuda:N or auto (default: auto, a GPU when there "
        "is one; a GPU's arithmetic rounds differently, so its numbers differ from the CPU's "
        "in the last digits)",
    )


def _options(args: argparse.Namespace) -> FitOptions:
    return from_flags(FitOptions, args)


def run_task(args: argparse.Namespace) -> int:
    from demixgan.inference.outputs import new_output

    with new_output(args.output):  # held from the first check to the final rename
        return _run_task(args)


def _run_task(args: argparse.Namespace) -> int:
    from demixgan.inference.api import load
    from demixgan.inference.outputs import check_new_output, write_outputs
    from demixgan.inference.tasks import prepare_observations, read_truth, run_inference
    from demixgan.io.progress import progress_bar

    options = _options(args)
    output = check_new_output(args.output)
    trained = load(args.checkpoint, args.device)
    measurements = getattr(args, "measurements", None)
    observations, operator, sources = prepare_observations(
        trained, args.inputs, args.task, measurements, getattr(args, "matrix_seed", 0)
    )
    truth = read_truth(args.truth, args.task, trained, observations.shape[0])
    method, separator_path, why = _task_method(args, trained)
    if method == "refine" and options == FitOptions():
        options = REFINE  # no fit flag given: the short refinement, not the paper's whole fit
    # The plain latent fit reports per iteration; the stroke search of a corruption fit not.
    corruption = getattr(args, "corruption_level", None)
    threshold = _level_threshold(args, trained, options, method)
    shown = method == "fit" and corruption is None and not args.no_progress
    description = f"{args.task} (latent fit)"
    with progress_bar(observations.shape[0], description, unit="input", enabled=shown) as bar:
        estimates = run_inference(
            trained,
            args.task,
            observations,
            operator,
            options,
            consistent=not getattr(args, "raw", False),
            corruption_level=corruption,
            estimate=getattr(args, "estimate", "generator"),
            level_threshold=threshold,
            separator=_load_separator(separator_path, trained.device),
            method=method,
            progress=bar.update,
        )
    print(f"method: {method} ({why})")
    print(write_outputs(output, trained, args.task, estimates, truth, sources))
    return 0


def _level_threshold(args: argparse.Namespace, trained, options, method: str) -> float | None:
    """The threshold of ``--corruption-level auto``: given, or chosen (and said) now."""
    from demixgan.errors import DemixganError
    from demixgan.inference.api import LEVEL_CHOICE_IMAGES
    from demixgan.inference.options import LEVELS

    given = getattr(args, "level_threshold", None)
    if getattr(args, "corruption_level", None) != "auto" or method != "fit":
        if given is not None:
            raise DemixganError(
                "--level-threshold decides how many items the fit keeps per image: it goes "
                "with --corruption-level auto (and the fit method)."
            )
        return None
    if given is not None:
        return given
    if trained.counts_its_corruption:
        print("level: counted per image by the fit itself (no threshold to choose)")
        return None
    threshold, shares = trained.choose_level_threshold(options)
    print(
        f"level threshold: {threshold} (chosen on {LEVEL_CHOICE_IMAGES} validation images per "
        f"level 1..{LEVELS[-2]} of the run's recipe: {shares[threshold]:.0%} of levels right)"
    )
    return threshold


def _task_method(args: argparse.Namespace, trained) -> tuple[str, str | None, str]:
    """The method a task runs, the separator it needs and why it was picked."""
    from demixgan.errors import DemixganError
    from demixgan.inference.choice import default_method, own_separator, separator_dir

    asked, given = getattr(args, "method", None), getattr(args, "separator", None)
    if args.task == "cs" or given is not None:
        method = asked or ("separator" if given is not None else "fit")
        if method != "fit" and given is None:
            raise DemixganError(
                f"--method {method} for cs needs --separator DIR: a separator trained for the "
                "same matrix ('demixgan separator RUN --measurements M')."
            )
        return method, given, "asked" if asked else ("--separator given" if given else "default")
    if args.task == "denoise" and asked is None and args.corruption_level is not None:
        return "fit", None, "--corruption-level given: the latent fit of G and the corruption"
    method, why = (asked, "asked") if asked else default_method(trained)
    folder = own_separator(trained.checkpoint)
    if method != "fit" and folder is None:
        raise DemixganError(
            f"--method {method} needs the run's separator, but "
            f"'{separator_dir(trained.checkpoint)}' holds none: train it with 'demixgan "
            f"separator {args.checkpoint}', or use --method fit."
        )
    return method, None if method == "fit" else str(folder), why


def _load_separator(path: str | os.PathLike | None, device: torch.device) -> Separator | None:
    """The separator in ``path`` (None: none) with its network on ``device``."""
    from demixgan.inference.amortized import load_separator

    if path is None:
        return None
    separator = load_separator(path)[0]
    separator.network.to(device)
    return separator


def run_separator(args: argparse.Namespace) -> int:
    from pathlib import Path

    from demixgan.inference.choice import CHOICE_FILE
    from demixgan.training.separator_runs import read_job, run_job

    job = _separator_job(args) if args.resume is None else read_job(Path(args.resume))
    run_dir = Path(args.resume or args.output)
    finished = run_job(
        job,
        run_dir,
        resume=args.resume is not None,
        progress=not args.no_progress,
        device=args.device,
    )
    if not finished.trained_now:
        print(f"the separator run in {run_dir} is finished: its separator is there")
        return 0
    print(f"trained in {finished.seconds:.0f} s; separator checkpoint: {finished.weights}")
    if finished.choice is not None:
        method = finished.choice["method"]
        print(f"default method of the run: {method} (validation: {CHOICE_FILE})")
    return 0


def _separator_job(args: argparse.Namespace) -> dict:
    """What a new separator run records (training/separator_runs.new_job), from the flags."""
    from pathlib import Path

    from demixgan.errors import DemixganError
    from demixgan.training.separator_runs import new_job

    if args.checkpoint is None:
        raise DemixganError(
            "Give the checkpoint for a new separator run (demixgan separator RUN [-o DIR]), or "
            "--resume DIR to continue one."
        )
    if args.peer is not None and args.measurements is not None:
        raise DemixganError(
            "The peers separate whole mixtures, as the run's own separator does: leave out "
            "--measurements with --peer."
        )
    if args.peer == "remixit" and args.teacher is None:
        args.teacher = _own_dir(args.checkpoint, "mixit")
        if not Path(args.teacher).is_dir():
            raise DemixganError(
                f"The RemixIT peer is taught by the run's MixIT peer, and '{args.teacher}' holds "
                f"none: train it first ('demixgan separator {args.checkpoint} --peer mixit'), "
                "or give one with --teacher DIR."
            )
    if args.output is None and args.measurements is None:
        args.output = str(_own_dir(args.checkpoint, args.peer))
    elif args.output is None:
        raise DemixganError(
            "A separator of compressive measurements is not the run's own (that one separates "
            "whole mixtures): give it -o DIR."
        )
    return new_job(
        args.checkpoint,
        from_flags(SeparatorOptions, args),
        peer=args.peer,
        teacher=args.teacher,
        measurements=args.measurements,
        matrix_seed=args.matrix_seed,
        device=args.device or "auto",
    )


def _own_dir(checkpoint: str, peer: str | None = None):
    """RUN/separator (or RUN/peers/PEER) for a run directory or one of its checkpoints
    (inference/choice.py)."""
    from pathlib import Path

    from demixgan.inference.choice import PEERS_DIR, SEPARATOR_DIR, peer_dir, separator_dir

    path = Path(checkpoint)
    if path.is_dir():
        return path / SEPARATOR_DIR if peer is None else path / PEERS_DIR / peer
    return separator_dir(path) if peer is None else peer_dir(path, peer)


def _methods(args: argparse.Namespace) -> tuple[str, ...]:
    """The rows of ``evaluate``: ``--methods`` (comma-separated), without ICA for --no-ica."""
    names = tuple(name.strip() for name in args.methods.split(",") if name.strip())
    return tuple(name for name in names if name != "ica") if args.no_ica else names


def run_evaluate(args: argparse.Namespace) -> int:
    from demixgan.io.locks import output_lock

    if args.json is None:
        return _run_evaluate(args)
    # A second evaluate into the same file is refused at once.
    with output_lock(args.json, "scores file", file=True):
        return _run_evaluate(args)


def _run_evaluate(args: argparse.Namespace) -> int:
    from demixgan.errors import DemixganError
    from demixgan.inference.api import load
    from demixgan.inference.choice import own_peers, own_separator
    from demixgan.inference.tasks import evaluate_checkpoint
    from demixgan.io.progress import progress_bar
    from demixgan.reports.experiment import run_record

    options = _options(args)
    record = run_record(args.command_line)
    trained = load(args.checkpoint, args.device)
    separator = _load_separator(args.separator or own_separator(trained.checkpoint), trained.device)
    if args.mixtures or (trained.config.data.mixtures and args.recipe is None):
        return _evaluate_observed(args, options, trained, separator)
    if args.truth or args.grid:
        raise DemixganError(
            "--truth and --grid go with your own mixtures (--mixtures, or a run trained on "
            "them); a recipe's test mixtures carry their parts already."
        )
    methods = _methods(args)
    fitting = "fit" in methods and not args.no_progress
    with progress_bar(args.n, "evaluate (latent fit)", unit="mixture", enabled=fitting) as bar:
        result, _ = evaluate_checkpoint(
            trained,
            options,
            n=args.n,
            recipe=args.recipe,
            level=args.level,
            digit_source=args.digit_source,
            data_dir=args.data_dir,
            methods=methods,
            separator=separator,
            peers={
                k: _load_separator(d, trained.device)
                for k, d in own_peers(trained.checkpoint).items()
            },
            progress=bar.update,
        )
    print(result.table)
    if args.json:
        import json

        from demixgan.io.atomic import atomic_path

        record |= json.loads(result.to_json())
        with atomic_path(args.json) as tmp:
            tmp.write_text(
                json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
    return 0


def _evaluate_observed(args: argparse.Namespace, options, trained, separator) -> int:
    """``evaluate`` of a user's own mixtures: residuals, scores with --truth, a grid."""
    from demixgan.inference.tasks import evaluate_observed
    from demixgan.io.atomic import atomic_path
    from demixgan.reports.grids import save_panels

    result, mixtures, estimates = evaluate_observed(
        trained,
        options,
        inputs=args.mixtures,
        truth=args.truth,
        methods=_methods(args),
        separator=separator,
    )
    print(result.table)
    if args.grid:
        shown = min(8, mixtures.shape[0])
        panels = [("mixtures", mixtures[:shown])]
        method, parts = next(iter(estimates.items()))
        panels += [
            (f"{method}: {name}", parts[:shown, k])
            for k, name in enumerate(trained.component_names)
        ]
        save_panels(panels, args.grid, ncol=1, title=f"{shown} of {result.n}: {result.mixtures}")
        print(f"grid: {args.grid}")
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(result.to_json(), encoding="utf-8")
    return 0


def run_name(args: argparse.Namespace) -> int:
    import json

    from demixgan.errors import DemixganError
    from demixgan.inference.api import TrainedModel, check_names, names_path, read_names
    from demixgan.inference.loading import load_model, resolve_checkpoint
    from demixgan.io.atomic import atomic_path

    checkpoint = resolve_checkpoint(args.checkpoint)
    model, config = load_model(checkpoint)
    try:
        current, damaged = read_names(checkpoint, model.learned), None
    except DemixganError as error:  # a damaged names file: naming them again replaces it
        if not args.names:
            raise
        current, damaged = {}, error
    trained = TrainedModel(model, config, checkpoint, current)
    learned = trained.model.learned
    if not args.names:
        for generator, shown in zip(learned, trained.component_names, strict=True):
            print(f"{generator} = {shown}")
        return 0
    pairs = {}
    for item in args.names:
        generator, sep, value = item.partition("=")
        if not sep:
            raise DemixganError(f"'{item}' is not GENERATOR=NAME (e.g. {learned[0]}=digit).")
        pairs[generator.strip()] = value.strip()
    names = check_names(learned, {**trained.names, **pairs})
    path = names_path(trained.checkpoint)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(names, indent=2) + "\n", encoding="utf-8")
    print(f"named {', '.join(f'{k} = {v}' for k, v in names.items())} in {path}")
    if damaged is not None:
        print(
            f"replaced the damaged {path} (it could not be read as generator names), so only "
            "the names given now are recorded"
        )
    return 0
