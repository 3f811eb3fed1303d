"""Demixing experiments of the paper: what demixing-GANs learn from mixtures alone (Fig. 4, 5)
and how well they separate unseen test mixtures (Fig. 6, Table 1).

``separation_survey`` is the part every demixing experiment shares (fashion, mnist-fashion and
z-coupling too): train or reuse each setting's model, separate held-out test mixtures, and
table every method beside the trivial split and the paper's numbers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from demixgan.experiments import paper
from demixgan.experiments.context import Context
from demixgan.experiments.figures import evolution_figures, separation_panels
from demixgan.experiments.registry import register
from demixgan.inference.methods import SEPARATOR_ROW, Split
from demixgan.inference.options import FitOptions
from demixgan.inference.tasks import Evaluation, evaluate_checkpoint
from demixgan.reports.experiment import Outcome, ResultFigure, ResultTable
from demixgan.reports.grids import save_panels
from demixgan.training.separator import train_model_separator

EXAMPLES = 8
SPLIT_ROW = Split(2).name
#: Gains of the methods a survey reports beside the split: metrics key -> row label suffix.
GAIN_KEYS = {"gain_over_split": "", "gain_over_split_amortized": " (amortized separator)"}


@dataclass(frozen=True)
class Setting:
    label: str  # the paper's name of the setting (a key of the paper's table where it has one)
    config: str  # experiment config (src/demixgan/assets/experiments/<config>.toml)
    amortized: bool = False  # also train and score a separator network (inference/amortized.py)


@dataclass
class Survey:
    """Separations of several settings: table rows, raw numbers and figures."""

    rows: list[list[str]] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    figures: list[ResultFigure] = field(default_factory=list)
    parts: int = 2  # the most components of any setting: the tables' part columns

    def table(self, name: str, title: str, note: str = "") -> ResultTable:
        columns = [f"part {k} {m}" for k in range(1, self.parts + 1) for m in ("MSE", "PSNR")]
        return ResultTable(
            name,
            title,
            ["setting", "method", *columns, "mixtures"],
            [row[:-1] + ["–"] * (len(columns) + 3 - len(row)) + row[-1:] for row in self.rows],
            "part k: the recipe's k-th component. Ours are means over the stated number "
            "of held-out test mixtures (standard deviations in metrics.json); the paper's rows "
            "are single images. The split y/K of K parts is the bar: a method counts by its gain "
            "over it." + (f" {note}" if note else ""),
        )

    def gains(self) -> ResultTable:
        """Each setting's demixing-GAN PSNR minus the split's, per component."""
        return ResultTable(
            "gain-over-split",
            "What each demixing-GAN adds over the split y/K (PSNR gain, dB)",
            ["setting", *(f"part {k}" for k in range(1, self.parts + 1))],
            [
                [label + suffix, *(f"{gain:+.2f}" for gain in metrics[key].values())]
                for label, metrics in self.metrics.items()
                for key, suffix in GAIN_KEYS.items()
                if key in metrics
            ],
            "Positive: the model separates better than the split y/K.",
        )


def separation_survey(
    context: Context,
    settings: tuple[Setting, ...],
    fit: FitOptions,
    paper_numbers: dict[str, dict[str, tuple[float, float]]],
    *,
    evolution: bool = False,
) -> Survey:
    """Train (or reuse) every setting's model and separate held-out test mixtures with it."""
    survey = Survey()
    for setting in settings:
        trained = context.trained(context.config(setting.config))
        if evolution:
            survey.figures += evolution_figures(context.run_dir, trained, setting.label)
        separator, separator_minutes = None, None
        if setting.amortized:
            options = context.profile.separator
            started = time.perf_counter()
            with context.bar(options.steps + options.remix_steps, "training a separator") as bar:
                separator = train_model_separator(trained, options, progress=bar.update)
            separator_minutes = (time.perf_counter() - started) / 60
        n = context.profile.test_mixtures
        with context.bar(n, f"separating {setting.label}") as bar:
            evaluation, separation = evaluate_checkpoint(
                trained,
                fit,
                n=n,
                data_dir=context.data_dir,
                separator=separator,
                progress=bar.update,
            )
        survey.metrics[setting.label] = {
            "config": setting.config,
            "n": evaluation.n,
            "test images": evaluation.digits,
            "fit": evaluation.options,
            "scores": {row.method: row.scores for row in evaluation.rows},
            "matching": {row.method: row.matching for row in evaluation.rows},
            "gain_over_split": gain_over_split(evaluation),
        }
        if separator is not None:
            survey.metrics[setting.label] |= {
                "separator": asdict(context.profile.separator),
                "separator_minutes": round(separator_minutes, 1),
                "gain_over_split_amortized": gain_over_split(evaluation, SEPARATOR_ROW),
            }
        names = list(evaluation.rows[0].scores)
        survey.parts = max(survey.parts, len(names))
        for row in evaluation.rows:
            cells = [
                f"{row.scores[name][m][0]:.{d}f}"
                for name in names
                for m, d in (("mse", 4), ("psnr", 2))
            ]
            survey.rows.append([setting.label, row.method, *cells, str(evaluation.n)])
        for method, (first, second) in paper_numbers.get(setting.label, {}).items():
            survey.rows.append(
                [setting.label, f"{method} (paper)", "–", f"{first:.1f}", "–", f"{second:.1f}", "1"]
            )
        figure = context.run_dir / "figures" / f"separation-{setting.config}.png"
        shown = min(EXAMPLES, evaluation.n)
        save_panels(
            separation_panels(trained, evaluation, separation, shown),
            figure,
            ncol=1,
            title=f"{setting.label}: {shown} of the {evaluation.n} test mixtures",
        )
        survey.figures.append(
            ResultFigure(figure, f"Separations of {setting.label} ({evaluation.digits})")
        )
    return survey


