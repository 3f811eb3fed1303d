"""Digit + ink-like strokes: the benchmark no pixel-value rule solves, with its peers and bound.

The paper's binary digit + stroke settings are separated by a one-line rule on pixel values
(the strokes never reach 1 where the digits are exactly 1). Here the strokes reach 1, vary in
width and gain, and the sums are clipped to [0, 1] as an image is; the digits are binary (the
demo's model) or greyscale, the strokes curves or ruled lines, and an out-of-distribution row
draws the test strokes with another renderer (``brush``) than the one the model trained on.
Every setting is scored by its separator beside the floors (the split, the pixel-value rule
fitted with the truth, ICA), the peers with the same network and budget (MixIT, RemixIT
without a GAN) and the supervised bound; the paper's own architecture (two DCGANs) stands as a
row of its own on the same test mixtures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from demixgan.data.descriptions import get_recipe
from demixgan.experiments.context import Context
from demixgan.experiments.demixing import (
    SPLIT_ROW,
    Setting,
    separation_survey,
    stored_separators,
)
from demixgan.experiments.registry import register
from demixgan.inference.methods import (
    ICA_SHARES_ROW,
    MIXIT_ORACLE_ROW,
    PEER_ROWS,
    PIXEL_RULE_ROW,
    SEPARATOR_ROW,
)
from demixgan.reports.experiment import Outcome, ResultTable

FLOORS = ("pixel-rule", "ica", "mixture", "split")
INK_SETTINGS = (
    Setting(
        "digit+ink", "demix-digit-ink", peers=True, methods=("fit", *FLOORS), budget="ink_separator"
    ),
    Setting(
        "digit+ink, brush strokes (out of distribution)",
        "demix-digit-ink",
        peers=True,
        recipe="digit+ink-ood",
        methods=FLOORS,
        budget="ink_separator",
    ),
    Setting(
        "digit+ink-lines",
        "demix-digit-ink-lines",
        peers=True,
        methods=FLOORS,
        budget="ink_separator",
    ),
    Setting(
        "digit+ink, greyscale digits",
        "demix-digit-ink-grey",
        peers=True,
        methods=FLOORS,
        budget="ink_separator",
    ),
    Setting(
        "digit+ink, the paper's two DCGANs",
        "demix-digit-ink-dcgan",
        amortized=True,
        methods=("fit", "split"),
        budget="ink_separator",
    ),
)
#: Rows that are floors (no learning, or fitted with the truth of validation mixtures).
FLOOR_ROWS = (PIXEL_RULE_ROW, "ICA", ICA_SHARES_ROW, "input (mixture)", SPLIT_ROW)
#: The issue's targets: dB above the best floor and MixIT, dB at most below the bound, and the
#: least PSNR of every part in distribution and out of it.
MARGIN, BOUND_GAP, LEAST, LEAST_OOD = 3.0, 4.0, 20.0, 17.0


@register(
    "demix-ink",
    configs=sorted({setting.config for setting in INK_SETTINGS}),
    separators=stored_separators(INK_SETTINGS),
)
def demix_ink(context: Context) -> Outcome:
    survey = separation_survey(context, INK_SETTINGS, context.profile.survey_fit, {})
    table = survey.table(
        "separation",
        "Digit + ink: every method on the same held-out test mixtures",
        "The pixel-value rule is fitted with the truth of validation mixtures; the peers and "
        "the bound have the separator's network and steps. The out-of-distribution row scores "
        "the digit + ink model on strokes of another renderer.",
    )
    summary = (
        "Digits under ink-like strokes that reach 1, clipped sums: no pixel-value rule "
        "separates them. Our separator (trained on the demixing-GAN's draws, then by "
        "remixing the training mixtures; no clean part) beside the floors, MixIT and RemixIT "
        "with the same network and budget, and the same network trained on the clean parts "
        "(the upper bound)."
    )
    margins = margin_table(survey.metrics, INK_SETTINGS)
    return Outcome(summary, [margins, table], survey.figures, survey.metrics)


def margin_table(metrics: dict, settings: tuple[Setting, ...]) -> ResultTable:
    """Per setting with peers: ours against the best floor, MixIT and the bound (dB, each part)."""
    return margins(
        (
            setting.label,
            metrics[setting.label]["scores"],
            setting.recipe is not None and get_recipe(setting.recipe).out_of_distribution,
        )
        for setting in settings
        if setting.peers and setting.label in metrics  # a report of fewer settings: its own
    )


def _cell(value: float | None) -> str:
    return "not trained" if value is None else f"{value:.2f}"


def margins(evaluations: Iterable[tuple[str, Mapping[str, Mapping], bool]]) -> ResultTable:
    """The margins table of evaluations given as (label, scores by method, out of
    distribution): a report's settings, or ``demixgan evaluate`` / ``demo`` files."""
    rows = []
    for label, scores, out_of_distribution in evaluations:
        for part in scores[SEPARATOR_ROW]:
            psnr = {method: row[part]["psnr"][0] for method, row in scores.items()}
            ours = psnr[SEPARATOR_ROW]
            floor = max((m for m in FLOOR_ROWS if m in psnr), key=psnr.get)
            mixit = max(psnr[PEER_ROWS["mixit"]], psnr[MIXIT_ORACLE_ROW])
            bound = psnr[PEER_ROWS["supervised"]]
            least = LEAST_OOD if out_of_distribution else LEAST
            checks = {
                f"at least {least:.0f} dB": ours >= least,
                f"{MARGIN:.0f} dB over the floor": ours - psnr[floor] >= MARGIN,
                f"{MARGIN:.0f} dB over MixIT": ours - mixit >= MARGIN,
                f"within {BOUND_GAP:.0f} dB of the bound": bound - ours <= BOUND_GAP,
            }
            missed = [target for target, held in checks.items() if not held]
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
        f"Targets: at least {LEAST:.0f} dB per part ({LEAST_OOD:.0f} out of distribution), "
        f"{MARGIN:.0f} dB above the best floor and above MixIT (the better of its grouping "
        f"without truth and its oracle grouping), and at most {BOUND_GAP:.0f} dB below the "
        "bound.",
    )
