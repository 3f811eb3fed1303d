"""Issue 20's targets, per recipe, and the table that checks a separator against them.

A separation counts only by its margin over what needs no model (the floors: the split, the
pixel-value rule fitted with the truth, ICA, the mixture itself), over the MixIT peer with the
same network and budget, and by how close it comes to the same network trained on the clean
parts (the supervised bound). Some recipes also have a PSNR every part must reach. One table
serves a report's settings and ``demixgan evaluate`` / ``demo`` files alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from demixgan.experiments.compressive import TUNED_LASSO
from demixgan.experiments.context import MEAN_DIGIT
from demixgan.experiments.demo import asset
from demixgan.experiments.denoising import ESTIMATED, GIVEN_ESTIMATE, SEPARATED
from demixgan.inference.choice import CHOICE_MIXTURES, CHOICE_SEED
from demixgan.inference.methods import (
    ICA_SHARES_ROW,
    MIXIT_ORACLE_ROW,
    PEER_ROWS,
    PIXEL_RULE_ROW,
    SEPARATOR_ROW,
    Split,
)
from demixgan.reports.experiment import ResultTable
from demixgan.spec.config import load_config

#: The floor methods a setting with peers scores beside them (inference/methods.py).
FLOORS = ("pixel-rule", "ica", "mixture", "split")
#: Rows that are floors (no learning, or fitted with the truth of validation mixtures), beside
#: the split y/K of the setting's K parts.
FLOOR_ROWS = (PIXEL_RULE_ROW, "ICA", ICA_SHARES_ROW, "input (mixture)")
#: dB above MixIT and at most below the bound, on every setting.
OVER_MIXIT, BOUND_GAP = 3.0, 4.0


@dataclass(frozen=True)
class Target:
    """What a recipe's separation must reach beside the common margins: dB over the best
    floor, and the PSNR every part must reach (None: no such target)."""

    least: float | None = None
    over_floor: float = 3.0


#: The issue's targets by recipe; any other recipe: the margins alone.
TARGETS = {
    "digit+ink": Target(20.0),
    "digit+ink-lines": Target(20.0),
    "digit+ink-ood": Target(17.0),  # test strokes of another renderer than the training's
    "digit1+digit2": Target(21.0),
    "digit+digit": Target(20.0),
    "dress+bag": Target(18.0),
    "digit8+dress": Target(over_floor=5.0),
}
#: Denoising: the classifier's accuracy on the denoised digits at this corruption level, the
#: denoiser never told the level (its separator, the default method of ``demixgan denoise``).
DENOISE_LEVEL, DENOISE_ACCURACY = 5, 0.97
#: cs: how many times lower the separator's error than the better of tuned LASSO and the mean
#: training digit (the floor that reads no measurement).
CS_RATIO = 3.0


def target_tables(metrics: Mapping[str, object]) -> list[ResultTable]:
    """What a survey report (its metrics by setting) shows a reviewer first: the margins of
    its peered settings and, where it trains several architectures on one data, which one
    validation chose."""
    return [margin_table(metrics), *architecture_table(metrics)]


def margin_table(metrics: Mapping[str, object]) -> ResultTable:
    """The margins of a report's settings scored with peers and bound (its metrics by setting)."""
    return margins(peered_settings(metrics))


def peered_settings(
    metrics: Mapping[str, object], *, chosen_only: bool = False
) -> list[tuple[str, Mapping, str]]:
    """(label, scores by method, recipe) of a report's settings scored with peers and bound;
    ``chosen_only`` leaves out an architecture that validation did not choose (a glance
    across reports shows each report's choice)."""
    beaten = set()
    for group in _architectures(metrics) if chosen_only else []:
        best = _chosen(metrics, group)
        beaten |= {label for label in group if label != best}
    return [
        (label, entry["scores"], _recipe(entry))
        for label, entry in metrics.items()
        if isinstance(entry, Mapping)
        and PEER_ROWS["supervised"] in entry.get("scores", {})
        and label not in beaten
    ]


