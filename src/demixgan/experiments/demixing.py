"""Demixing experiments of the paper: what demixing-GANs learn from mixtures alone (Fig. 4, 5)
and how well they separate unseen test mixtures (Fig. 6, Table 1).

``separation_survey`` is the part every demixing experiment shares (fashion, mnist-fashion and
z-coupling too): train or reuse each setting's model, separate held-out test mixtures, and
table every method beside the trivial split and the paper's numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from demixgan.evaluation.separation import table_cells
from demixgan.experiments import paper
from demixgan.experiments.context import Context
from demixgan.experiments.figures import evolution_figures, separation_panels
from demixgan.experiments.margins import FLOORS, target_tables
from demixgan.experiments.registry import register
from demixgan.inference.methods import SEPARATOR_ROW, Split
from demixgan.inference.options import DEFAULT_METHODS, FitOptions
from demixgan.inference.tasks import Evaluation, evaluate_checkpoint
from demixgan.reports.experiment import Outcome, ResultFigure, ResultTable
from demixgan.reports.grids import save_panels

EXAMPLES = 8
#: The columns of each part in a survey's table (evaluation/separation.table_cells).
PART_COLUMNS = ("PSNR", "PSNR of mean MSE", "MSE", "SSIM")
SPLIT_ROW = Split(2).name
#: Gains of the methods a survey reports beside the split: metrics key -> row label suffix.
GAIN_KEYS = {"gain_over_split": "", "gain_over_split_amortized": " (amortized separator)"}


@dataclass(frozen=True)
class Setting:
    label: str  # the paper's name of the setting (a key of the paper's table where it has one)
    config: str  # experiment config (src/demixgan/assets/experiments/<config>.toml)
    amortized: bool = False  # also train and score a separator network (inference/amortized.py)
    #: Also score the separator's peers and the supervised bound (inference/choice.PEERS),
    #: trained with the same options beside the model (implies ``amortized``).
    peers: bool = False
    #: Test mixtures of another recipe than the config's (out-of-distribution rows).
    recipe: str | None = None
    #: The methods scored beside the separator and peers (inference/methods.py).
    methods: tuple[str, ...] = DEFAULT_METHODS


@dataclass
class Survey:
    """Separations of several settings: table rows, raw numbers and figures."""

    rows: list[list[str]] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    figures: list[ResultFigure] = field(default_factory=list)
    parts: int = 2  # the most components of any setting: the tables' part columns

    def table(self, name: str, title: str, note: str = "") -> ResultTable:
        columns = [f"part {k} {m}" for k in range(1, self.parts + 1) for m in PART_COLUMNS]
        width = len(columns) + 2  # setting, method, the part columns
        return ResultTable(
            name,
            title,
            ["setting", "method", *columns, "ms / mixture", "mixtures"],
            [row[:-2] + ["–"] * (width - len(row) + 2) + row[-2:] for row in self.rows],
            "part k: the recipe's k-th component. Ours are means ± std of per-image values over "
            "the stated number of held-out test mixtures, with the PSNR of the mean MSE (10 "
            "log10(1 / the mean MSE over the set)); the paper's rows are single images. The "
            "split y/K of K parts is the bar: a method counts by its gain over it. Parts are "
            "matched to the truth per mixture where they are exchangeable, else once over the "
            "whole set." + (f" {note}" if note else ""),
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


def stored_separators(settings: tuple[Setting, ...]) -> list[tuple[str, bool]]:
    """What ``register(separators=...)`` declares for these settings (once per config)."""
    declared = {
        (setting.config, setting.peers)
        for setting in settings
        if setting.amortized or setting.peers
    }
    return sorted(declared)


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
        separator, peers = None, {}
        options = context.profile.separator
        if setting.amortized or setting.peers:
            separator = context.separator(trained, options)
        if setting.peers:
            peers = context.peers(trained, options)
        n = context.profile.test_mixtures
        with context.bar(n, f"separating {setting.label}") as bar:
            evaluation, separation = evaluate_checkpoint(
                trained,
                fit,
                n=n,
                recipe=setting.recipe,
                data_dir=context.data_dir,
                methods=setting.methods,
                separator=separator,
                peers=peers,
                progress=bar.update,
            )
        survey.metrics[setting.label] = {
            "config": setting.config,
            "n": evaluation.n,
            "test images": evaluation.digits,
            "fit": evaluation.options,
            "scores": {row.method: row.scores for row in evaluation.rows},
            "matching": {row.method: row.matching for row in evaluation.rows},
            "seconds": {row.method: row.seconds for row in evaluation.rows},
        }
        if "fit" in setting.methods:
            survey.metrics[setting.label]["gain_over_split"] = gain_over_split(evaluation)
        if separator is not None:
            survey.metrics[setting.label] |= {
                "separator": asdict(options),
                "gain_over_split_amortized": gain_over_split(evaluation, SEPARATOR_ROW),
            }
            if setting.recipe is None:  # scored on its own data: a candidate architecture
                choice = context.separator_choice(trained)
                survey.metrics[setting.label]["validation_psnr"] = choice["validation_psnr"]
        survey.metrics[setting.label]["recipe"] = evaluation.recipe
        names = list(evaluation.rows[0].scores)
        survey.parts = max(survey.parts, len(names))
        _, cells = table_cells(evaluation.rows, names)
        end = 1 + len(PART_COLUMNS) * len(names)  # method, then the part columns
        for line in cells:
            timing = line[end] if len(line) > end else "–"
            survey.rows.append([setting.label, *line[:end], timing, str(evaluation.n)])
        gap = ["–"] * (len(PART_COLUMNS) - 1)  # the paper gives one PSNR per part
        for method, (first, second) in paper_numbers.get(setting.label, {}).items():
            parts = [f"{first:.1f}", *gap, f"{second:.1f}", *gap]
            survey.rows.append([setting.label, f"{method} (paper)", *parts, "–", "1"])
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


#: Scored with the separator's peers and bound and every floor (experiments/margins.py).
PEERED = {"peers": True, "methods": ("fit", *FLOORS)}
#: The paper's architecture beside a setting whose partner generator is structured: the latent
#: fit and a separator with the same budget as ours.
PAPERS_ARCHITECTURE = {"amortized": True, "methods": ("fit", "split")}
TEST_SETTINGS = (
    Setting("digit+sines", "demix-digit-sines", **PEERED),
    Setting(
        "digit+sines, the paper's two DCGANs", "demix-digit-sines-dcgan", **PAPERS_ARCHITECTURE
    ),
    Setting("digit+waves", "demix-digit-waves", **PEERED),  # two DCGAN generators already
)
TRAIN_SETTINGS = (
    Setting("digit+sines", "demix-digit-sines"),  # demix-test's: shown here, scored there
    Setting("digit+lines", "demix-digit-lines", **PEERED),
    Setting(
        "digit+lines, the paper's two DCGANs", "demix-digit-lines-dcgan", **PAPERS_ARCHITECTURE
    ),
    Setting("digit+digit", "demix-digit-digit", **PEERED),
    Setting("digits-1-2", "demix-digits-1-2", **PEERED),
)


@register(
    "demix-test",
    configs=[setting.config for setting in TEST_SETTINGS],
    separators=stored_separators(TEST_SETTINGS),
)
def demix_test(context: Context) -> Outcome:
    survey = separation_survey(context, TEST_SETTINGS, context.profile.fit, paper.TABLE_1)
    table = survey.table(
        "table-1", "Table 1: MSE and PSNR (dB) per component, mean over the test mixtures"
    )
    summary = (
        "Held-out test mixtures (digits never used in training) separated by demixing-GANs "
        "trained on mixtures only (the latent fit, and a separator trained on the model's "
        "draws, then by remixing), scored against the true parts beside the floors (the split "
        "y/2, the pixel-value rule fitted with the truth, ICA, the mixture), the MixIT and "
        "RemixIT peers, the supervised bound and the paper's architecture."
    )
    return Outcome(
        summary,
        [*target_tables(survey.metrics), table],
        survey.figures,
        survey.metrics,
    )


@register(
    "demix-train",
    configs=[setting.config for setting in TRAIN_SETTINGS],
    separators=stored_separators(TRAIN_SETTINGS),
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
    tables = [
        *target_tables(survey.metrics),
        table,
        survey.gains(),
    ]
    return Outcome(summary, tables, figures + survey.figures, survey.metrics)


K3_SETTING = Setting("digit+sines+lines", "demix-digit-sines-lines", **PEERED)


@register(
    "demix-k3",
    configs=[K3_SETTING.config],
    separators=stored_separators((K3_SETTING,)),
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
    tables = [
        *target_tables(survey.metrics),
        table,
        survey.gains(),
    ]
    return Outcome(summary, tables, survey.figures, survey.metrics)
