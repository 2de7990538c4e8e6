"""The flow-matching / diffusion UNet: shapes, conditioning, where attention runs, and
that every parameter learns."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from genlab.nets.unet import SelfAttention, UNet


def perturbed(net: UNet) -> UNet:
    """`net` with a random final conv: the zero init makes every output 0, hiding what the
    inputs do."""
    nn.init.normal_(net.conv_out.weight, std=0.1)
    return net


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 28), (1, 32), (3, 32)])
def test_output_has_the_input_shape(channels: int, size: int) -> None:
    net = UNet(channels=channels, image_size=size, width=8, num_classes=3)
    x = torch.randn(2, channels, size, size)
    assert net(x, torch.rand(2)).shape == x.shape
    assert net(x, torch.tensor(0.5), torch.tensor([0, 3])).shape == x.shape  # scalar t


def test_zero_initialised_output() -> None:
    net = UNet(width=8)
    assert torch.equal(net(torch.randn(2, 1, 28, 28), torch.rand(2)), torch.zeros(2, 1, 28, 28))


def test_time_changes_the_output_and_a_scalar_broadcasts() -> None:
    torch.manual_seed(0)
    net = perturbed(UNet(width=8)).eval()
    x = torch.randn(1, 1, 28, 28).repeat(2, 1, 1, 1)
    out = net(x, torch.tensor([0.3, 0.301]))  # times 1e-3 apart still resolve
    assert not torch.allclose(out[0], out[1], atol=1e-4)
    assert torch.allclose(net(x, torch.tensor(0.3)), net(x, torch.full((2,), 0.3)))


def test_labels_condition_and_the_null_label_is_none() -> None:
    torch.manual_seed(0)
    net = perturbed(UNet(width=8, num_classes=10)).eval()
    assert net.num_classes == 10 and net.null_label == 10
    x, t = torch.randn(1, 1, 28, 28).repeat(3, 1, 1, 1), torch.full((3,), 0.5)
    out = net(x, t, torch.tensor([2, 7, 10]))
    assert not torch.allclose(out[0], out[1], atol=1e-4)
    # (1e-5: a batch of another size may take another conv algorithm.)
    assert torch.allclose(out[2:], net(x[:1], t[:1], None), atol=1e-5)
    assert torch.allclose(net(x, t), net(x, t, torch.full((3,), 10)), atol=1e-6)


def test_unconditional_net_refuses_labels() -> None:
    net = UNet(width=8)
    with pytest.raises(TypeError, match="num_classes=0"):
        net(torch.randn(1, 1, 28, 28), torch.rand(1), torch.tensor([0]))


def attention_inputs(net: UNet, size: int) -> list[tuple[int, int]]:
    """(height, width) of every map an attention layer sees in one forward."""
    seen: list[tuple[int, int]] = []
    for module in net.modules():
        if isinstance(module, SelfAttention):
            module.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].shape[-2:]))
    net(torch.randn(1, net.conv_in.in_channels, size, size), torch.rand(1))
    return [tuple(s) for s in seen]


def test_attention_runs_only_at_its_resolution() -> None:
    # 28 -> 14 -> 7: the middle (two blocks) runs at 7x7.
    assert attention_inputs(UNet(width=8), 28) == [(7, 7), (7, 7)]
    # At 14 attention follows the blocks of the second level, down and up, and not the middle.
    assert attention_inputs(UNet(width=8, attention_resolution=14), 28) == [(14, 14), (14, 14)]
    assert attention_inputs(
        UNet(channels=3, image_size=32, width=8, attention_resolution=8), 32
    ) == [
        (8, 8),
        (8, 8),
    ]
    assert attention_inputs(UNet(channels=3, image_size=32, width=8), 32) == []


def test_each_decoder_level_reads_the_encoder_features_of_its_resolution() -> None:
    net = perturbed(UNet(width=8, channel_mults=(1, 1)))
    down: list[Tensor] = []
    up: list[Tensor] = []
    for level in net.down:
        level.register_forward_hook(lambda _m, _i, out: down.append(out))
    for level in net.up:
        level.register_forward_hook(lambda _m, inputs, _o: up.append(inputs[0]))
    net(torch.randn(2, 1, 28, 28), torch.rand(2))
    # The skip is the second half of each decoder input: encoder outputs, innermost first.
    for features, decoder_input in zip(reversed(down), up, strict=True):
        assert torch.equal(decoder_input[:, features.shape[1] :], features)


@pytest.mark.parametrize(("size", "mults"), [(30, (1, 2)), (28, (1, 2, 2)), (27, (1,))])
def test_bad_image_size_is_refused(size: int, mults: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=f"image_size must be divisible by .* got {size}"):
        UNet(image_size=size, channel_mults=mults)


def test_every_parameter_gets_a_gradient_after_one_step() -> None:
    # At init only the final conv gets a gradient (its weight is 0, cutting the rest off);
    # one optimiser step makes it nonzero, and then every parameter learns.
    torch.manual_seed(0)
    net = UNet(width=8, num_classes=4, dropout=0.1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, t, labels = torch.randn(4, 1, 28, 28), torch.rand(4), torch.tensor([0, 1, 2, 4])

    def step() -> dict[str, Tensor | None]:
        opt.zero_grad()
        (net(x, t, labels) - x).pow(2).mean().backward()
        grads = {name: p.grad for name, p in net.named_parameters()}
        opt.step()
        return grads

    first = step()
    assert first["conv_out.weight"].abs().sum() > 0
    assert first["conv_in.weight"].abs().sum() == 0
    missing = [n for n, g in step().items() if g is None or g.abs().sum() == 0]
    assert missing == []


def test_default_size() -> None:
    # The MNIST default (width 32, mults (1, 2)) stays small enough to train on a CPU.
    assert 3e5 < sum(p.numel() for p in UNet(num_classes=10).parameters()) < 7e5
