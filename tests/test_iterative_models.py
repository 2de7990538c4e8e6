"""Flow matching and diffusion as models: the objective a training step backpropagates, what
the network sees (noisy images, times, labels), guidance, the sampling options and the NFE.

The objective tests record the one network call of a training step and recover from its
inputs the draws the step made (the noise and the time of every image): the documented
loss at those draws, computed here from its equation, must have the gradient the step's
loss has. A wrong target, a time mapped to the wrong scale, noise that is not the OT
pairing's, or labels that do not reach the network fail them.
"""

from __future__ import annotations

import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from genlab.errors import ConfigError
from genlab.models.base import GenerativeModule
from genlab.preflight import check_model_fits
from tests.helpers.tiny import loader, tiny_diffusion, tiny_flow, tiny_gan


def step_with_network_call(
    model: GenerativeModule, batch: tuple[Tensor, Tensor]
) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor | None]]:
    """The training loss of `batch` and the (x_t, t, labels) of its one network call."""
    calls: list[tuple] = []
    hook = model.net.register_forward_pre_hook(lambda _, args: calls.append(args))
    try:
        loss, _ = model.training_loss(batch)
    finally:
        hook.remove()
    assert len(calls) == 1
    x_t, t, *labels = calls[0]
    return loss, (x_t.detach(), t.detach(), labels[0] if labels else None)


def assert_same_gradient(model: GenerativeModule, loss: Tensor, documented: Tensor) -> None:
    params = list(model.net.parameters())
    got = torch.autograd.grad(loss, params, retain_graph=True)
    expected = torch.autograd.grad(documented, params)
    for name, a, b in zip(dict(model.net.named_parameters()), got, expected, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7), name


def per_image(values: Tensor) -> Tensor:
    return values.view(-1, 1, 1, 1)


@pytest.mark.parametrize("coupling", ["independent", "ot"])
def test_flow_backpropagates_the_flow_matching_loss(coupling: str) -> None:
    torch.manual_seed(0)
    model = tiny_flow(coupling=coupling)
    x, y = next(iter(loader(batch_size=8)))
    loss, (x_t, t, labels) = step_with_network_call(model, (x, y))
    assert labels is None and t.shape == (8,) and t.min() > 0 and t.max() < 1
    # x_t = (1 - t) x0 + t x1 with x1 the data: the noise x0 the step drew
    noise = (x_t - per_image(t) * x) / (1 - per_image(t))
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1) < 0.05
    documented = (model.net(x_t, t) - (x - noise)).pow(2).mean()
    assert torch.allclose(loss, documented, rtol=1e-5)
    assert_same_gradient(model, loss, documented)

    # Minibatch OT: the pairing of the drawn noise with the images is the cheapest one.
    cost = torch.cdist(noise.flatten(1).double(), x.flatten(1).double()).pow(2)
    _, columns = linear_sum_assignment(cost.numpy())
    paired_optimally = bool((torch.as_tensor(columns) == torch.arange(8)).all())
    assert paired_optimally == (coupling == "ot")


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_diffusion_backpropagates_the_epsilon_prediction_loss(schedule: str) -> None:
    torch.manual_seed(0)
    model = tiny_diffusion(schedule=schedule)
    T = model.num_train_steps
    x, y = next(iter(loader(batch_size=8)))
    loss, (x_t, t, labels) = step_with_network_call(model, (x, y))
    assert labels is None
    steps = t * T  # the network reads timestep / T
    assert torch.allclose(steps, steps.round(), atol=1e-4)
    assert steps.min() >= 0 and steps.max() < T
    abar = per_image(model.alphas_cumprod[steps.round().long()])
    noise = (x_t - abar.sqrt() * x) / (1 - abar).sqrt()
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1) < 0.05
    documented = (model.net(x_t, t) - noise).pow(2).mean()
    assert torch.allclose(loss, documented, rtol=1e-5)
    assert_same_gradient(model, loss, documented)


@pytest.mark.parametrize("build", [tiny_flow, tiny_diffusion])
def test_conditional_training_drops_labels_at_the_configured_rate(build) -> None:
    torch.manual_seed(0)
    model = build(num_classes=10, label_dropout=0.3)
    x = torch.rand(400, 1, 28, 28) * 2 - 1
    y = torch.arange(400) % 10
    _, (_, _, seen) = step_with_network_call(model, (x, y))
    dropped = seen == model.num_classes  # the null label
    assert 0.24 < dropped.float().mean() < 0.36
    assert torch.equal(seen[~dropped], y[~dropped])
    _, (_, _, seen) = step_with_network_call(build(num_classes=10, label_dropout=0.0), (x, y))
    assert torch.equal(seen, y)


