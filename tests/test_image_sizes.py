"""Every network is built for an image spec: other sizes, RGB and non-square images work, and
at the paper's MNIST size the layers are exactly those that old checkpoints hold."""

from __future__ import annotations

import pytest
import torch

from demixgan.data.families import get_family, sines_image, waves_image
from demixgan.models.family_generators import family_generator
from demixgan.networks.registry import GENERATOR_ARCHS, build_discriminator, build_generator
from demixgan.networks.separators import UNetSeparator
from demixgan.spec.image import MNIST_IMAGE, ImageSpec

SPECS = [ImageSpec(1, 32, 32), ImageSpec(3, 64, 64), ImageSpec(1, 32, 48)]
IDS = ["grey-32", "rgb-64", "grey-32x48"]
#: The generators whose output is squashed into [0, 1] (lowpass draws the unsquashed field).
BOUNDED = [arch for arch in GENERATOR_ARCHS if arch != "lowpass"]


@pytest.mark.parametrize("image", SPECS, ids=IDS)
@pytest.mark.parametrize("arch", list(GENERATOR_ARCHS))
def test_each_generator_draws_images_of_the_spec(arch, image):
    torch.manual_seed(0)
    generator = build_generator(arch, 6, image=image, hidden=16, channels=16).eval()
    with torch.no_grad():
        images = generator(torch.randn(3, 6))
    assert images.shape == (3, *image.shape)
    assert torch.isfinite(images).all()
    if arch in BOUNDED:
        assert images.min() >= 0 and images.max() <= 1
    if image.channels == 3 and arch != "dcgan" and arch != "infogan":
        # The research generators draw grey strokes in a colour image.
        assert torch.equal(images, images[:, :1].expand_as(images))


@pytest.mark.parametrize("image", SPECS, ids=IDS)
def test_the_convolutional_generator_grows_from_the_base_grid(image):
    generator = build_generator("dcgan", 4, image=image, hidden=8, channels=64)
    transposed = [m for m in generator.body if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(transposed) == image.stages
    assert transposed[0].in_channels == 64 and transposed[-1].out_channels == image.channels
    unflatten = next(m for m in generator.body if isinstance(m, torch.nn.Unflatten))
    assert tuple(unflatten.unflattened_size) == (64, *image.base)


@pytest.mark.parametrize("image", SPECS, ids=IDS)
def test_the_discriminator_gives_one_logit_per_image(image):
    torch.manual_seed(0)
    discriminator = build_discriminator("dcgan", image=image, channels=8, code_dim=3)
    logits, codes = discriminator(torch.rand(5, *image.shape))
    assert logits.shape == (5,) and codes.shape == (5, 3)
    assert torch.isfinite(logits).all()
    with pytest.raises(RuntimeError):  # an image of another size does not fit its heads
        discriminator(torch.rand(5, image.channels, image.height + 4, image.width + 4))


@pytest.mark.parametrize("image", SPECS, ids=IDS)
def test_the_separator_returns_components_of_the_spec(image):
    torch.manual_seed(0)
    net = UNetSeparator(2, image=image, width=4)
    parts = net(torch.rand(3, *image.shape))
    assert parts.shape == (3, 2, *image.shape)
    assert parts.min() >= 0 and parts.max() <= 1
    lifted = UNetSeparator(3, image=image, width=4, measurements=20)
    assert lifted.lift.out_features == image.pixels
    assert lifted(torch.randn(3, 20)).shape == (3, 3, *image.shape)
    assert lifted.image == image


@pytest.fixture
def one_thread():
    """One intra-op thread: the network is tiny, and on a busy machine a second only waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_tiny_rgb_separator_learns(one_thread):
    """A few steps on a fixed 3x64x64 batch lower the squared error: it learns, not just runs."""
    image = ImageSpec(3, 64, 64)
    generator = torch.Generator().manual_seed(0)
    parts = torch.rand(2, 2, *image.shape, generator=generator)
    parts[:, 1] = parts[:, 1].mean(dim=(2, 3), keepdim=True)  # a flat colour under a texture
    observations = parts.mean(dim=1)
    torch.manual_seed(0)
    net = UNetSeparator(2, image=image, width=4)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    errors = []
    for _ in range(8):
        loss = (net(observations) - parts).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        errors.append(loss.item())
    assert errors[-1] < 0.8 * errors[0]  # 0.052 -> 0.037


@pytest.mark.parametrize("image", SPECS, ids=IDS)
@pytest.mark.parametrize("name, draw", [("sines", sines_image), ("waves", waves_image)])
def test_parametric_families_draw_their_formula_at_the_spec(name, draw, image):
    level, n = 2, 3
    p = torch.rand(n, level, 4, generator=torch.Generator().manual_seed(1))
    generator = family_generator(name, level, image=image)
    images = generator(2 * p.view(n, -1) - 1)
    assert images.shape == (n, *image.shape)
    expected = draw(p, image.height, image.width)
    assert torch.allclose(images, expected.expand_as(images), atol=1e-5)


@pytest.mark.parametrize("image", SPECS, ids=IDS)
def test_relaxed_lines_hold_every_lines_draw_at_the_spec(image):
    drawn = get_family("lines").sample(
        4, 3, torch.Generator().manual_seed(3), image.height, image.width
    )
    generator = family_generator("lines", 3, image=image)
    assert generator.latent_dim == image.height + image.width
    rows, columns = drawn[:, 0].amin(dim=2), drawn[:, 0].amin(dim=1)
    images = generator(torch.cat((rows, columns), dim=1) * 2 - 1)
    assert images.shape == (4, *image.shape)
    assert torch.equal(images, drawn.expand_as(images))


def test_the_stroke_search_finds_curves_in_a_non_square_colour_image():
    """The search draws its dictionary at the generator's spec: 3 x 32 x 48 works too."""
    from demixgan.data.families import sines_image
    from demixgan.inference.stroke_search import search_strokes

    image = ImageSpec(3, 32, 48)
    generator = family_generator("sines", 2, image=image)
    truth = torch.rand(1, 2, 4, generator=torch.Generator().manual_seed(0))
    drawn = sines_image(truth, image.height, image.width).expand(-1, 3, -1, -1)
    found = generator(search_strokes(generator, drawn))
    assert found.shape == (1, *image.shape)
    assert (found * drawn).sum() / drawn.pow(2).sum() > 0.5


@pytest.mark.parametrize("image", [MNIST_IMAGE, ImageSpec(1, 32, 48)], ids=["square", "32x48"])
def test_axis_lines_transpose_only_square_images(image):
    """One learned vertical line: drawn transposed for half the latents only where H == W."""
    g = build_generator("axis-lines", 3, image=image, hidden=8, norm="none")
    logits = torch.full((image.height + image.width,), -20.0)
    logits[image.height + 5] = 20.0  # column 5
    g.body = torch.nn.Linear(3, len(logits))
    torch.nn.init.zeros_(g.body.weight)
    g.body.bias.data = logits
    images = g(torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))[:, 0]
    assert images[0, :, 5].min() > 0.99
    if image.height == image.width:
        assert images[1, 5, :].min() > 0.99  # the same line, horizontal
    else:
        assert torch.equal(images[1], images[0])


