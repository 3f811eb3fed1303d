"""Properties of the structured signal families: shapes, ranges, seeding and the geometry
each family promises (exact line counts, thin connected curves, k plane waves)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from demixgan.data.families import (
    FAMILIES,
    MAX_LEVEL,
    MIN_LEVEL,
    SignalFamily,
    check_level,
    get_family,
)
from demixgan.errors import DemixganError

NAMES = ("sines", "ink", "waves", "lines", "ink-lines", "brush")
SIZES = ((28, 28), (32, 40), (17, 9))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registry_names_and_descriptions() -> None:
    assert set(FAMILIES) == set(NAMES)
    for name, family in FAMILIES.items():
        assert isinstance(family, SignalFamily)
        assert family.name == name
        assert get_family(name) is family
        assert family.description and "\n" not in family.description


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("height", "width"), SIZES)
def test_shape_dtype_range(name: str, height: int, width: int) -> None:
    family = get_family(name)
    generator = gen()
    for level in range(1, 6):
        x = family.sample(16, level, generator, height=height, width=width)
        assert x.shape == (16, 1, height, width)
        assert x.dtype == torch.float32
        assert x.device.type == "cpu"
        assert x.is_contiguous()
        assert torch.isfinite(x).all()
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert (x.amax(dim=(1, 2, 3)) > 0.5).all(), "every image shows its signal"


@pytest.mark.parametrize("name", NAMES)
def test_max_level_and_empty_batch(name: str) -> None:
    family = get_family(name)
    x = family.sample(4, MAX_LEVEL, gen())
    assert x.shape == (4, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    empty = family.sample(0, 3, gen(), height=5, width=7)
    assert empty.shape == (0, 1, 5, 7) and empty.dtype == torch.float32


@pytest.mark.parametrize("name", NAMES)
def test_seeded_by_the_generator_only(name: str) -> None:
    family = get_family(name)
    torch.manual_seed(1)
    a = family.sample(8, 3, gen(7))
    torch.manual_seed(2)  # the global RNG must play no part
    b = family.sample(8, 3, gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, family.sample(8, 3, gen(8)))

    generator = gen(7)
    state = generator.get_state()
    first = family.sample(8, 3, generator)
    second = family.sample(8, 3, generator)
    assert not torch.equal(first, second), "sampling advances the generator"
    generator.set_state(state)
    assert torch.equal(family.sample(8, 3, generator), first)


def count_lines(image: torch.Tensor) -> int:
    """Full rows plus full columns that are all ones."""
    full = image == 1.0
    return int(full.all(dim=1).sum()) + int(full.all(dim=0).sum())


@pytest.mark.parametrize("level", range(1, 6))
@pytest.mark.parametrize(("height", "width"), ((28, 28), (32, 40)))
def test_lines_exact_count(level: int, height: int, width: int) -> None:
    x = get_family("lines").sample(200, level, gen(level), height=height, width=width)[:, 0]
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}
    for image in x:
        assert count_lines(image) == level
        # Nothing but the lines: every lit pixel lies on a full row or column.
        on_line = (image == 1).all(dim=1)[:, None] | (image == 1).all(dim=0)[None, :]
        assert torch.equal(image.bool(), on_line)


def test_lines_both_orientations_occur() -> None:
    x = get_family("lines").sample(400, 1, gen())[:, 0] == 1
    vertical = x.all(dim=1).any(dim=1).float().mean().item()
    assert 0.4 < vertical < 0.6  # each line is vertical with probability 1/2


def test_sines_level1_spans_width_thin_and_connected() -> None:
    x = get_family("sines").sample(200, 1, gen(3))[:, 0]
    # The curve crosses every column (no gaps, full width).
    assert (x.amax(dim=1) >= 0.5).all()
    # Thin: on average few pixels per column are brighter than 0.5.
    assert (x > 0.5).sum(dim=1).float().mean() <= 3.0
    # A flat-ish stroke has the mass of a 1.25 px wide pen: per-column sum about 1.25.
    assert 1.0 < x.sum(dim=1).median() < 2.5
    eight = np.ones((3, 3), dtype=int)
    for image in x.numpy():
        _, strokes = ndimage.label(image > 0, structure=eight)
        assert strokes == 1


@pytest.mark.parametrize("level", range(2, 6))
def test_sines_stroke_count_at_most_level(level: int) -> None:
    x = get_family("sines").sample(50, level, gen(level))[:, 0].numpy()
    eight = np.ones((3, 3), dtype=int)
    for image in x:
        _, strokes = ndimage.label(image > 0, structure=eight)
        assert 1 <= strokes <= level  # crossing curves merge into one stroke
    # More curves light more pixels.
    fewer = get_family("sines").sample(50, 1, gen(level))
    assert (x > 0.5).mean() > (fewer > 0.5).float().mean().item()


def test_sines_steep_parts_stay_connected() -> None:
    x = get_family("sines").sample(300, 1, gen(11), height=64, width=24)[:, 0]
    eight = np.ones((3, 3), dtype=int)
    for image in x.numpy():
        assert ndimage.label(image > 0, structure=eight)[1] == 1


def test_ink_reaches_one_like_a_digit_where_sines_never_does() -> None:
    """The point of ``ink``: no pixel value tells the stroke from a binary digit's ink."""
    ink = get_family("ink").sample(500, 1, gen(5))[:, 0]
    sines = get_family("sines").sample(500, 1, gen(5))[:, 0]
    assert (sines < 1).all()
    reaching = (ink.flatten(1).amax(dim=1) == 1).float().mean().item()
    assert 0.6 < reaching < 0.9  # strokes of gain > 1 saturate; the others are lighter
    light = ink.flatten(1).amax(dim=1)
    assert light.min() < 0.8  # intensities vary
    widths = (ink > 0.5).sum(dim=1).float().median(dim=1).values  # pixels per column
    assert widths.min() <= 2 and widths.max() >= 3  # widths vary
    eight = np.ones((3, 3), dtype=int)
    for image in ink[:100].numpy():
        assert ndimage.label(image > 0, structure=eight)[1] == 1  # one connected stroke