def test_validation_loss_sees_every_label_and_the_same_draws_every_epoch() -> None:
    model = tiny_flow(num_classes=10, label_dropout=0.5)
    x, y = next(iter(loader(batch_size=8)))
    seen: list[Tensor] = []
    model.net.register_forward_pre_hook(lambda _, args: seen.append(args[2]))
    first = model.objective(x, y, torch.Generator().manual_seed(3))
    model.validation_step((x, y), 0)
    model.validation_step((x, y), 0)
    assert all(torch.equal(labels, y) for labels in seen)
    assert not torch.equal(first, model.objective(x, y, torch.Generator().manual_seed(4)))


def euler_by_hand(velocity, x: Tensor, steps: int) -> Tensor:
    for i in range(steps):
        t = torch.full((x.shape[0],), i / steps)
        x = x + velocity(x, t) / steps
    return x


def test_guidance_zero_is_the_unconditional_model_and_one_the_conditional() -> None:
    torch.manual_seed(0)
    model = tiny_flow(num_classes=10).eval()
    noise, labels = torch.randn(4, 1, 28, 28), torch.tensor([1, 2, 3, 4])
    null = torch.full((4,), 10)
    with torch.no_grad():
        cond = euler_by_hand(lambda x, t: model.net(x, t, labels), noise, 4)
        uncond = euler_by_hand(lambda x, t: model.net(x, t, null), noise, 4)
        guided = euler_by_hand(
            lambda x, t: 3 * model.net(x, t, labels) - 2 * model.net(x, t, null), noise, 4
        )
        assert torch.allclose(model.sample(noise, labels, guidance=1.0), cond, atol=1e-5)
        assert torch.allclose(model.sample(noise, labels, guidance=0.0), uncond, atol=1e-5)
        assert torch.allclose(model.sample(noise, None), uncond, atol=1e-5)
        assert torch.allclose(model.sample(noise, labels, guidance=3.0), guided, atol=1e-5)
    assert not torch.allclose(cond, uncond, atol=1e-3)


@pytest.mark.parametrize(
    ("build", "sampling", "nfe"),
    [
        (tiny_flow, {"solver": "euler", "steps": 3}, 3),
        # Heun: 2 per step, 1 on the step from t = 0 (sigma = inf) and on the one to sigma = 0
        (tiny_flow, {"solver": "heun", "steps": 3}, 4),
        (tiny_flow, {"solver": "heun", "steps": 3, "grid": "karras"}, 5),
        (tiny_diffusion, {"solver": "ddim", "steps": 5}, 5),
        (tiny_diffusion, {"solver": "ancestral", "steps": 7}, 7),
        (tiny_diffusion, {"solver": "dpmpp_2m", "steps": 6, "grid": "exponential"}, 6),
    ],
)
def test_nfe_is_what_sampling_costs(build, sampling: dict, nfe: int) -> None:
    model = build(num_classes=10)
    calls: list[int] = []
    model.net.register_forward_pre_hook(lambda _, args: calls.append(args[0].shape[0]))
    model.generate(2, labels=torch.tensor([1, 2]), **sampling)
    assert model.function_evaluations(**sampling) == nfe == len(calls) == sum(calls) // 2
    calls.clear()  # guidance mixes two passes per step: one doubled batch, twice the NFE
    model.generate(2, labels=torch.tensor([1, 2]), guidance=2.0, **sampling)
    assert model.function_evaluations(guidance=2.0, **sampling) == 2 * nfe == sum(calls) // 2
    assert model.last_function_evaluations == 2 * nfe


def test_a_stochastic_sampler_is_reproducible_from_its_seed() -> None:
    model = tiny_diffusion()

    def draw(seed: int) -> Tensor:
        return model.generate(3, generator=torch.Generator().manual_seed(seed), solver="ancestral")

    assert torch.equal(draw(0), draw(0))
    assert not torch.allclose(draw(0), draw(1))
    assert model.deterministic_sampling() and not model.deterministic_sampling(solver="ancestral")
    assert not model.deterministic_sampling(eta=1.0)
    assert not model.deterministic_sampling(solver="heun", s_churn=1.0)
    # a checkpoint written before the rename samples with its stored `ddpm`
    assert not model.deterministic_sampling(solver="ddpm")