def split_row(parts: int) -> str:
    """The table row of the trivial split y/K of ``parts`` components."""
    return Split(parts).name


def gain_over_split(evaluation: Evaluation, method: str = "demixing-GAN") -> dict[str, float]:
    """PSNR of ``method`` minus that of the split y/K, per component (dB): what a method adds."""
    rows = {row.method: row.scores for row in evaluation.rows}
    split = rows[split_row(len(rows[method]))]
    return {
        name: scores["psnr"][0] - split[name]["psnr"][0] for name, scores in rows[method].items()
    }


TEST_SETTINGS = (
    Setting("digit+sines", "demix-digit-sines"),
    Setting("digit+waves", "demix-digit-waves"),
)
TRAIN_SETTINGS = (
    Setting("digit+sines", "demix-digit-sines"),
    Setting("digit+lines", "demix-digit-lines"),
    Setting("digit+digit", "demix-digit-digit", amortized=True),
    Setting("digits-1-2", "demix-digits-1-2"),
)


@register(
    "demix-test",
    configs=[setting.config for setting in TEST_SETTINGS],
)
def demix_test(context: Context) -> Outcome:
    survey = separation_survey(context, TEST_SETTINGS, context.profile.fit, paper.TABLE_1)
    table = survey.table(
        "table-1", "Table 1: MSE and PSNR (dB) per component, mean over the test mixtures"
    )
    summary = (
        "Held-out test mixtures (digits never used in training) separated by fitting the latents "
        "of demixing-GANs trained on mixtures only, scored against the true parts next to ICA, "
        "the trivial split y/2 and the mixture itself."
    )
    return Outcome(summary, [table], survey.figures, survey.metrics)


@register(
    "demix-train",
    configs=[setting.config for setting in TRAIN_SETTINGS],
)
def demix_train(context: Context) -> Outcome:
    learned = TRAIN_SETTINGS[1:]  # digit + sines is demix-test's: shown here, scored there
    survey = separation_survey(
        context, learned, context.profile.survey_fit, paper.TABLE_1, evolution=True
    )
    shown = context.trained(context.config(TRAIN_SETTINGS[0].config))
    figures = evolution_figures(context.run_dir, shown, TRAIN_SETTINGS[0].label)
    table = survey.table(
        "separation",
        "Test separation of the settings trained here (digit + sines: see demix-test)",
        "digit+digit draws both parts from all ten classes, so each mixture's estimates are "
        "matched to its digits by that mixture's best order.",
    )
    summary = (
        "Demixing-GANs trained on mixtures alone: the evolution grids show every generator and "
        "their sum for fixed latents through training (the paper's Fig. 4, 5); the tables score "
        "the trained models on held-out test mixtures."
    )
    return Outcome(summary, [table, survey.gains()], figures + survey.figures, survey.metrics)


K3_SETTING = Setting("digit+sines+lines", "demix-digit-sines-lines", amortized=True)


@register(
    "demix-k3",
    configs=[K3_SETTING.config],
)
def demix_k3(context: Context) -> Outcome:
    survey = separation_survey(context, (K3_SETTING,), context.profile.fit, {})
    table = survey.table(
        "separation",
        "K = 3: MSE and PSNR (dB) per component, mean over the test mixtures",
        "The bar is the split y/3.",
    )
    summary = (
        "A demixing-GAN with three generators (digit, sines, lines) trained on digit + sines + "
        "lines mixtures alone, separating held-out test mixtures by the latent fit and by a "
        "separator network, beside ICA with three sources and the trivial split y/3."
    )
    return Outcome(summary, [table, survey.gains()], survey.figures, survey.metrics)
