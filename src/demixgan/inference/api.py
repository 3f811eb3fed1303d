"""The Python API over a trained checkpoint: ``load(path).demix(y)``, ``.denoise(u)``, ``.recover``.

A loaded model is the same superposition model the run trained; each task only picks the
operator and checks that the model has the components the task needs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from demixgan.data.superposition import get_recipe
from demixgan.errors import DemixganError
from demixgan.inference.amortized import Separator
from demixgan.inference.choice import CHOICE_SEED
from demixgan.inference.consistency import project_onto_mixture
from demixgan.inference.level import LevelFits, PrunedItems, choose_threshold
from demixgan.inference.loading import open_checkpoint
from demixgan.inference.options import LEVELS, FitOptions
from demixgan.inference.solver import LatentFit, fit_latents
from demixgan.inference.stroke_search import fit_with_stroke_search
from demixgan.io.images import intensities
from demixgan.io.json_files import read_json
from demixgan.models.operators import GaussianOperator, mix
from demixgan.models.superposition_model import LearnedComponent, SuperpositionModel
from demixgan.spec.config import RunConfig
from demixgan.spec.device import resolve_device
from demixgan.spec.image import ImageSpec

#: File beside a checkpoint (or in a run directory) that names its generators for users.
NAMES_FILE = "component-names.json"
#: What ``denoise`` returns: G(z_hat) (the paper), or u - n_hat with the corruption fitted.
DENOISE_ESTIMATES = ("generator", "subtract")
#: Validation images per level that choose the level threshold of ``denoise(..., "auto")``.
LEVEL_CHOICE_IMAGES = 20


@dataclass
class TrainedModel:
    """A trained superposition model with the names users gave its generators."""

    model: SuperpositionModel
    config: RunConfig
    checkpoint: Path
    names: dict[str, str] = field(default_factory=dict)  # generator name -> user's name
    #: Where the latent fits run (a GPU, say). The model, observations and results stay on the
    #: CPU; each fit works on a copy of the model there (inference/solver.fit_latents).
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def component_names(self) -> tuple[str, ...]:
        """Names of the learned components, in output order (user's names where given)."""
        return tuple(self.names.get(name, name) for name in self.model.learned)

    def denoise(
        self,
        observations: torch.Tensor,
        options: FitOptions | None = None,
        *,
        corruption_level: int | str | None = None,
        estimate: str = "generator",
        progress: Callable[[float], None] | None = None,
        level_threshold: float | None = None,
    ) -> torch.Tensor:
        """x_hat = G(z_hat) with z_hat fitted to u (paper eq. 3): [N, C, H, W].

        With ``corruption_level`` k the known corruption is fitted beside G, as k items of its
        family (``fit_with_corruption``); ``estimate = "subtract"`` then returns u - n_hat
        clipped to [0, 1] instead of G(z_hat): exact wherever the corruption was found, and
        not limited by what G can draw. ``corruption_level = "auto"``: each image's level is
        chosen by the fit itself (``fit_levels``, inference/level.py) with ``level_threshold``,
        by default the one ``choose_level_threshold`` picks on the run's validation split.
        """
        self._require_components(1, "denoise", "demix")
        if estimate not in DENOISE_ESTIMATES:
            raise DemixganError(
                f"The denoising estimate must be one of {', '.join(DENOISE_ESTIMATES)}, but got "
                f"{estimate!r}."
            )
        if isinstance(corruption_level, str) and corruption_level != "auto":
            raise DemixganError(
                f"The corruption level is a number of items or 'auto', not {corruption_level!r}."
            )
        if corruption_level is None:
            if estimate == "subtract":
                raise DemixganError(
                    "Subtracting the corruption needs it fitted: give the corruption level."
                )
            return self._fit(self.images(observations), options, None, progress).components[:, 0]
        images = self.images(observations)
        if corruption_level == "auto":
            if level_threshold is None and not self.counts_its_corruption:
                level_threshold = self.choose_level_threshold(options)[0]
            fit = self.fit_levels(images, LEVELS, options).select(level_threshold)[1]
        else:
            fit = self.fit_with_corruption(images, corruption_level, options)
        return self.denoise_estimates(images, fit)[estimate]

    @property
    def counts_its_corruption(self) -> bool:
        """Whether the fit of its known corruption counts the items itself (the relaxed
        lines): then no threshold has a level to choose."""
        fitted = self._known_fitted(max(LEVELS))
        return _counts_items(fitted.generators[c.name] for c in self.model.known)

    def choose_level_threshold(
        self, options: FitOptions | None = None, per_level: int = LEVEL_CHOICE_IMAGES
    ) -> tuple[float, dict[float, float]]:
        """The level threshold that recovers the most true levels on the run's validation
        split: ``per_level`` of its clean signals under the known corruption drawn at each
        level but the largest tried (``LEVELS``), fitted as ``denoise`` fits them; and each
        threshold's share of levels recovered. Needs the truth: a recipe's run."""
        from demixgan.data.superposition import draw_family, make_mixtures
        from demixgan.spec.factory import run_sampler

        data, known = self.config.data, self.model.known
        if data.mixtures is not None or data.recipe is None or len(known) != 1:
            raise DemixganError(
                "Choosing the level threshold needs validation images whose corruption level "
                "is known: a run of a recipe with one known corruption. This run has none "
                "(its mixtures are your own, or it has no single known corruption); give the "
                "threshold (--level-threshold, a per-pixel squared error such as 0.01)."
            )
        names, corruption = self.model.names, known[0]
        batch = make_mixtures(run_sampler(self.config, "validation"), per_level, CHOICE_SEED)
        signal = batch.components[:, names.index(self.model.learned[0])]
        generator = torch.Generator().manual_seed(CHOICE_SEED)
        validation = []
        for level in LEVELS[:-1]:
            drawn = draw_family(corruption.family, per_level, level, generator, self.model.image)
            if corruption.name in self.model.colors:
                drawn = self.model.colors[corruption.name](drawn)
            parts = [signal if name != corruption.name else drawn for name in names]
            corrupted = mix(torch.stack(parts, dim=1), self.model.operator)
            validation.append((self.fit_levels(corrupted, LEVELS, options), level))
        return choose_threshold(validation)

    def denoise_estimates(
        self, observations: torch.Tensor, fit: LatentFit
    ) -> dict[str, torch.Tensor]:
        """Both estimates of a ``fit_with_corruption``: G(z_hat) and u - n_hat in [0, 1]."""
        parts = fit.components
        signal = parts[:, self.model.names.index(self.model.learned[0])]
        subtracted = (self.images(observations) - (parts.sum(1) - signal)).clamp(0.0, 1.0)
        return {"generator": signal, "subtract": subtracted}

    def fit_with_corruption(
        self, observations: torch.Tensor, level: int, options: FitOptions | None = None
    ) -> LatentFit:
        """The latent fit of G and of the known corruption as ``level`` items of its family.

        The fit's components are [N, K, C, H, W] in the model's component order (``names``).
        """
        fitted = self._known_fitted(level)
        return fit_with_stroke_search(
            fitted, self.images(observations), self.model.learned, options, device=self.device
        )

    def fit_levels(
        self,
        observations: torch.Tensor,
        levels: Sequence[int] = LEVELS,
        options: FitOptions | None = None,
    ) -> LevelFits | PrunedItems:
        """The fits that choose each image's level (inference/level.py) where nobody says how
        many items corrupt it: a corruption whose fit needs no level (lines) is fitted once
        and counts its own items; one corruption of strokes (curves) is fitted once at the
        largest level, its surplus items dropped per image; any other at every level."""
        images = self.images(observations)
        fitted = self._known_fitted(max(levels))
        known = {c.name: fitted.generators[c.name] for c in self.model.known}
        counting = _counts_items(known.values())
        strokes = [name for name, g in known.items() if getattr(g, "strokes", False)]
        pruning = len(known) == 1 and bool(strokes)
        if not (counting or pruning):
            fits = {k: self.fit_with_corruption(images, k, options) for k in levels}
            return LevelFits(tuple(levels), fits)
        fit = fit_with_stroke_search(
            fitted, images, self.model.learned, options, device=self.device
        )
        if counting:
            counted = sum(g.items(fit.latents[name]) for name, g in known.items())
            return LevelFits(tuple(levels), dict.fromkeys(levels, fit), counted)
        name = strokes[0]
        with torch.no_grad():
            items = known[name].items_alone(fit.latents[name])
        index = self.model.names.index(name)
        return PrunedItems(tuple(levels), fit, items, index, images, fitted.operator)

    def _known_fitted(self, level: int) -> SuperpositionModel:
        """The model with its known corruption as ``level`` fittable items (a denoising-GAN)."""
        if not self.model.known:
            raise DemixganError(
                f"The checkpoint '{self.checkpoint}' has no known corruption to fit (it was "
                "trained without a signal-family component), so denoising with a corruption "
                "level needs a denoising-GAN checkpoint. Leave out the corruption level."
            )
        return self.model.with_known_fitted(level)

    def demix(
        self,
        observations: torch.Tensor,
        options: FitOptions | None = None,
        progress: Callable[[int], None] | None = None,
        consistent: bool = True,
    ) -> torch.Tensor:
        """Every learned component fitted to the mixtures (paper eq. 4): [N, K, C, H, W].

        ``consistent`` projects the fitted parts G_k(z_k) onto parts in [0, 1] that sum to the
        mixture (inference/consistency.py) where the model's mixtures are exactly that sum;
        ``consistent=False`` returns the generators' outputs themselves.
        """
        self._require_components(2, "demix", "denoise")
        mixtures = self.images(observations)
        parts = self._fit(mixtures, options, None, progress).components
        return self.make_consistent(parts, mixtures) if consistent else parts

    @property
    def exchangeable_data(self) -> bool:
        """Whether the run's recipe draws every part from the same images (two objects of any
        class), so no part has a role in the data; a user's own mixtures say nothing of it."""
        data = self.config.data
        if data.mixtures is not None or data.recipe is None:
            return False
        return get_recipe(data.recipe).exchangeable

    @property
    def remixable(self) -> bool:
        """Whether the run trained on mixtures (a separator can remix them), not clean images."""
        return self.config.data.observe is None

    def require_demixing(self) -> None:
        """Refuse a one-generator checkpoint where a task demixes (one clear error)."""
        self._require_components(2, "demix", "denoise")

    def require_separable(self) -> None:
        """Refuse a checkpoint whose observations have one part only (a vanilla GAN): a
        separator splits two or more, learned or known (a denoising-GAN's corruption)."""
        if len(self.model.names) < 2:
            raise DemixganError(
                f"The checkpoint '{self.checkpoint}' has one component "
                f"({', '.join(self.component_names)}) and no known corruption beside it, so a "
                "separator has nothing to split: train it for a demixing-GAN or a "
                "denoising-GAN run."
            )

    def separate(
        self,
        observations: torch.Tensor,
        separator: Separator,
        operator: GaussianOperator | None = None,
    ) -> torch.Tensor:
        """The learned components of mixtures by a trained separator, in one pass (no latent
        fit), made consistent with the mixtures like ``demix``'s: [N, K, C, H, W]. With an
        ``operator`` the observations are its measurements [N, m] (a separator trained for the
        same matrix), and the parts are clipped to [0, 1], where every training part lies.
        A denoising-GAN's separator returns its one learned part, the corruption split off."""
        self.require_separable()
        if separator.names != self.model.names:
            raise DemixganError(
                f"The separator was trained for components {', '.join(separator.names)}, but "
                f"this checkpoint has {', '.join(self.model.names)}: train one for it."
            )
        separator.check_operator(operator)
        learned = [self.model.names.index(name) for name in self.model.learned]
        if operator is not None:
            return separator.separate(self._checked_measurements(observations, operator))[
                :, learned
            ].clamp(0, 1)
        mixtures = self.images(observations)
        parts = separator.separate(mixtures)
        if self.model.operator.observes_sum:
            parts = project_onto_mixture(parts, mixtures)
        return parts[:, learned]

    def refine(
        self,
        observations: torch.Tensor,
        separator: Separator,
        options: FitOptions | None = None,
    ) -> torch.Tensor:
        """The separator's parts as the latent fit's start, then a short fit: [N, K, C, H, W].

        Each generator's latent is first fitted to its separated part (G_k(z_k) ~ part k),
        then all of them to the mixture from there (one restart): where the separator is
        close, the fit starts in the right basin instead of at the prior's random draws.
        """
        options = options or FitOptions()
        mixtures = self.images(observations)
        start = self.separate(mixtures, separator)
        latents = {}
        for k, name in enumerate(self.model.learned):
            alone = fit_latents(self.single(name), start[:, k], options, device=self.device)
            latents[name] = alone.latents[name]
        joint = replace(options, restarts=1)
        parts = fit_latents(
            self.model, mixtures, joint, initial=latents, device=self.device
        ).components
        return self.make_consistent(parts, mixtures)

    def single(self, name: str) -> SuperpositionModel:
        """The model's generator ``name`` alone, to fit its latent to one part."""
        component = LearnedComponent(name, self.model.generators[name])
        return SuperpositionModel([component], image=self.model.image)

    @property
    def projects_onto_mixture(self) -> bool:
        """Whether the model says y is exactly the sum of its learned parts, so separated parts
        are projected onto the mixture. Clipped training mixtures (the clip operator), or a
        known (sampled) component beside the generators, mean they need not sum to y."""
        return self.model.operator.observes_sum and not self.model.known

    def make_consistent(self, parts: torch.Tensor, mixtures: torch.Tensor) -> torch.Tensor:
        """``parts`` projected onto the mixtures where ``projects_onto_mixture``; else as is."""
        if not self.projects_onto_mixture:
            return parts
        return project_onto_mixture(parts, mixtures)

    def recover(
        self,
        measurements: torch.Tensor,
        operator: GaussianOperator,
        options: FitOptions | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> torch.Tensor:
        """Components from compressive measurements y = A(x + n) [N, m]: [N, K, C, H, W]."""
        measurements = self._checked_measurements(measurements, operator)
        return self._fit(measurements, options, operator, progress).components

    def _checked_measurements(self, measurements, operator: GaussianOperator) -> torch.Tensor:
        if not isinstance(operator, GaussianOperator):
            raise DemixganError(
                "Recovering from compressive measurements needs the GaussianOperator that "
                f"made them, not {type(operator).__name__}: GaussianOperator(m, "
                "model.model.image, seed=S) with the measurements' m and matrix seed."
            )
        measurements = check_finite(_as_float(measurements), "measurements")
        if measurements.ndim == 2 and measurements.shape[0] == 0:
            raise DemixganError("No measurements were given (an empty array): nothing to fit.")
        if measurements.ndim != 2 or measurements.shape[1] != operator.matrix.shape[0]:
            raise DemixganError(
                f"Compressive measurements must be an [N, m] array with m = "
                f"{operator.matrix.shape[0]} (the matrix's rows), but got shape "
                f"{tuple(measurements.shape)}."
            )
        check_reach(measurements, operator, len(self.model.names))
        return measurements

    def fit(self, observations: torch.Tensor, options: FitOptions | None = None) -> LatentFit:
        """The whole latent fit (latents, components, measurement error) for images [N, C, H, W]."""
        return self._fit(self.images(observations), options, None)

    def _fit(self, observations, options, operator, progress=None) -> LatentFit:
        return fit_latents(
            self.model,
            observations,
            options,
            operator=operator,
            progress=progress,
            device=self.device,
        )

    def images(self, observations) -> torch.Tensor:
        """Observations as float images of this model's spec [N, C, H, W] (checked, finite,
        and within reach of the model: K parts in [0, 1] sum to at most K)."""
        images = as_images(observations, self.model.image)
        reach = len(self.model.names)
        if images.min() < -reach or images.max() > 2 * reach:
            raise DemixganError(
                f"The observations range from {images.min().item():.4g} to "
                f"{images.max().item():.4g}, far outside what this model's {reach} parts in "
                f"[0, 1] can sum to ([0, {reach}]). Scale images to [0, 1] per part (uint8 "
                "arrays and PNGs are divided by 255 when read)."
            )
        return images

    def _require_components(self, needed: int, task: str, instead: str) -> None:
        count = len(self.model.learned)
        if (needed == 1) != (count == 1):
            kind = "one generator" if count == 1 else f"{count} generators"
            raise DemixganError(
                f"The checkpoint '{self.checkpoint}' holds {kind} "
                f"({', '.join(self.component_names)}), so it cannot {task}: {task} needs "
                f"{'exactly one' if needed == 1 else 'two or more'}. Use '{instead}' with this "
                "checkpoint, or a checkpoint trained for the task."
            )


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> TrainedModel:
    """Load a checkpoint (a run directory means its latest one) for inference, on CPU; its
    latent fits run on ``device`` (cpu, cuda, cuda:N or auto: a GPU where there is one)."""
    where = resolve_device(str(device))  # refused before the checkpoint is read
    checkpoint, model, config = open_checkpoint(path)
    names = read_names(checkpoint, model.learned)
    return TrainedModel(model, config, checkpoint, names, device=where)


def names_path(checkpoint: str | os.PathLike) -> Path:
    """Where a checkpoint's user names live: its run directory, so every snapshot shares them."""
    checkpoint = Path(checkpoint)
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None
    return (run_dir or checkpoint.parent) / NAMES_FILE


def read_names(checkpoint: str | os.PathLike, learned: Sequence[str]) -> dict[str, str]:
    path = names_path(checkpoint)
    if not path.is_file():
        return {}
    names = read_json(
        path,
        "component names file",
        "Fix or delete the file, or name the components again with 'demixgan name'.",
    )
    if not isinstance(names, dict) or not all(
        k in learned and isinstance(v, str) for k, v in names.items()
    ):
        raise DemixganError(
            f"'{path}' must map the checkpoint's generators ({', '.join(learned)}) to names. "
            "Name them again with 'demixgan name'."
        )
    return names


def check_names(learned: Sequence[str], names: Mapping[str, str]) -> dict[str, str]:
    """User names for generators: every key a generator, every name distinct and file-safe."""
    unknown = sorted(set(names) - set(learned))
    if unknown:
        raise DemixganError(
            f"The checkpoint has no generator named {', '.join(unknown)}; its generators are "
            f"{', '.join(learned)}. Write GENERATOR=NAME, e.g. {learned[0]}=digit."
        )
    final = [names.get(name, name) for name in learned]
    bad = [n for n in final if not n or not all(c.isalnum() or c in "-_" for c in n)]
    if bad or len(set(final)) != len(final):
        raise DemixganError(
            f"Component names must be distinct and use letters, digits, '-' and '_' only (they "
            f"name output files); got {', '.join(final)}."
        )
    return dict(names)


def check_reach(measurements: torch.Tensor, operator: GaussianOperator, parts: int) -> None:
    """Measurements must be what A can make of K parts in [0, 1]: |y_i| <= K sum_j |A_ij|."""
    bound = parts * operator.matrix.abs().sum(1)
    worst = (measurements.abs() / bound).max().item() if measurements.numel() else 0.0
    if worst > 2:
        raise DemixganError(
            f"The measurements reach {worst:.3g} times the largest value the seeded matrix "
            f"can give for {parts} parts in [0, 1]: they were not made by this matrix from "
            "images in [0, 1] (another --matrix-seed, or another scale). Measure images in "
            "[0, 1] with this matrix, or pass the images with --measurements M."
        )


def as_images(observations, image: ImageSpec) -> torch.Tensor:
    """Images of ``image`` as float [N, C, H, W]; grey ones also as [N, H, W] or one [H, W],
    colour ones also channels-last [N, H, W, C] (as image files and numpy store them)."""
    images = _as_float(observations)
    if images.ndim == 2 and image.channels == 1:
        images = images[None]
    if images.ndim == 3 and image.channels == 1:
        images = images[:, None]
    channels_last = images.ndim == 4 and images.shape[-1] == image.channels
    if channels_last and images.shape[1] != image.channels:
        images = images.permute(0, 3, 1, 2)
    if images.ndim != 4 or tuple(images.shape[1:]) != image.shape:
        c, h, w = image.shape
        grey = f"[N, {h}, {w}] or " if c == 1 else f"[N, {h}, {w}, {c}] or "
        raise DemixganError(
            f"Observations must be {image.describe()} images ({grey}[N, {c}, {h}, {w}]) like "
            f"the model's training data, but got an array of shape {tuple(observations.shape)}. "
            f"Convert them to {c} channel{'s' if c > 1 else ''} and {h}x{w} pixels first."
        )
    if images.shape[0] == 0:
        raise DemixganError("No observations were given (an empty array): nothing to fit.")
    return check_finite(images, "observations")


def _as_float(values) -> torch.Tensor:
    """Float observations; integer arrays and tensors are intensities, read as files are."""
    tensor = torch.as_tensor(values)
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise DemixganError(f"Observations must be real numbers, not {tensor.dtype}.")
    if tensor.is_floating_point():
        return tensor.float()
    return torch.from_numpy(intensities(tensor.numpy(), "The observations array"))


def check_finite(values: torch.Tensor, what: str) -> torch.Tensor:
    bad = (~torch.isfinite(values)).flatten(1).any(1) if values.numel() else torch.zeros(0)
    if bad.any():
        rows = bad.nonzero().flatten().tolist()
        shown = ", ".join(map(str, rows[:5])) + (" ..." if len(rows) > 5 else "")
        raise DemixganError(
            f"The {what} contain NaN or infinite values (entries {shown}). Remove or repair "
            "them; a fit to non-finite data has no meaning."
        )
    return values


def _counts_items(generators: Iterable[torch.nn.Module]) -> bool:
    """Whether every known corruption's generator form counts its own items (``items``)."""
    return all(hasattr(generator, "items") for generator in generators)
