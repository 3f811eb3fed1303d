"""The research generators draw what their docs promise: thin curves inside the image."""

from __future__ import annotations

import torch

from demixgan.networks.registry import build_generator


def _curve(arch: str, coefficient: int, value: float, style=()) -> torch.Tensor:
    """One image of a curve generator whose last layer outputs a single height coefficient
    (and, for ``curve-ink``, the width and gain logits ``style``)."""
    torch.manual_seed(0)
    generator = build_generator(arch, 4).eval()
    with torch.no_grad():
        last = generator.body[-1]
        last.weight.zero_()
        last.bias.zero_()
        last.bias[coefficient] = value
        if style:
            last.bias[-2:] = torch.tensor(style)
        generator.profile_logits.copy_(torch.tensor([9.0, 9.0, -9, -9, -9, -9, -9, -9]))
        return generator(torch.zeros(1, 4))[0, 0]


def test_a_steep_curve_stays_a_thin_connected_stroke():
    image = _curve("curve", 10, 1.5)  # a sine of 1.5 cycles, about 10 px amplitude
    assert image.max() <= 1 and image.min() >= 0
    drawn = image > 0.5
    # Every column is crossed; no column is smeared into a vertical band.
    assert drawn.any(0).all()
    rows = torch.arange(28.0)[:, None].expand(28, 28)
    flat = (drawn.sum(0) <= 3).float().mean()
    assert flat > 0.5, "most columns should hold a thin crossing"
    assert rows[drawn].max() - rows[drawn].min() > 15  # the curve really is steep


def test_bounded_curves_never_leave_the_image():
    free = _curve("curve", 0, 5.0)  # 35 px below the middle: outside the image
    bounded = _curve("curve-bounded", 0, 5.0)
    assert free.max() < 0.5
    assert (bounded > 0.5).any(0).all()


def test_ink_curves_vary_in_width_and_saturate_or_fade_with_their_gain():
    """curve-ink draws what the ink family draws: strokes of any width, cores at exactly 1."""
    thin, wide = _curve("curve-ink", 0, 0.5, (-3.0, 3.0)), _curve("curve-ink", 0, 0.5, (3.0, 3.0))
    faint = _curve("curve-ink", 0, 0.5, (0.0, -3.0))
    assert thin.max() == 1 and wide.max() == 1  # a gain near 3 saturates the core
    assert (wide > 0.5).sum() > 1.5 * (thin > 0.5).sum()
    assert 0 < faint.max() < 0.5
    for image in (thin, wide, faint):
        assert image.min() >= 0 and (image > 0).any(0).all()


def test_axis_lines_draw_the_lines_family_but_not_a_digit():
    """Its range holds every ruled-lines image and no image that is not rows x columns."""
    from demixgan.data.families import get_family
    from demixgan.data.sources import load_images

    lines = get_family("lines").sample(4, 3, torch.Generator().manual_seed(0))
    digit = load_images("mnist-embedded", "test").images[:4]

    def best_fit(targets: torch.Tensor) -> float:
        torch.manual_seed(0)
        g = build_generator("axis-lines", 4, hidden=32, norm="none")
        # the last layer's outputs are the profiles' logits: fit them directly per image
        logits = torch.zeros(len(targets), 56, requires_grad=True)
        g.body = torch.nn.Identity()
        optimiser = torch.optim.Adam([logits], lr=0.3)
        for _ in range(300):
            loss = (g(logits) - targets).square().mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return loss.item()

    assert best_fit(lines) < 1e-3
    assert best_fit(digit) > 0.03


def test_axis_lines_draw_each_learned_line_in_both_orientations():
    g = build_generator("axis-lines", 3, hidden=8, norm="none")
    column_5 = torch.full((1, 56), -20.0)
    column_5[0, 28 + 5] = 20.0  # one vertical line at column 5
    g.body = torch.nn.Linear(3, 56)  # what the body learned: that line, for every latent
    torch.nn.init.zeros_(g.body.weight)
    g.body.bias.data = column_5[0]
    z = torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    images = g(z)[:, 0]
    assert images[0, :, 5].min() > 0.99 and images[0].sum() < 28.1  # vertical
    assert images[1, 5, :].min() > 0.99 and images[1].sum() < 28.1  # the same, transposed


def test_line_ink_draws_one_full_length_ink_line_of_either_orientation():
    """line-ink draws what the ink-lines family draws: one ruled line, any width and gain."""
    from demixgan.data.families import ink_lines_image

    g = build_generator("line-ink", 3, hidden=8, norm="none")
    g.body = torch.nn.Linear(3, 3)  # the height coefficient, then the width and gain logits
    torch.nn.init.zeros_(g.body.weight)
    g.body.bias.data = torch.tensor([0.5, 0.0, 3.0])
    with torch.no_grad():
        g.profile_logits.copy_(torch.tensor([9.0, 9.0, 9.0, -9, -9, -9, -9, -9]))
        horizontal, vertical = g(torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))[:, 0]
    core = horizontal.amax(1) == 1  # saturated rows, each across the whole width
    assert core.any() and (horizontal[core] == 1).all()
    assert (horizontal.std(1) < 1e-6).all()  # every row constant: a horizontal line
    assert torch.equal(vertical, horizontal.T)  # the same line, turned
    # the family's own lines are images of this form: constant along their length
    family = ink_lines_image(
        torch.rand(4, 1, 4, generator=torch.Generator().manual_seed(1)), 28, 28
    )
    flat = [(image.std(1) < 1e-6).all() or (image.std(0) < 1e-6).all() for image in family[:, 0]]
    assert all(flat)
