"""Budgets of `demixgan reproduce`: the same experiments at CPU, paper and smoke-test sizes.

A profile changes how much is trained and evaluated, never what: every experiment reads its
model and data settings from its config, and the profile adds training overrides and the test
and latent-fit budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from demixgan.errors import DemixganError
from demixgan.inference.choice import ChoiceBudget
from demixgan.inference.options import LEVELS, FitOptions, SeparatorOptions
from demixgan.spec.validation import check_fields, rule


@dataclass(frozen=True)
class Profile:
    """A budget, checked by the same validator as run configs and options (spec/validation.py)."""

    name: str
    description: str
    #: ``KEY=VALUE`` overrides added to every experiment config (as ``train --set``).
    train_overrides: tuple[str, ...]
    #: Held-out test mixtures per setting (capped by the test images there are).
    test_mixtures: int = rule(ge=1)
    fit: FitOptions
    #: Held-out digits per corruption family and level in denoise-test, and their fit.
    denoise_digits: int = rule(ge=1)
    denoise_fit: FitOptions
    #: Epochs and training digits (0: all 3,670) of the MNIST classifier that reads digits.
    classifier_epochs: int = rule(ge=1)
    #: Compressive sensing: test images, numbers of measurements m, and the latent fit.
    cs_images: int = rule(ge=1)
    cs_measurements: tuple[int, ...]
    cs_fit: FitOptions
    #: The latent fit of experiments that compare several trainings (demix-train, fashion,
    #: mnist-fashion, z-coupling) on ``test_mixtures`` each.
    survey_fit: FitOptions
    classifier_digits: int = rule(0, ge=0)
    #: The separator network of the settings scored with one too, and of their peers and
    #: bound (training/separator.py; the default budget was chosen on validation mixtures).
    separator: SeparatorOptions = field(default_factory=SeparatorOptions)
    #: cs: the m at which the 2-wave demixing prior is also read by a separator network
    #: (the issue's target m; 0: none), and that network's budget (teacher and student each).
    cs_separator_measurements: int = rule(100, ge=0)
    cs_separator: SeparatorOptions = field(default_factory=SeparatorOptions)
    #: denoise-test: the levels a fit tries where it estimates each image's level.
    denoise_tried_levels: tuple[int, ...] = LEVELS
    #: What choosing each trained separator's default method spends (inference/choice.py).
    choice: ChoiceBudget = field(default_factory=ChoiceBudget)

    def __post_init__(self) -> None:
        check_fields(self, f"profile {self.name!r}")


SMOKE_SEPARATOR = SeparatorOptions(steps=2, batch_size=4, width=8, remix_steps=2, teacher_every=1)

PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            "cpu",
            "2 CPU cores: the configs' own step budgets on the embedded MNIST training digits "
            "(or Fashion-MNIST), 500 test mixtures; from an empty checkpoint store an experiment "
            "takes from about 40 minutes to about 12 hours, most of it training on one thread "
            "(RESULTS.md's budget table; --jobs 2 trains two models at once); with its models "
            "already stored, only its evaluation runs",
            (),
            500,
            # lr and smoothing chosen on validation: docs/results/fit-choices (docs/reproduce.md)
            FitOptions(iterations=300, restarts=10, lr=0.1, smoothing=2.0, seed=0, chunk=400),
            200,
            FitOptions(iterations=200, restarts=4, lr=0.05, smoothing=2.0, seed=0, chunk=400),
            30,
            50,
            (25, 50, 100, 200, 400),
            FitOptions(iterations=300, restarts=4, lr=0.05, seed=0, chunk=400, combine="weighted"),
            # lr kept on validation at this budget: docs/results/fit-choices-survey
            FitOptions(iterations=300, restarts=4, lr=0.05, smoothing=2.0, seed=0, chunk=400),
            cs_separator=SeparatorOptions(steps=2000, remix_steps=2000, remix_fraction=1.0),
        ),
        Profile(
            "paper",
            "the paper's sizes: 55,000 MNIST training digits (downloaded), 64 epochs, the paper's "
            "latent fit (Adam lr 0.01, 500 iterations, 10 restarts), 1,000 test mixtures; "
            "for a GPU",
            (
                "data.digit_source=mnist",
                "data.limit=55000",
                "train.epochs=64",
                "train.max_steps=0",
            ),
            1000,
            FitOptions(),
            1000,
            FitOptions(),
            30,
            1000,
            (25, 50, 100, 200, 300, 400, 500, 750),
            FitOptions(),
            FitOptions(),
        ),
        Profile(
            "smoke",
            "seconds: checks that an experiment runs end to end; its numbers mean nothing",
            ("train.max_steps=2", "train.checkpoint_every=2", "train.batch_size=8"),
            4,
            FitOptions(iterations=2, restarts=1, seed=0),
            3,
            FitOptions(iterations=2, restarts=1, seed=0),
            1,
            2,
            (10, 20),
            FitOptions(iterations=2, restarts=1, seed=0),
            FitOptions(iterations=2, restarts=1, seed=0),
            200,
            SMOKE_SEPARATOR,
            cs_separator_measurements=20,
            cs_separator=SMOKE_SEPARATOR,
            denoise_tried_levels=(1, 2),
            choice=ChoiceBudget(4, FitOptions(iterations=2, restarts=1, seed=0)),
        ),
    )
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise DemixganError(
            f"Unknown profile {name!r}; the profiles are {', '.join(PROFILES)}: "
            + "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values())
            + "."
        )
    return PROFILES[name]