def test_a_flat_curve_runs_across_the_width_at_mid_height():
    image = ImageSpec(1, 32, 48)
    g = build_generator("curve", 4, image=image, hidden=8, norm="none").eval()
    with torch.no_grad():
        g.body[-1].weight.zero_()
        g.body[-1].bias.zero_()  # height 0: the middle row, every column
        g.profile_logits.copy_(torch.tensor([9.0, 9.0, -9, -9, -9, -9, -9, -9]))  # 1 px solid
        drawn = g(torch.zeros(1, 4))[0, 0] > 0.5
    assert drawn.any(dim=0).all()  # all 48 columns are crossed
    rows = drawn.any(dim=1).nonzero().flatten()
    assert rows.min() >= 14 and rows.max() <= 17  # around row (32 - 1) / 2


#: The paper's networks at MNIST_IMAGE, as checkpoints hold them.
DCGAN_GENERATOR = [
    ("body.0.weight", (1024, 100)),
    ("body.0.bias", (1024,)),
    ("body.3.weight", (6272, 1024)),
    ("body.3.bias", (6272,)),
    ("body.7.weight", (128, 64, 5, 5)),
    ("body.7.bias", (64,)),
    ("body.10.weight", (64, 1, 5, 5)),
    ("body.10.bias", (1,)),
]
DCGAN_DISCRIMINATOR = [
    ("features.0.weight", (64, 1, 5, 5)),
    ("features.0.bias", (64,)),
    ("features.2.weight", (128, 64, 5, 5)),
    ("features.2.bias", (128,)),
    ("logit.weight", (1, 6272)),
    ("logit.bias", (1,)),
    ("codes.weight", (4, 6272)),
    ("codes.bias", (4,)),
]


def _shapes(network: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(value.shape)) for name, value in network.state_dict().items()]


def test_the_paper_networks_keep_their_checkpoint_layout():
    assert _shapes(build_generator("dcgan", 100)) == DCGAN_GENERATOR
    assert _shapes(build_generator("dcgan", 100, image=MNIST_IMAGE)) == DCGAN_GENERATOR
    assert _shapes(build_discriminator("dcgan", code_dim=4)) == DCGAN_DISCRIMINATOR
    infogan = build_generator("infogan", 62)
    assert [m.__class__.__name__ for m in infogan.body] == [
        "Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Unflatten",
        "ConvTranspose2d", "BatchNorm2d", "ReLU", "ConvTranspose2d", "Sigmoid",
    ]  # fmt: skip
    separator = UNetSeparator(2, width=8, measurements=100)
    assert separator.head.weight.shape == (2, 8, 1, 1)
    assert separator.lift.weight.shape == (784, 100)
