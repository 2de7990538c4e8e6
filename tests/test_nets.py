"""Architectures: output shapes for MNIST- and CIFAR-sized images, and the seed's recipes."""

from __future__ import annotations

import pytest
import torch

from genlab.errors import ConfigError
from genlab.models import GANModule
from genlab.nets.conv_vae import ConvDecoder, ConvEncoder
from genlab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from genlab.nets.seed import SeedDiscriminator, SeedGenerator
from genlab.preflight import check_model_fits


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_dcgan_shapes(channels: int, size: int) -> None:
    g = DCGANGenerator(latent_dim=8, channels=channels, image_size=size, width=8)
    d = DCGANDiscriminator(channels=channels, image_size=size, width=8)
    images = g(torch.randn(5, 8))
    assert images.shape == (5, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1  # tanh output
    assert d(images).shape == (5,)


def test_dcgan_matches_the_issue_sizes() -> None:
    # G = Linear 100 -> 7x7x128, ConvT 128 -> 64 -> 1; D = Conv 1 -> 64 -> 128 + Linear.
    g = DCGANGenerator()
    assert g.project[0].out_features == 7 * 7 * 128
    assert [m.out_channels for m in g.upsample if isinstance(m, torch.nn.ConvTranspose2d)] == [
        64,
        1,
    ]
    d = DCGANDiscriminator()
    assert [m.out_channels for m in d.features if isinstance(m, torch.nn.Conv2d)] == [64, 128]
    assert all(m.kernel_size == (4, 4) for m in d.features if isinstance(m, torch.nn.Conv2d))


def test_vae_nets_shapes() -> None:
    enc = ConvEncoder(latent_dim=6, channels=3, image_size=32, width=8, hidden=16)
    dec = ConvDecoder(latent_dim=6, channels=3, image_size=32, width=8, hidden=16)
    mu, logvar = enc(torch.randn(4, 3, 32, 32))
    assert mu.shape == logvar.shape == (4, 6)
    assert dec(mu).shape == (4, 3, 32, 32)


def test_seed_generator_fixed_makes_28x28() -> None:
    g = SeedGenerator(latent_dim=10, width=8, strides=(1, 2, 2, 1))
    assert g(torch.randn(2, 10)).shape == (2, 1, 28, 28)
    assert SeedDiscriminator(width=8)(torch.randn(2, 1, 28, 28)).shape == (2,)


def test_seed_literal_strides_make_56x56_as_in_the_article() -> None:
    g = SeedGenerator(latent_dim=10, width=8, strides=(1, 2, 2, 2), batch_norm=False)
    assert g(torch.randn(2, 10)).shape == (2, 1, 56, 56)


def test_seed_literal_has_no_nonlinearity_between_transposed_convs() -> None:
    g = SeedGenerator(width=8, batch_norm=False)
    kinds = [type(m).__name__ for m in g.upsample]
    assert kinds == ["ConvTranspose2d"] * 4 + ["Tanh"]


def test_the_seeds_56x56_generator_is_rejected_naming_both_shapes() -> None:
    model = GANModule(
        generator=SeedGenerator(latent_dim=10, width=8, strides=(1, 2, 2, 2)),
        discriminator=SeedDiscriminator(width=8),
        optimizer=torch.optim.Adam,
        latent_dim=10,
    )
    with pytest.raises(ConfigError, match=r"\(1, 56, 56\).*\(1, 28, 28\)"):
        check_model_fits(model, (1, 28, 28))
