"""The peers a run's separator is scored against: MixIT, RemixIT without a GAN, and the
supervised bound, each with the same network and budget, found and scored by ``evaluate``."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch

from demixgan.cli.main import main
from demixgan.inference.amortized import Separator, load_separator, save_separator
from demixgan.inference.mixit import SlotGrouping, mixit_loss, oracle_groups, slot_assignments
from demixgan.io.checkpoints import latest_checkpoint
from demixgan.networks.separators import UNetSeparator
from demixgan.training.separator import train_separator
from tests.test_amortized import QUICK, blob_and_curves, disks_and_curves


def bars(n: int, seed: int, vertical: bool) -> torch.Tensor:
    """[n, 1, 28, 28] images of one bar each, horizontal or vertical, at random places."""
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 28, 28)
    at = torch.randint(2, 26, (n,), generator=g)
    for i, row in enumerate(at.tolist()):
        if vertical:
            images[i, 0, :, row - 1 : row + 2] = 1
        else:
            images[i, 0, row - 1 : row + 2, :] = 1
    return images


def test_mixit_loss_is_zero_only_for_outputs_that_add_up_to_the_mixtures() -> None:
    sources = torch.rand(5, 4, 1, 6, 6)  # two sources per mixture
    mixtures = torch.stack([sources[:, 0] + sources[:, 2], sources[:, 1] + sources[:, 3]], 1)
    assert mixit_loss(sources, mixtures).abs().max() < 1e-12  # any order of the outputs
    assert mixit_loss(sources[:, [3, 1, 0, 2]], mixtures).abs().max() < 1e-12
    halves = (mixtures.sum(1, keepdim=True) / 4).expand(-1, 4, -1, -1, -1)
    assert (mixit_loss(halves, mixtures) > 1e-3).all()
    assert len(slot_assignments(4, 2)) == 16 and len(slot_assignments(4, 2, every_group=True)) == 14


def test_the_oracle_takes_each_mixtures_best_grouping() -> None:
    truths = torch.rand(6, 2, 1, 5, 5)
    slots = torch.stack([truths[:, 0] * 0.5, truths[:, 1], truths[:, 0] * 0.5], 1)
    slots[::2] = slots[::2].flip(1)  # the kinds sit in other slots in every other mixture
    assert torch.allclose(oracle_groups(slots, truths), truths)


def test_the_grouping_tells_kinds_of_slot_apart_without_any_truth() -> None:
    """Slots that each settle on a kind (horizontal bars, vertical bars, and two quiet slots
    with faint bars of either kind): the fitted grouping adds each kind's slots into one part,
    though two bars of one kind at other places share no pixel."""
    n = 200
    horizontal, vertical = bars(n, 0, False), bars(n, 1, True)
    faint_h, faint_v = 0.05 * bars(n, 2, False), 0.05 * bars(n, 3, True)
    slots = torch.stack([faint_v, horizontal, faint_h, vertical], 1)
    grouping = SlotGrouping.fit(slots, 2)
    assert grouping.partition.tolist() in ([1, 0, 0, 1], [0, 1, 1, 0])
    parts = grouping(slots)
    assert parts.shape == (n, 2, 1, 28, 28)
    assert torch.allclose(parts.sum(1), slots.sum(1))


def test_a_grouped_separator_reloads_exactly_and_an_edited_sidecar_is_refused(tmp_path) -> None:
    network = UNetSeparator(4, width=8)
    grouping = SlotGrouping.fit(torch.rand(20, 4, 1, 28, 28), 2)
    grouping.partition.copy_(torch.tensor([1, 0, 0, 1]))
    separator = Separator(network, ("digit", "sines"), grouping=grouping)
    save_separator(separator, tmp_path / "mixit", {})
    back, sidecar = load_separator(tmp_path / "mixit")
    x = torch.rand(3, 1, 28, 28)
    assert back.separate(x).shape == (3, 2, 1, 28, 28)
    assert torch.equal(back.separate(x), separator.separate(x))
    assert sidecar["separator_grouped"] is True and back.outputs(x).shape[1] == 4

    path = latest_checkpoint(tmp_path / "mixit").sidecar_path
    edited = json.loads(path.read_text())
    edited["separator_grouped"] = "yes"
    path.write_text(json.dumps(edited))
    from demixgan.errors import DemixganError

    with pytest.raises(DemixganError, match="separator_grouped must be true or false"):
        load_separator(tmp_path / "mixit")


def test_the_supervised_bound_learns_real_parts_the_model_cannot_draw() -> None:
    """On disks + curves (parts the blob model cannot draw), the separator trained on the
    clean parts is far better than the split: it never drew from the model, which only names
    the parts."""
    train = disks_and_curves(2000, seed=0)
    test = disks_and_curves(128, seed=1)
    mixtures = test.sum(1)
    split = (mixtures[:, None] / 2 - test).pow(2).mean()
    supervised = train_separator(blob_and_curves(), QUICK, teaching="clean", clean=train)
    bound = (supervised.separate(mixtures) - test).pow(2).mean()
    assert bound < 0.3 * split, (bound, split)


def test_the_bound_learns_parts_whose_order_means_nothing_in_any_order() -> None:
    """Where the clean parts come in no fixed order (two objects of any class), a bound
    learning their stored order learns their mean, the split; learned in the best order per
    example (``peer_groups`` of such data: one group), it separates them."""
    from demixgan.evaluation.metrics import align_each
    from demixgan.inference.amortized import peer_groups

    def shuffled(parts: torch.Tensor, seed: int) -> torch.Tensor:
        swap = torch.rand(len(parts), generator=torch.Generator().manual_seed(seed)) < 0.5
        return torch.where(swap[:, None, None, None, None], parts.flip(1), parts)

    train, test = shuffled(disks_and_curves(2000, 0), 2), shuffled(disks_and_curves(128, 1), 3)
    mixtures, model = test.sum(1), blob_and_curves()
    split = (mixtures[:, None] / 2 - test).pow(2).mean()
    errors = {}
    for exchangeable in (False, True):
        groups = peer_groups(model, exchangeable)
        bound = train_separator(model, QUICK, teaching="clean", clean=train, groups=groups)
        errors[exchangeable] = (align_each(bound.separate(mixtures), test) - test).pow(2).mean()
    assert groups == [[0, 1]]
    assert errors[False] > 0.7 * split, (errors, split)
    assert errors[True] < 0.3 * split, (errors, split)


def test_mixit_learns_its_objective_on_mixtures_of_mixtures() -> None:
    """MixIT needs thousands of steps to separate (the demo's peer: docs/results/demo); here
    a few dozen must already fit held-out mixtures of mixtures far better than at the start,
    with 2K outputs grouped into K parts."""
    train = disks_and_curves(1000, seed=0).sum(1)
    held_out = disks_and_curves(64, seed=1).sum(1)
    pairs = torch.stack([held_out[:32], held_out[32:]], 1)
    options = replace(QUICK, steps=40, batch_size=16)
    untrained = train_separator(
        blob_and_curves(), replace(options, lr=1e-9), mixtures=train, teaching="mixit"
    )
    mixit = train_separator(blob_and_curves(), options, mixtures=train, teaching="mixit")
    losses = [mixit_loss(s.outputs(pairs.sum(1)), pairs).mean() for s in (untrained, mixit)]
    assert losses[1] < 0.5 * losses[0], losses
    assert mixit.network.components == 4 and mixit.separate(held_out).shape == (64, 2, 1, 28, 28)


def run(*args) -> int:
    return main([str(a) for a in args])


def test_peers_train_into_the_run_and_evaluate_scores_them(tiny_runs, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_runs["demix"], run_dir)
    quick = ["--steps", "6", "--remix-steps", "2", "--width", "8", "--batch-size", "8"]
    assert run("separator", run_dir, "--peer", "remixit", *quick) == 2
    assert "train it first" in capsys.readouterr().err
    assert not (run_dir / "peers" / "remixit").exists()
    for kind in ("mixit", "remixit", "supervised"):
        assert run("separator", run_dir, "--peer", kind, *quick) == 0
        assert load_separator(run_dir / "peers" / kind)[1]["peer"] == kind
    assert not (run_dir / "separator").exists()  # the peers are not the run's separator
    capsys.readouterr()
    assert run("evaluate", run_dir, "--n", "4", "--no-ica", "--methods", "split") == 0
    table = capsys.readouterr().out
    for row in (
        "MixIT peer (outputs grouped without truth)",
        "MixIT peer, oracle grouping (sees the truth)",
        "RemixIT peer (taught by MixIT, no GAN)",
        "supervised separator (clean parts): upper bound",
        "PSNR of mean MSE",
    ):
        assert row in table
