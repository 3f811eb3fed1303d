"""Short real demixing runs learn the split: asserted on what the generators draw."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from demixgan.data.superposition import build_sampler, make_mixtures
from demixgan.inference.loading import load_model
from demixgan.spec.config import load_config
from demixgan.training.loop import train


def _family_classifier() -> LogisticRegression:
    """Digit vs. sines on held-out clean components (test split, never seen in training)."""
    batch = make_mixtures(build_sampler("digit+sines", level=1, split="test"), 400, seed=5)
    x = torch.cat([batch.components[:, 0], batch.components[:, 1]]).flatten(1).numpy()
    y = np.r_[np.zeros(400), np.ones(400)]
    return LogisticRegression(max_iter=2000).fit(x, y)


def _fraction_drawn_as_sines(run_dir, classifier) -> dict[str, float]:
    model, _ = load_model(run_dir)
    model.eval()
    with torch.no_grad():
        parts = model.components(model.sample_latents(200, torch.Generator().manual_seed(0)))
    return {
        name: float(classifier.predict(parts[:, k].flatten(1).numpy()).mean())
        for k, name in enumerate(model.names)
    }


def test_demixing_digit_sines_splits_each_generator_into_its_own_family(tmp_path):
    classifier = _family_classifier()
    config = load_config("configs/tiny-split.toml")
    start = _fraction_drawn_as_sines(
        train(
            load_config("configs/tiny-split.toml", ["train.max_steps=1"]),
            tmp_path / "start",
            progress=False,
        ).run_dir,
        classifier,
    )
    trained = _fraction_drawn_as_sines(
        train(config, tmp_path / "run", progress=False).run_dir, classifier
    )
    # Untrained, the digit generator's gray output looks like anything but a digit.
    assert start["digit"] > 0.5
    assert trained["digit"] < 0.1, trained
    assert trained["sines"] > 0.9, trained
