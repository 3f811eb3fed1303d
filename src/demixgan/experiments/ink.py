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

from demixgan.experiments.context import Context
from demixgan.experiments.demixing import (
    PAPERS_ARCHITECTURE,
    PEERED,
    Setting,
    separation_survey,
    stored_separators,
)
from demixgan.experiments.margins import FLOORS, target_tables
from demixgan.experiments.registry import register
from demixgan.reports.experiment import Outcome

INK_SETTINGS = (
    Setting("digit+ink", "demix-digit-ink", **PEERED),
    Setting(
        "digit+ink, brush strokes (out of distribution)",
        "demix-digit-ink",
        peers=True,
        recipe="digit+ink-ood",
        methods=FLOORS,
    ),
    Setting(
        "digit+ink-lines",
        "demix-digit-ink-lines",
        peers=True,
        methods=FLOORS,
    ),
    Setting(
        "digit+ink, greyscale digits",
        "demix-digit-ink-grey",
        peers=True,
        methods=FLOORS,
    ),
    Setting("digit+ink, the paper's two DCGANs", "demix-digit-ink-dcgan", **PAPERS_ARCHITECTURE),
)


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
    tables = [*target_tables(survey.metrics), table]
    return Outcome(summary, tables, survey.figures, survey.metrics)