def test_ink_lines_are_ruled_strokes_that_reach_one_and_vary() -> None:
    """Each ink line is straight and spans the image: every row (or column) of a horizontal
    (vertical) line has the same profile; most saturate at 1 and widths vary."""
    lines = get_family("ink-lines").sample(300, 1, gen(6))[:, 0]
    reaching = (lines.flatten(1).amax(dim=1) == 1).float().mean().item()
    assert 0.5 < reaching < 0.9 and lines.flatten(1).amax(dim=1).min() < 0.8
    columns_same = (lines - lines[:, :1, :]).abs().amax(dim=(1, 2)) == 0  # vertical
    rows_same = (lines - lines[:, :, :1]).abs().amax(dim=(1, 2)) == 0  # horizontal
    assert (columns_same | rows_same).all() and 0.3 < columns_same.float().mean() < 0.7
    cores = torch.where(columns_same, (lines[:, 0] > 0.5).sum(1), (lines[:, :, 0] > 0.5).sum(1))
    assert cores.min() <= 2 and cores.max() >= 3


def test_brush_strokes_differ_from_ink_in_profile_width_and_amplitude() -> None:
    """The out-of-distribution renderer: Gaussian edges (many pixels between 0 and 0.2 where
    ink's tents drop straight to 0), thicker on average, and still reaching 1."""
    ink = get_family("ink").sample(500, 1, gen(7))
    brush = get_family("brush").sample(500, 1, gen(7))
    faint = [((x > 0) & (x < 0.2)).float().mean().item() for x in (ink, brush)]
    assert faint[1] > 2 * faint[0]
    assert brush.mean() > 1.3 * ink.mean()
    assert (brush.flatten(1).amax(dim=1) == 1).float().mean() > 0.6


def test_waves_dense() -> None:
    for level in range(1, 6):
        x = get_family("waves").sample(64, level, gen(level))
        inside = ((x > 0) & (x < 1)).float().mean(dim=(1, 2, 3))
        assert (inside > 0.95).all()
        assert (x.std(dim=(1, 2, 3)) > 0.1).all()
        # min-max scaling per image: each image reaches both ends.
        assert torch.allclose(x.amin(dim=(1, 2, 3)), torch.zeros(64))
        assert torch.allclose(x.amax(dim=(1, 2, 3)), torch.ones(64))


