"""One generator drawn for two components (``shares``): digit + digit from one network.

Two independent draws of the same network make the split identifiable in distribution (the
mixture's characteristic function is the square of the part's); what a user relies on is that
the two components really are one network through training, checkpoints and inference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from demixgan.experiments.context import config_key
from demixgan.inference.api import load
from demixgan.inference.options import FitOptions
from demixgan.spec.config import load_config
from demixgan.spec.factory import build_model
from demixgan.spec.image import MNIST_IMAGE
from demixgan.training.loop import train

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny-demix.toml"
SHARED = (
    "data.recipe=digit+digit",
    "data.level=",
    "components.sines.name=digit-b",
    "components.digit-b.shares=digit",
)


def test_a_sharing_component_draws_with_the_same_network():
    model = build_model(load_config(TINY, SHARED), MNIST_IMAGE)
    assert model.generators["digit-b"] is model.generators["digit"]
    unique = {id(p) for p in model.parameters()}
    separate = build_model(load_config(TINY), MNIST_IMAGE)
    assert len(unique) == len(list(model.parameters())) < len(list(separate.parameters()))


def test_shared_network_stays_one_network_through_training_and_loading(tmp_path):
    config = load_config(TINY, (*SHARED, "train.max_steps=4", "train.checkpoint_every=4"))
    train(config, tmp_path / "run", progress=False)
    trained = load(tmp_path / "run")
    generators = trained.model.generators
    assert generators["digit-b"] is generators["digit"]
    mixtures = torch.rand(3, 1, 28, 28)
    parts = trained.demix(mixtures, FitOptions(iterations=2, restarts=1), consistent=False)
    z = torch.rand(2, 8) * 2 - 1
    with torch.no_grad():
        assert torch.equal(generators["digit"].eval()(z), generators["digit-b"].eval()(z))
    assert parts.shape == (3, 2, 1, 28, 28)


def test_store_keys_of_configs_without_shares_are_unchanged():
    """Models stored before ``shares`` (and the data keys of own mixtures, the epoch-end
    checkpoint switch, the precision and the kept milestones) existed must stay valid: the key
    hashes them only when set."""
    config = load_config(TINY)
    before = dataclasses.asdict(config)
    for component in before["components"]:
        del component["shares"]
    for key in ("resize", "crop", "validation_share"):
        del before["data"][key]
    del before["train"]["checkpoint_every_epoch"]
    del before["train"]["precision"]
    del before["train"]["keep_every"]
    old_key = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]
    assert config_key(config) == old_key
    assert config_key(load_config(TINY, ("train.precision=bfloat16",))) != old_key
    assert config_key(load_config(TINY, SHARED)) != config_key(load_config(TINY, SHARED[:3]))
