"""benchmarks/fit_choices.py's rule: a learning rate or smoothing replaces the profile's only for
a gain beyond the tie, and a longer fit never wins by scoring higher (its budget is a cost)."""

from __future__ import annotations

import sys

from conftest import REPO

from demixgan.inference.options import FitOptions

sys.path.insert(0, str(REPO / "benchmarks"))
from fit_choices import candidate, label, options_chosen

BASE = FitOptions(iterations=300, restarts=10, lr=0.05, smoothing=2.0)


def means(scores: dict[str, float]) -> list[dict]:
    rows = []
    for text, score in scores.items():
        fit = candidate(text, BASE)
        rows.append(
            {
                "candidate": label(fit),
                "iterations": fit.iterations,
                "restarts": fit.restarts,
                "mean_psnr": score,
            }
        )
    return rows


def test_the_profiles_options_stay_unless_beaten_beyond_the_tie_and_a_longer_fit_never_wins():
    close = means({"300:10:0.05:2": 16.60, "300:10:0.1:2": 16.65, "600:10:0.05:2": 18.0})
    assert options_chosen(close, BASE, tie=0.1)["candidate"] == "300:10:0.05:2"
    clear = means({"300:10:0.05:2": 16.60, "300:10:0.1:2": 16.75, "600:10:0.05:2": 18.0})
    assert options_chosen(clear, BASE, tie=0.1)["candidate"] == "300:10:0.1:2"


def test_the_survey_fit_is_chosen_among_candidates_of_its_own_budget():
    survey = FitOptions(iterations=300, restarts=4, lr=0.05, smoothing=2.0)
    scores = {"300:4:0.05:2": 16.02, "300:4:0.1:2": 16.30, "300:10:0.1:2": 17.5}
    assert options_chosen(means(scores), survey, tie=0.1)["candidate"] == "300:4:0.1:2"