def architecture_table(metrics: Mapping[str, object]) -> list[ResultTable]:
    """Where a report trains several architectures on the same data, the one validation
    chooses (``_chosen``); none or one table."""
    rows = []
    for labels in _architectures(metrics):
        best = _chosen(metrics, labels)
        for label in labels:
            psnr = metrics[label]["validation_psnr"]["separator"]
            peered = "yes" if PEER_ROWS["supervised"] in metrics[label]["scores"] else "no"
            chosen = "chosen" if label == best else ""
            rows.append([_recipe(metrics[label]), label, f"{psnr:.2f}", peered, chosen])
    if not rows:
        return []
    note = (
        "Each architecture's separator (same network and budget) on the validation mixtures "
        f"that chose its run's default method (inference/choice.py: {CHOICE_MIXTURES} "
        f"mixtures of the recipe's validation split, seed {CHOICE_SEED}, or the profile's "
        "number of test mixtures where smaller); the test mixtures played no part. The "
        "margins are the peered setting's."
    )
    header = ["recipe", "setting", "validation PSNR (dB)", "peers and bound", "chosen"]
    return [ResultTable("architecture", "Architecture chosen on validation", header, rows, note)]


def _architectures(metrics: Mapping[str, object]) -> list[list[str]]:
    """The labels of the settings a report trains on the same data (their configs' data
    tables equal) with a validation score each, in groups of two or more."""
    candidates: dict[str, list[str]] = {}
    for label, entry in metrics.items():
        if isinstance(entry, Mapping) and "validation_psnr" in entry:
            data = asdict(load_config(asset(f"experiments/{entry['config']}.toml")).data)
            candidates.setdefault(json.dumps(data, sort_keys=True), []).append(label)
    return [labels for labels in candidates.values() if len(labels) > 1]


def _chosen(metrics: Mapping[str, object], labels: list[str]) -> str:
    """The architecture validation chooses: the higher mean PSNR over the parts of its
    separator on validation mixtures (inference/choice.py, recorded when the separator was
    trained, read into each setting's ``validation_psnr``)."""
    return max(labels, key=lambda label: metrics[label]["validation_psnr"]["separator"])


def _recipe(entry: Mapping) -> str:
    """A setting's test recipe (reports before it was recorded: its config's)."""
    if "recipe" in entry:
        return entry["recipe"]
    return load_config(asset(f"experiments/{entry['config']}.toml")).data.recipe


def margins(evaluations: Iterable[tuple[str, Mapping[str, Mapping], str]]) -> ResultTable:
    """The margins table of evaluations given as (label, scores by method, recipe)."""
    rows = []
    for label, scores, recipe in evaluations:
        goal = TARGETS.get(recipe, Target())
        floors = (*FLOOR_ROWS, Split(len(scores[SEPARATOR_ROW])).name)
        for part in scores[SEPARATOR_ROW]:
            psnr = {method: row[part]["psnr"][0] for method, row in scores.items()}
            ours = psnr[SEPARATOR_ROW]
            floor = max((m for m in floors if m in psnr), key=psnr.get)
            mixit = max(psnr[PEER_ROWS["mixit"]], psnr[MIXIT_ORACLE_ROW])
            bound = psnr[PEER_ROWS["supervised"]]
            checks = {
                f"{goal.over_floor:.0f} dB over the floor": ours - psnr[floor] >= goal.over_floor,
                f"{OVER_MIXIT:.0f} dB over MixIT": ours - mixit >= OVER_MIXIT,
                f"within {BOUND_GAP:.0f} dB of the bound": bound - ours <= BOUND_GAP,
            }
            if goal.least is not None:
                checks = {f"at least {goal.least:.0f} dB": ours >= goal.least, **checks}
            missed = [name for name, held in checks.items() if not held]
            rows.append(
                [
                    label,
                    part,
                    f"{ours:.2f}",
                    f"{psnr[floor]:.2f} ({floor})",
                    f"{ours - psnr[floor]:+.2f}",
                    f"{mixit:.2f}",
                    f"{ours - mixit:+.2f}",
                    _cell(psnr.get(PEER_ROWS["remixit"])),  # not a target: may be untrained
                    f"{bound:.2f}",
                    f"{bound - ours:.2f}",
                    "missed: " + ", ".join(missed) if missed else "met",
                ]
            )
    return ResultTable(
        "margins",
        "Against the targets: the best floor, MixIT and the supervised bound (PSNR, dB)",
        [
            "setting",
            "part",
            "ours",
            "best floor",
            "over it",
            "MixIT (best grouping)",
            "over it",
            "RemixIT",
            "bound",
            "below it",
            "targets",
        ],
        rows,
        f"Targets: {Target().over_floor:.0f} dB above the best floor (5 for digit 8 + dress) and "
        f"{OVER_MIXIT:.0f} above MixIT (the better of its grouping without truth and its oracle "
        f"grouping), at most {BOUND_GAP:.0f} dB "
        "below the bound, and where a recipe has one a PSNR every part reaches: "
        + ", ".join(f"{r} {t.least:.0f} dB" for r, t in TARGETS.items() if t.least is not None)
        + ".",
    )


