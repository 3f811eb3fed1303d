"""`demixgan train-classifier`: the MNIST classifier that scores denoised digits semantically."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type hints only: torch loads when the command runs, not for --help
    from demixgan.data.sources import ImageSet
    from demixgan.networks.classifier import MnistClassifier

DATA_SOURCES = ("mnist-embedded", "mnist")
DEFAULT_EPOCHS = {"mnist-embedded": 30, "mnist": 3}  # about the same number of steps


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train-classifier",
        help="train the MNIST classifier used to evaluate denoised digits",
        description=(
            "Train the paper's MNIST CNN (with random affine distortions, on grayscale and "
            "binarized digits), print its accuracy on held-out digits and write it as a "
            "checkpoint (safetensors + JSON sidecar) into the output directory."
        ),
    )
    parser.add_argument(
        "--data",
        choices=DATA_SOURCES,
        default="mnist-embedded",
        help="training digits: the 3,670 embedded ones (default, no download) or MNIST's 55,000",
    )
    parser.add_argument(
        "--data-dir",
        help=(
            "directory holding MNIST IDX files (searched first); with mnist-embedded, an MNIST "
            "test set found there or in the cache is a second held-out set (never downloaded)"
        ),
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="passes over the training digits (default 30 with mnist-embedded, 3 with mnist)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="directory to write the checkpoint to"
    )
    parser.set_defaults(run=run_train_classifier)


def run_train_classifier(args: argparse.Namespace) -> int:
    from demixgan.data.sources import load_images
    from demixgan.errors import DemixganError
    from demixgan.evaluation.classification import check_output_dir
    from demixgan.inference.options import MAX_SEED
    from demixgan.io.locks import output_lock

    epochs = DEFAULT_EPOCHS[args.data] if args.epochs is None else args.epochs
    if not 1 <= epochs <= 1000:
        raise DemixganError(f"--epochs must be between 1 and 1000, got {epochs}.")
    if not 0 <= args.seed <= MAX_SEED:
        raise DemixganError(f"--seed must be from 0 to {MAX_SEED}, got {args.seed}.")
    train_set = load_images(args.data, "train", data_dir=args.data_dir)
    held_out = _held_out_sets(args.data, args.data_dir)
    check_output_dir(args.output)  # before minutes of training
    with output_lock(args.output, "classifier output directory"):  # until the classifier is saved
        return _train_and_save(args, epochs, train_set, held_out)


def _train_and_save(
    args: argparse.Namespace, epochs: int, train_set: ImageSet, held_out: dict[str, ImageSet]
) -> int:
    import sys
    import time

    from demixgan.evaluation.classification import save_classifier
    from demixgan.training.classifier import train_classifier

    def report(epoch: int, loss: float) -> None:
        print(f"epoch {epoch}/{epochs}  loss {loss:.4f}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    model = train_classifier(
        train_set.images, train_set.labels, epochs=epochs, seed=args.seed, on_epoch=report
    )
    seconds = time.perf_counter() - start
    scores = {name: _scores(model, test) for name, test in held_out.items()}
    for name, score in scores.items():
        print(
            f"held-out accuracy, {name} ({score['digits']:,} digits): "
            f"{score['grayscale']:.2%} grayscale, {score['binarized']:.2%} binarized"
        )
    metadata = {
        "training": {
            "data": args.data,
            "digits": len(train_set),
            "epochs": epochs,
            "seed": args.seed,
            "seconds": round(seconds, 1),
        },
        "held_out_accuracy": scores,
    }
    checkpoint = save_classifier(model, args.output, metadata)
    print(f"trained in {seconds:.0f} s; classifier checkpoint: {checkpoint.weights_path}")
    return 0


def _held_out_sets(data: str, data_dir: str | None) -> dict[str, ImageSet]:
    """{name: ImageSet} of the digits training never sees."""
    import sys

    from demixgan.data.sources import load_images
    from demixgan.errors import DemixganError

    if data == "mnist":
        return {"mnist test": load_images("mnist", "test", data_dir=data_dir)}
    sets = {"mnist-embedded test": load_images("mnist-embedded", "test")}
    try:  # MNIST's test set is disjoint from the embedded (MNIST training) digits
        sets["mnist test"] = load_images("mnist", "test", data_dir=data_dir, download=False)
    except DemixganError:
        print(
            "note: no MNIST test set found locally (give --data-dir); only the embedded "
            "held-out digits are evaluated",
            file=sys.stderr,
        )
    return sets


def _scores(model: MnistClassifier, test: ImageSet) -> dict[str, float]:
    from demixgan.evaluation.classification import accuracy

    return {
        "digits": len(test),
        "grayscale": round(accuracy(model, test.images, test.labels), 4),
        "binarized": round(accuracy(model, (test.images >= 0.5).float(), test.labels), 4),
    }
