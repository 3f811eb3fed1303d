"""Demixing Fashion-MNIST objects, and MNIST digits from Fashion-MNIST dresses (Fig. 8-12).

The same demixing-GAN, now on grey-level objects: two objects of any class (Fig. 8; two
generators, or one drawn twice since the parts are exchangeable), a dress and a bag (Fig. 9,
10, Table 2), and a binary MNIST 8 over a grey dress with two generator architectures (Fig. 11,
12) and with a different one for each part. Images come from Fashion-MNIST's own training and
test splits (Debian's dataset-fashion-mnist package, or a download), digits from the MNIST
splits.
"""

from __future__ import annotations

from demixgan.experiments import paper
from demixgan.experiments.context import Context
from demixgan.experiments.demixing import PEERED, Setting, separation_survey, stored_separators
from demixgan.experiments.margins import target_tables
from demixgan.experiments.registry import register
from demixgan.reports.experiment import Outcome

# Every generator here is the paper's (InfoGAN or DCGAN): no architecture row of its own.
FASHION_SETTINGS = (
    Setting("fashion+fashion (two generators)", "demix-fashion-all", **PEERED),
    # Exchangeable parts, one generator drawn twice (as digit + digit): chosen on validation.
    Setting("fashion+fashion (one shared generator)", "demix-fashion-all-shared", **PEERED),
    Setting("dress+bag", "demix-dress-bag", **PEERED),
)
MNIST_FASHION_SETTINGS = (
    Setting("digit8+dress (InfoGAN)", "demix-digit8-dress-infogan", **PEERED),
    Setting("digit8+dress (DCGAN)", "demix-digit8-dress-dcgan", **PEERED),
    # A generator per part (E25, docs/training.md): two identical generators each drew both objects.
    Setting("digit8+dress (DCGAN + InfoGAN)", "demix-digit8-dress-dcgan-infogan", **PEERED),
)


@register(
    "fashion",
    configs=[setting.config for setting in FASHION_SETTINGS],
    separators=stored_separators(FASHION_SETTINGS),
)
def fashion(context: Context) -> Outcome:
    survey = separation_survey(
        context, FASHION_SETTINGS, context.profile.survey_fit, paper.TABLE_2, evolution=True
    )
    table = survey.table(
        "table-2",
        "Table 2: MSE and PSNR (dB) per component on Fashion-MNIST test mixtures",
        "fashion+fashion draws both parts from all ten classes, so each mixture's estimates are "
        "matched to its objects by that mixture's best order; its two models (two generators, "
        "one generator drawn twice) are chosen between on validation (the architecture table).",
    )
    summary = (
        "Demixing-GANs trained on sums of two Fashion-MNIST training images (any two objects, "
        "with two generators or one drawn twice; a dress and a bag), then separating sums of "
        "held-out test images next to the floors, the peers and the bound."
    )
    tables = [
        *target_tables(survey.metrics),
        table,
        survey.gains(),
    ]
    return Outcome(summary, tables, survey.figures, survey.metrics)


@register(
    "mnist-fashion",
    configs=[setting.config for setting in MNIST_FASHION_SETTINGS],
    separators=stored_separators(MNIST_FASHION_SETTINGS),
)
def mnist_fashion(context: Context) -> Outcome:
    numbers = {setting.label: paper.FIGURE_12["digit8+dress"] for setting in MNIST_FASHION_SETTINGS}
    survey = separation_survey(
        context, MNIST_FASHION_SETTINGS, context.profile.survey_fit, numbers, evolution=True
    )
    table = survey.table(
        "figure-12",
        "Fig. 12: MSE and PSNR (dB) per component, digit 8 + dress test mixtures",
        "The paper quotes ICA only (single image); it is repeated under each architecture.",
    )
    summary = (
        "Demixing-GANs with two generator architectures (the paper's InfoGAN generator and its "
        "MNIST DCGAN generator, both with batch norm) and with one of each (DCGAN for the 8, "
        "InfoGAN for the dress), trained on sums of an MNIST 8 and a Fashion-MNIST dress, "
        "separating held-out test sums next to ICA and the split y/2."
    )
    tables = [
        *target_tables(survey.metrics),
        table,
        survey.gains(),
    ]
    return Outcome(summary, tables, survey.figures, survey.metrics)
