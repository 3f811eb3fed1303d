"""The settings of inference: the latent fit's and the separator network's, defined once.

Each field carries its default, bounds and one-line help (spec/validation.py), so the Python
API, the experiment profiles and the CLI flags (cli/options.py builds them from these fields)
share one set of defaults and refuse the same values with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass

from demixgan.networks.precision import PRECISIONS
from demixgan.spec.validation import check_fields, rule

#: Penalties of the residual A(sum G) - y: squared (the paper), absolute (robust), or squared
#: with shortfalls discounted (what the fit leaves unexplained is non-negative corruption).
RESIDUALS = ("l2", "l1", "nonnegative")
UPDATES = ("joint", "alternating")
#: What a fit returns per observation: its best restart, or the restarts' outputs averaged
#: by how well each explains the observation (inference/solver.py).
COMBINES = ("best", "weighted")
MAX_SEED = 2**63 - 1
#: Adam steps beyond this learning rate overflow float32 arithmetic; useful ones are far below.
MAX_LR = 10.0
#: Levels a denoiser tries where it estimates each image's corruption level (inference/level.py;
#: the reports' test levels are 1..5).
LEVELS = (1, 2, 3, 4, 5, 6)
#: The separation methods an evaluation can score (inference/methods.py), in table order.
METHOD_NAMES = ("fit", "refine", "separator", "pixel-rule", "ica", "mixture", "split")
DEFAULT_METHODS = ("fit", "ica", "mixture", "split")


@dataclass(frozen=True)
class FitOptions:
    """Latent-fit budget; the defaults are the paper's (Adam lr 0.01, 500 steps, 10 restarts)."""

    iterations: int = rule(500, ge=0, le=10**7, help="Adam steps")
    restarts: int = rule(
        10, ge=1, le=10_000, help="random restarts; the best fit is kept per observation"
    )
    lr: float = rule(0.01, gt=0, le=MAX_LR, help="Adam learning rate")
    latent_weight: float = rule(0.0, ge=0, help="weight lambda of ||z||^2")
    update: str = rule(
        "joint",
        choices=UPDATES,
        help="joint: all latents in one step; alternating: one component per step (the paper)",
    )
    tolerance: float = rule(
        0.0, ge=0, help="stop once 25 steps lower the objective by less than this fraction"
    )
    smoothing: float = rule(
        0.0, ge=0, le=64, help="coarse-to-fine fit: blur the residual by this many pixels at first"
    )
    residual: str = rule(
        "l2",
        choices=RESIDUALS,
        help="penalty of the residual: l2 (the paper), l1 (robust to corruption the generators "
        "do not draw) or nonnegative (l2 with shortfalls discounted, for corruption that only "
        "adds light)",
    )
    seed: int = rule(0, ge=0, le=MAX_SEED, help="seed of the latent starts")
    chunk: int = rule(4096, ge=1, help="observations x restarts fitted in one batch (memory)")
    combine: str = rule(
        "best",
        choices=COMBINES,
        help="best: the restart that fits best (the paper); weighted: the restarts' outputs "
        "averaged by fit (better where few measurements leave many solutions)",
    )

    def __post_init__(self) -> None:
        check_fields(self, "latent-fit options")


@dataclass(frozen=True)
class SeparatorOptions:
    """Training budget of a separator. The default, 1,500 + 1,500 steps (27 minutes on one
    thread), was chosen on 500 validation mixtures of the demo's model (docs/reproduce.md,
    docs/results/separator-budget); every experiment's separator, peers and bound use it."""

    steps: int = rule(1500, ge=1, le=10**8, help="steps on the model's own draws")
    batch_size: int = rule(64, ge=1, le=65_536, help="parts drawn per step")
    lr: float = rule(2e-3, gt=0, le=MAX_LR, help="peak learning rate of the one-cycle schedule")
    width: int = rule(32, ge=1, le=1024, help="channels of the U-Net's first level")
    remix_steps: int = rule(
        1500, ge=0, le=10**8, help="then steps of remixing the run's training mixtures (0: none)"
    )
    remix_fraction: float = rule(
        0.5, gt=0, le=1, help="share of each remixing batch taken from real mixtures"
    )
    remix_lr: float = rule(3e-4, gt=0, le=MAX_LR, help="learning rate of the remixing phase")
    teacher_every: int = rule(250, ge=1, help="remixing steps between teacher refreshes")
    max_level: int = rule(
        0,
        ge=0,
        le=64,
        help="draw a known corruption at a level from 1 to this, per image (0: the model's "
        "own): a denoiser that is never told how many curves or lines an image has",
    )
    seed: int = rule(0, ge=0, le=MAX_SEED, help="seed of the network and its draws")
    precision: str = rule(
        "float32",
        choices=PRECISIONS,
        help="arithmetic of the training forward passes: float32, or bfloat16 autocast (a step "
        "about 1.6 times as fast on a CPU with AVX512-BF16; separating stays float32)",
    )
    chunk: int = rule(512, ge=1, help="observations per forward pass when separating")
    checkpoint_every: int = rule(500, ge=1, help="steps between checkpoints of a separator run")
    log_every: int = rule(50, ge=1, help="steps between lines of its stats.jsonl")

    def __post_init__(self) -> None:
        check_fields(self, "separator options")