def _cell(value: float | None) -> str:
    return "not trained" if value is None else f"{value:.2f}"


def report_targets(reports: Iterable[Mapping[str, object]]) -> ResultTable:
    """The targets that are not a separation's margins, checked in the reports that score
    them: denoising (denoise-test's metrics) and compressive sensing (cs's)."""
    rows = []
    for metrics in reports:
        if "clean_accuracy" in metrics:
            rows += _denoising_rows(metrics)
        elif "lasso_alphas" in metrics:
            rows.append(_cs_row(metrics["separator"]))
    return ResultTable(
        "report-targets",
        "Against the denoising and compressive-sensing targets",
        ["target", "ours", "floors", "other methods", "reference", "targets"],
        rows,
        "Ours: the denoiser's separator network, never told the corruption level, and the "
        "separator network of the demixing prior at the measurements. Reference: what the "
        "classifier reads on the clean test digits (a denoiser may exceed it).",
    )


def _denoising_rows(metrics: Mapping) -> list[list[str]]:
    rows = []
    for family, curves in metrics.items():
        if not isinstance(curves, Mapping) or "levels" not in curves:
            continue
        at = curves["levels"].index(DENOISE_LEVEL)
        accuracy = {
            key.removeprefix("accuracy, "): v[at]
            for key, v in curves.items()
            if key.startswith("accuracy, ")
        }
        ours = accuracy[SEPARATED]
        rows.append(
            [
                f"denoising {family}, level {DENOISE_LEVEL}, level never given: classifier "
                f"accuracy at least {DENOISE_ACCURACY:.0%}",
                f"{ours:.1%}",
                f"corrupted input {accuracy['input']:.1%}",
                f"latent fit, level estimated {accuracy[ESTIMATED]:.1%}; level given "
                f"{accuracy[GIVEN_ESTIMATE]:.1%}",
                f"clean digits {metrics['clean_accuracy']:.1%}",
                "met" if ours >= DENOISE_ACCURACY else "missed",
            ]
        )
    return rows


def _cs_row(scores: Mapping) -> list[str]:
    floor = min(scores["LASSO"], scores["mean digit"])
    ratio = floor / scores["error"]
    return [
        f"cs, m = {scores['m']}, {scores['waves']} waves: error at least {CS_RATIO:.0f}x lower "
        "than the better floor",
        f"{scores['error']:.4f} ({ratio:.2f}x lower)",
        f"{MEAN_DIGIT} {scores['mean digit']:.4f}, {TUNED_LASSO} {scores['LASSO']:.4f}",
        f"latent fit of the same prior {scores['fit']:.4f}",
        "–",
        "met" if ratio >= CS_RATIO else "missed",
    ]
