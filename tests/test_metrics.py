"""Metrics on real digits: SSIM against an independent implementation, PSNR, matching."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from demixgan.data.sources import load_images
from demixgan.evaluation.metrics import match_components, psnr, ssim


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """Twenty binarized MNIST test digits, float64 [20, 1, 28, 28]."""
    return load_images("mnist-embedded", "test", binarize=True).images[:20].double()


def _blur(images: torch.Tensor) -> torch.Tensor:
    kernel = torch.tensor([1.0, 2.0, 1.0], dtype=images.dtype)
    kernel = (kernel[:, None] * kernel[None, :] / 16).view(1, 1, 3, 3)
    return F.conv2d(images, kernel, padding=1)


def _noisy(images: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return images + std * noise.to(images.dtype)


def _skimage_ssim(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    from skimage.metrics import structural_similarity

    scores = [
        structural_similarity(
            e[0].numpy(),
            t[0].numpy(),
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for e, t in zip(estimate, truth, strict=True)
    ]
    return torch.tensor(scores, dtype=torch.float64)


@pytest.mark.parametrize(
    "corrupt", [_blur, lambda x: _noisy(x, 0.2), lambda x: _noisy(_blur(x), 0.1)]
)
def test_ssim_agrees_with_scikit_image_on_corrupted_digits(digits, corrupt):
    estimate = corrupt(digits)
    ours = ssim(estimate, digits)
    assert ours.shape == (len(digits),)
    assert torch.allclose(ours, _skimage_ssim(estimate, digits), atol=1e-6)
    assert (ours < 0.99).all()  # the corruption is visible to both


def test_ssim_of_identical_images_is_one(digits):
    assert torch.allclose(ssim(digits, digits), torch.ones(len(digits), dtype=digits.dtype))


def test_ssim_ranks_light_corruption_above_heavy(digits):
    light = ssim(_noisy(digits, 0.05), digits)
    heavy = ssim(_noisy(digits, 0.5), digits)
    assert (light > heavy).all()


def test_psnr_matches_a_hand_computed_value():
    # MSE 0.01 with peak 1: 10 log10(1 / 0.01) = 20 dB.
    estimate, truth = torch.zeros(3, 1, 4, 4), torch.full((3, 1, 4, 4), 0.1)
    assert torch.allclose(psnr(estimate, truth), torch.full((3,), 20.0), atol=1e-4)


def test_match_components_recovers_a_known_permutation(digits):
    truths = torch.stack([digits[:6], digits[6:12], digits[12:18]], dim=1)
    permutation = [2, 0, 1]  # estimate e shows true component permutation[e]
    estimates = _noisy(truths[:, permutation], 0.1, seed=1)
    assert match_components(estimates, truths) == [1, 2, 0]


def test_both_means_of_psnr_are_reported_and_the_per_image_mean_is_the_higher(digits):
    """PSNR is convex in the MSE, so its per-image mean is at least the PSNR of the mean MSE;
    the two agree only where every image has the same error."""
    from demixgan.evaluation.separation import PSNR_OF_MEAN, markdown_table, score_method

    truths = torch.stack([digits[:10], digits[10:20]], dim=1).float()
    g = torch.Generator().manual_seed(0)
    noisy = truths + 0.3 * torch.rand(10, 1, 1, 1, 1, generator=g) * torch.randn(
        truths.shape, generator=g
    )
    score = score_method("noisy", noisy, truths, ["a", "b"])
    for name in ("a", "b"):
        per_image, of_mean = score.scores[name]["psnr"][0], score.scores[name][PSNR_OF_MEAN][0]
        assert per_image > of_mean + 0.5
        assert of_mean == pytest.approx(10 * math.log10(1 / score.scores[name]["mse"][0]))
    same = score_method("same", truths + 0.1, truths, ["a", "b"]).scores["a"]
    assert same["psnr"][0] == pytest.approx(same[PSNR_OF_MEAN][0], abs=1e-4)
    assert "a PSNR of mean MSE" in markdown_table([score], ["a", "b"], 10)


def test_a_table_says_how_its_parts_were_matched(digits):
    from demixgan.evaluation.separation import markdown_table, score_method

    truths = torch.stack([digits[:10], digits[10:20]], dim=1).float()
    whole = score_method("m", truths.flip(1), truths, ["a", "b"])
    each = score_method("m", truths.flip(1), truths, ["a", "b"], per_mixture=True)
    assert "matched to the truth once over the whole set" in markdown_table([whole], "ab", 10)
    assert "(exchangeable parts)" in markdown_table([each], "ab", 10)
