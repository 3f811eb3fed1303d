"""Which way a run separates by default, chosen on validation mixtures, never on test ones.

A run with a separator can separate three ways (``--method``): the latent fit alone (the
paper's), the separator alone (one pass), or the separator's parts refined by a short fit.
Where the run's mixtures come from a built-in recipe, mixtures of its validation split (images
carved from the training files and never trained on, with their truth) score the separator and
the refinement, and the better one becomes the default; the latent fit from the prior is left
out of the choice (minutes per mixture where the others take milliseconds, and beaten in every
report). A user's own mixtures have no truth, so nothing can be chosen: the separator is the
default there and the record says why.

A separator's directory is ``separator/`` beside the run's checkpoints (``demixgan separator``
writes it there by default), or beside an exported checkpoint such as the shipped one. The
peers it is scored against live beside it in ``peers/<kind>/`` (``demixgan separator
--peer KIND``), and ``evaluate`` adds a row for each one it finds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from demixgan.inference.options import FitOptions
from demixgan.io.atomic import atomic_path

if TYPE_CHECKING:  # the CLI reads METHODS and REFINE at start-up, before torch is needed
    import torch

    from demixgan.inference.amortized import Separator
    from demixgan.inference.api import TrainedModel

#: The ways to separate, and what a run without a separator can do.
METHODS = ("fit", "separator", "refine")
#: The record of the choice, inside the separator's directory.
CHOICE_FILE = "method.json"
SEPARATOR_DIR = "separator"
PEERS_DIR = "peers"
#: The separators a run's own is scored against, with the same network and budget, in table
#: order: MixIT (unsupervised, no GAN), RemixIT taught by MixIT (no GAN), and the network
#: trained on the clean parts of the training mixtures (the supervised upper bound).
PEERS = ("mixit", "remixit", "supervised")
#: The peers taught by another of the same model: RemixIT splits the training mixtures with
#: MixIT's separator (no GAN anywhere).
TEACHERS = {"remixit": "mixit"}
#: Validation mixtures that score the candidates.
CHOICE_MIXTURES = 500
CHOICE_SEED = 4_000_037
#: How a record's scores match the parts to the truth where the parts have an order (one
#: order over the whole set); exchangeable parts are matched per mixture (evaluation's
#: ``PER_MIXTURE``). A record without it predates the matching and is chosen anew.
ONE_ORDER = "one order over the set"
#: The refinement the choice scores, and the one ``--method refine`` runs by default.
REFINE = FitOptions(iterations=25, restarts=1, lr=0.02, seed=0, chunk=1024)


@dataclass(frozen=True)
class ChoiceBudget:
    """What choosing a run's method spends: the validation mixtures scored and the refinement
    tried on them. A smoke profile's is tiny; every other run's is the default."""

    mixtures: int = CHOICE_MIXTURES
    refine: FitOptions = field(default_factory=lambda: REFINE)


def separator_dir(checkpoint: str | Path) -> Path:
    """Where a checkpoint's separator lives: ``RUN/separator`` for ``RUN/checkpoints/step-*``,
    else ``separator/`` beside the checkpoint file (an exported or shipped model)."""
    folder = Path(checkpoint).parent
    return (folder.parent if folder.name == "checkpoints" else folder) / SEPARATOR_DIR


def choose(
    trained: TrainedModel, separator: Separator, budget: ChoiceBudget = ChoiceBudget()
) -> dict:
    """The default method of a run with ``separator``, and the validation scores behind it
    (on ``budget.mixtures`` validation mixtures: fewer only for a smoke test's budget)."""
    mixtures, refine = budget.mixtures, budget.refine
    data = trained.config.data
    if data.mixtures is not None or data.recipe is None:
        return {
            "method": "separator",
            "why": "the run's mixtures are the user's own, with no truth to choose on",
        }
    observed, truth = validation_mixtures(trained, mixtures)
    scores = {"separator": mean_psnr(trained, trained.separate(observed, separator), truth)}
    if trained.model.known:  # a denoiser: the refinement would fit G alone to the corruption
        return {
            "method": "separator",
            "why": "a denoising-GAN's separator, scored on the learned part of "
            f"{mixtures} mixtures of the validation split (seed {CHOICE_SEED}); a refinement "
            "fits the learned part alone and cannot explain the corruption, so it is no "
            "candidate",
            "validation_psnr": {name: round(value, 4) for name, value in scores.items()},
            "matching": matching(trained),
        }
    scores["refine"] = mean_psnr(trained, trained.refine(observed, separator, refine), truth)
    best = max(scores, key=scores.get)
    return {
        "method": best,
        "why": f"higher mean PSNR over the parts of {mixtures} mixtures of the "
        f"validation split (seed {CHOICE_SEED})",
        "validation_psnr": {name: round(value, 4) for name, value in scores.items()},
        "matching": matching(trained),
        "refine_options": asdict(refine),
    }


#: Why a record is chosen anew (``is_current``).
STALE = "its record was written before validation matched the parts to the truth as reports do"


def is_current(choice: dict) -> bool:
    """Whether a choice record scored its parts matched as the reports match them; records
    written before took them in a fixed order, which for two objects of any class scored
    half the mixtures against the other object (fashion + fashion: 15.50 dB for 20.99)."""
    return "validation_psnr" not in choice or "matching" in choice


def write_choice(directory: Path, choice: dict) -> Path:
    with atomic_path(directory / CHOICE_FILE) as tmp:
        tmp.write_text(json.dumps(choice, indent=2) + "\n", encoding="utf-8")
    return directory / CHOICE_FILE


def peer_dir(checkpoint: str | Path, kind: str) -> Path:
    """Where a checkpoint's ``kind`` peer lives: ``peers/<kind>`` beside its separator."""
    return separator_dir(checkpoint).parent / PEERS_DIR / kind


def own_separator(checkpoint: str | Path) -> Path | None:
    """The directory of a checkpoint's finished separator, or None (none, or still training)."""
    return _finished(separator_dir(checkpoint))


def own_peers(checkpoint: str | Path) -> dict[str, Path]:
    """The finished peers of a checkpoint, by kind, in ``PEERS`` order."""
    found = {kind: _finished(peer_dir(checkpoint, kind)) for kind in PEERS}
    return {kind: folder for kind, folder in found.items() if folder is not None}


def _finished(folder: Path) -> Path | None:
    from demixgan.io.checkpoints import latest_checkpoint

    if folder.is_dir() and latest_checkpoint(folder, verify=False) is not None:
        return folder
    return None


def default_method(trained: TrainedModel) -> tuple[str, str]:
    """The method a run separates with when ``--method`` is not given, and why; a record from
    before the parts were matched to the truth is chosen anew first (and stored)."""
    folder = own_separator(trained.checkpoint)
    if folder is None:
        return "fit", "the run has no separator"
    try:
        record = json.loads((folder / CHOICE_FILE).read_text(encoding="utf-8"))
        method = record.get("method")
    except (OSError, ValueError, AttributeError):
        return "separator", "the run's separator, which has no readable validation record"
    why = "the run's default"
    if not is_current(record):
        method = rechosen(trained, folder)["method"]
        why += f", chosen anew on {CHOICE_MIXTURES} validation mixtures ({STALE})"
    return (method, why) if method in METHODS else ("separator", why)


def rechosen(trained: TrainedModel, folder: Path, budget: ChoiceBudget | None = None) -> dict:
    """The choice of the separator in ``folder`` made again, stored there unless the folder is
    inside the installed package (a shipped model's record, current since it shipped)."""
    from demixgan.inference.amortized import load_separator

    record = choose(trained, load_separator(folder)[0], budget or ChoiceBudget())
    if not folder.resolve().is_relative_to(Path(__file__).resolve().parents[1]):
        write_choice(folder, record)
    return record


def validation_mixtures(
    trained: TrainedModel, mixtures: int = CHOICE_MIXTURES
) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation mixtures that choose for a recipe's run, and their learned parts
    [N, K, C, H, W] (a known corruption is no part to score)."""
    from demixgan.data.superposition import make_mixtures
    from demixgan.spec.factory import run_sampler

    batch = make_mixtures(run_sampler(trained.config, "validation"), mixtures, CHOICE_SEED)
    names = trained.model.names
    return batch.mixtures, batch.components[:, [names.index(n) for n in trained.model.learned]]


def matching(trained: TrainedModel) -> str:
    """How validation scores match a run's parts to the truth: ``aligned``'s rule."""
    from demixgan.evaluation.separation import PER_MIXTURE

    return PER_MIXTURE if trained.exchangeable_data else ONE_ORDER


def per_mixture_psnr(
    trained: TrainedModel, parts: torch.Tensor, truth: torch.Tensor
) -> torch.Tensor:
    """[N, K] PSNR of each mixture's parts, matched to the truth as the reports match them
    (``evaluation.metrics.aligned``): two objects of any class come in no order, so a fixed
    order would score half of them against the other object. Kept per mixture for paired
    comparisons between candidates."""
    import torch

    from demixgan.evaluation.metrics import aligned, psnr

    matched = aligned(parts, truth, per_mixture=trained.exchangeable_data)
    return torch.stack([psnr(matched[:, k], truth[:, k]) for k in range(truth.shape[1])], 1)


def part_psnr(trained: TrainedModel, parts: torch.Tensor, truth: torch.Tensor) -> list[float]:
    """Each learned part's mean PSNR on validation mixtures (``per_mixture_psnr``)."""
    values = per_mixture_psnr(trained, parts, truth)
    # A contiguous column sums in the order each part's own tensor did: same bits as before.
    return [column.contiguous().mean().item() for column in values.unbind(1)]


def mean_psnr(trained: TrainedModel, parts: torch.Tensor, truth: torch.Tensor) -> float:
    values = part_psnr(trained, parts, truth)
    return sum(values) / len(values)