@pytest.mark.parametrize(
    ("build", "sampling", "message"),
    [
        (tiny_gan, {"steps": 10}, "GANModule has no sampling option steps"),
        (tiny_flow, {"solver": "ddpn"}, "'ddpn' is not a sampler; choose one of euler, ddim"),
        (tiny_flow, {"grid": "cosine"}, "'cosine' is not a time grid; choose one of own, karras"),
        (tiny_flow, {"rho": 0}, "rho must be a finite number > 0"),
        (tiny_flow, {"s_churn": -1.0}, "s_churn must be a finite number >= 0"),
        (tiny_flow, {"s_tmax": float("nan")}, r"s_tmax must be a number >= 0 \(\.inf allowed\)"),
        (tiny_flow, {"eta": "0.5"}, r"eta must lie in \[0, 1\], got '0.5'"),
        (tiny_flow, {"steps": 0}, "steps must be a positive integer"),
        (tiny_flow, {"guidance": -1.0}, "guidance must be a finite number >= 0"),
        (tiny_flow, {"guidance": float("nan")}, "guidance must be a finite number >= 0"),
        (tiny_flow, {"guidance": float("inf")}, "guidance must be a finite number >= 0"),
        (tiny_flow, {"guidance": 3.0}, r"guidance=3.0 needs a class-conditional model"),
        (tiny_diffusion, {"guidance": 0.0}, r"guidance=0.0 needs a class-conditional model"),
        (tiny_flow, {"steps": 1_000_000}, r"steps must lie in 1\.\.10000"),
        (tiny_flow, {"rtol": 0.0}, "rtol must be a finite number > 0"),
        (tiny_flow, {"atol": float("nan")}, "atol must be a finite number > 0"),
        (tiny_flow, {"etta": 0.5}, "no sampling option etta"),
        (tiny_diffusion, {"steps": 101}, r"steps must lie in 1\.\.100"),
        (tiny_diffusion, {"eta": 2.0}, r"eta must lie in \[0, 1\]"),
    ],
)
def test_a_bad_sampling_option_is_one_clear_error(build, sampling: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build().generate(2, **sampling)


def test_bad_model_settings_fail_at_construction() -> None:
    with pytest.raises(ConfigError, match=r"model\.coupling='sinkhorn' is unknown"):
        tiny_flow(coupling="sinkhorn")
    with pytest.raises(ConfigError, match=r"model\.schedule='quadratic' is unknown"):
        tiny_diffusion(schedule="quadratic")
    with pytest.raises(ConfigError, match=r"model.sampling.solver='hein' is not a sampler"):
        tiny_diffusion(sampling={"solver": "hein", "steps": 4})
    with pytest.raises(ConfigError, match=r"model\.prediction='eps' is unknown"):
        tiny_diffusion(prediction="eps")
    with pytest.raises(ConfigError, match=r"model\.loss_weighting='snr' is unknown"):
        tiny_diffusion(loss_weighting="snr")
    with pytest.raises(ConfigError, match=r"model\.validation_sampling.steps must be a positive"):
        tiny_flow(validation_sampling={"steps": 0})
    with pytest.raises(ConfigError, match=r"model.label_dropout must lie in \[0, 1\)"):
        tiny_flow(num_classes=10, label_dropout=1.0)
    with pytest.raises(ConfigError, match=r"model\.net.num_classes=0 but model\.num_classes=10"):
        from genlab.models import FlowMatchingModule
        from tests.helpers.tiny import tiny_unet

        FlowMatchingModule(net=tiny_unet(0), optimizer=torch.optim.Adam, num_classes=10)


def test_the_preflight_names_a_network_that_does_not_fit_the_data() -> None:
    check_model_fits(tiny_flow(), (1, 28, 28))
    with pytest.raises(ConfigError, match=r"the network cannot take noise of shape \(3, 28, 28\)"):
        check_model_fits(tiny_flow(channels=3), (3, 28, 28))
    with pytest.raises(ConfigError, match=r"makes images of shape \(1, 28, 28\) but the data"):
        check_model_fits(tiny_flow(), (1, 32, 32))