@pytest.mark.parametrize("level", range(1, 6))
def test_waves_are_at_most_level_plane_waves(level: int) -> None:
    """A plane wave sin(αx + βy + φ) is a rank-2 matrix, plus 1 for the constant offset of the
    min-max scaling, so k waves have rank at most 2k + 1. For k <= 2 the rank is usually exactly
    2k + 1; beyond that, sinusoids of at most 4 cycles per image are nearly linearly dependent
    on the grid, so the numerical rank saturates and only the upper bound is testable."""
    x = get_family("waves").sample(64, level, gen(level), height=32, width=40)[:, 0]
    s = torch.linalg.svdvals(x.double())
    rel = s / s[:, :1]
    assert (rel[:, 2 * level + 1 :] < 1e-4).all(), "no more than k wave components"
    if level <= 2:
        assert (rel[:, 2 * level] > 1e-3).float().mean() > 0.7, "usually all k are present"


@pytest.mark.parametrize("level", range(1, 6))
def test_waves_band_limited(level: int) -> None:
    """Spatial frequencies are 1-4 cycles per image: (DC-free) energy sits at radius <= 6 bins,
    allowing for the leakage of non-integer frequencies."""
    x = get_family("waves").sample(64, level, gen(level), height=64, width=64)[:, 0]
    spectrum = torch.fft.fft2(x - x.mean(dim=(1, 2), keepdim=True)).abs() ** 2
    freqs = torch.fft.fftfreq(64) * 64
    fy, fx = torch.meshgrid(freqs, freqs, indexing="ij")
    low = spectrum[:, fy**2 + fx**2 <= 36].sum(dim=1) / spectrum.sum(dim=(1, 2))
    assert low.min() > 0.8 and low.mean() > 0.9


def test_waves_level1_single_frequency() -> None:
    """Level 1: the FFT energy (DC removed) sits around one frequency pair ±(u, v)."""
    x = get_family("waves").sample(32, 1, gen(5), height=64, width=64)[:, 0]
    spectrum = torch.fft.fft2(x - x.mean(dim=(1, 2), keepdim=True)).abs() ** 2
    flat = spectrum.flatten(1)
    top2 = flat.topk(2, dim=1)
    energy = flat.sum(dim=1)
    peak = torch.stack((top2.indices // 64, top2.indices % 64), dim=-1)
    # The two strongest bins are mirror images (±(u, v)) of each other.
    assert torch.equal((-peak[:, 0]) % 64, peak[:, 1])
    # Allowing for leakage of non-integer frequencies, most energy is near those two bins.
    freqs = torch.fft.fftfreq(64) * 64
    fy, fx = torch.meshgrid(freqs, freqs, indexing="ij")
    for i in range(32):
        py, px = freqs[peak[i, 0, 0]], freqs[peak[i, 0, 1]]
        near = (((fy - py) ** 2 + (fx - px) ** 2) <= 4) | (((fy + py) ** 2 + (fx + px) ** 2) <= 4)
        assert spectrum[i][near].sum() / energy[i] > 0.7


@pytest.mark.parametrize("bad", [0, -1, 99, MAX_LEVEL + 1, True, 2.5, 3.0, "3", None])
def test_check_level_rejects(bad: object) -> None:
    with pytest.raises(DemixganError, match=f"from {MIN_LEVEL} to {MAX_LEVEL}"):
        check_level(bad)  # type: ignore[arg-type]


def test_check_level_accepts_range() -> None:
    assert [check_level(k) for k in range(MIN_LEVEL, MAX_LEVEL + 1)] == list(range(1, 11))
    assert check_level(np.int64(4)) == 4 and type(check_level(np.int64(4))) is int


@pytest.mark.parametrize("name", NAMES)
def test_sample_validates_arguments(name: str) -> None:
    family = get_family(name)
    with pytest.raises(DemixganError, match="from 1 to 10"):
        family.sample(4, 0, gen())
    with pytest.raises(DemixganError, match="from 1 to 10"):
        family.sample(4, 99, gen())
    with pytest.raises(DemixganError, match="from 1 to 10"):
        family.sample(4, 1.5, gen())  # type: ignore[arg-type]
    with pytest.raises(DemixganError, match=r"batch size n.*>= 0"):
        family.sample(-1, 1, gen())
    with pytest.raises(DemixganError, match="height"):
        family.sample(2, 1, gen(), height=0)
    with pytest.raises(DemixganError, match=r"torch\.Generator"):
        family.sample(2, 1, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["sine", "", "LINES", "noise"])
def test_unknown_family_lists_valid_names(bad: str) -> None:
    with pytest.raises(DemixganError) as info:
        get_family(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert "lines, sines, waves" in message
