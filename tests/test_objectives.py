"""The objective each training step backpropagates, for every model option.

A callback records, at every optimizer step of a real Lightning run, the gradient handed
to the optimizer and the weights it was taken at. The test then computes the same gradient
from the documented objective, written out here independently of `genlab.losses`, on the
same batch, the same latents and the same penalty points, with networks rebuilt from those
weights. A loss wired to the wrong inputs (real and fake swapped, a dropped KL term, a
penalty without its weight, labels that do not reach a network, augmentation left out)
changes the gradient and fails the comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal, kl_divergence

from genlab.models import GANModule
from tests.helpers.tiny import fit, loader, tiny_gan, tiny_vae

# --- recording what training did -------------------------------------------------------------


@dataclass
class OptimizerStep:
    """One optimizer step: the batch, the RNG state when the batch began, the weights the
    gradient was taken at, and that gradient (parameter name -> tensor)."""

    batch_idx: int
    batch: tuple[Tensor, Tensor]
    rng_state: Tensor
    state: dict[str, Tensor]
    grads: dict[str, Tensor]
    generator_inputs: tuple[Tensor, Tensor | None] | None
    penalty_inputs: list[Tensor] = field(default_factory=list)

    @property
    def network(self) -> str:
        """The network whose parameters this step updates (`generator`, `discriminator`), or
        `vae` for the VAE's single optimizer."""
        owners = {name.split(".")[0] for name in self.grads}
        return owners.pop() if len(owners) == 1 else "vae"


class StepRecorder(pl.Callback):
    """Records an `OptimizerStep` at every `on_before_optimizer_step`.

    For a GAN it also records the inputs of the latest generator call (z and labels) and
    the discriminator inputs that carry a gradient within this step (the points where a
    gradient penalty is taken).
    """

    def __init__(self) -> None:
        self.steps: list[OptimizerStep] = []
        self._generator_inputs: tuple[Tensor, Tensor | None] | None = None
        self._penalty_inputs: list[Tensor] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if isinstance(pl_module, GANModule):
            pl_module.generator.register_forward_pre_hook(self._record_generator_call)
            pl_module.discriminator.register_forward_pre_hook(self._record_critic_call)

    def _record_generator_call(self, _: nn.Module, args: tuple) -> None:
        labels = args[1].clone() if len(args) > 1 and args[1] is not None else None
        self._generator_inputs = (args[0].detach().clone(), labels)

    def _record_critic_call(self, _: nn.Module, args: tuple) -> None:
        if args[0].requires_grad:  # a penalty point: real and fake images carry no gradient
            self._penalty_inputs.append(args[0].detach().clone())

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch = (batch[0].clone(), batch[1].clone())
        self._batch_idx = batch_idx
        self._rng_state = torch.get_rng_state()
        self._penalty_inputs = []

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        names = {id(p): name for name, p in pl_module.named_parameters()}
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self.steps.append(
            OptimizerStep(
                batch_idx=self._batch_idx,
                batch=self._batch,
                rng_state=self._rng_state,
                state={k: v.detach().clone() for k, v in pl_module.state_dict().items()},
                grads={names[id(p)]: p.grad.detach().clone() for p in params if p.grad is not None},
                generator_inputs=self._generator_inputs,
                penalty_inputs=self._penalty_inputs,
            )
        )
        self._penalty_inputs = []


def assert_same_gradient(got: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    """Every parameter has a gradient, and together they match to float32 rounding."""
    assert got.keys() == expected.keys()
    g = torch.cat([got[k].flatten() for k in sorted(got)])
    e = torch.cat([expected[k].flatten() for k in sorted(expected)])
    assert e.norm() > 0
    assert (g - e).norm() <= 1e-4 * e.norm(), f"relative error {((g - e).norm() / e.norm()):.2e}"


def gradients(objective: Tensor, module: nn.Module, prefix: str) -> dict[str, Tensor]:
    """d objective / d parameter for every parameter of `module`, named as in the model."""
    params = dict(module.named_parameters())
    grads = torch.autograd.grad(objective, list(params.values()))
    return {f"{prefix}.{name}": g for name, g in zip(params, grads, strict=True)}


def decisive(model: pl.LightningModule) -> pl.LightningModule:
    """Scale the output layer of D (GAN) or of the encoder (VAE) up from its small initial
    weights, so that logits, D's probabilities and the KL term differ visibly between
    images and between terms from the first step: a scalar logged from the wrong term then
    differs from the right one by more than rounding."""
    with torch.no_grad():
        if isinstance(model, GANModule):
            model.discriminator.head.weight.mul_(50.0)
        else:
            model.encoder.head[-1].weight.mul_(10.0)
    return model


def record(model: pl.LightningModule, iterations: int, **trainer_kwargs: object) -> StepRecorder:
    """Train `model` for `iterations` batches of 8 and return what each optimizer step saw."""
    recorder = StepRecorder()
    fit(model, iterations, data=loader(n=32, batch_size=8), callbacks=[recorder], **trainer_kwargs)
    return recorder


# --- the GAN objectives, as the papers write them ---------------------------------------------


def d_objective(loss: str, real: Tensor, fake: Tensor) -> Tensor:
    """The discriminator's loss on logits D(x) (`real`) and D(G(z)) (`fake`)."""
    if loss == "nonsaturating":  # -[log D(x) + log(1 - D(G(z)))], D = sigmoid, 1 - D(l) = D(-l)
        return -(F.logsigmoid(real).mean() + F.logsigmoid(-fake).mean())
    if loss == "hinge":  # E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]
        return torch.clamp(1 - real, min=0).mean() + torch.clamp(1 + fake, min=0).mean()
    if loss == "wasserstein":  # E[D(G(z))] - E[D(x)]
        return fake.mean() - real.mean()
    if loss == "lsgan":  # 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()
    raise AssertionError(loss)


def g_objective(loss: str, fake: Tensor) -> Tensor:
    """The generator's loss on the logits D(G(z))."""
    if loss == "nonsaturating":  # -log D(G(z))
        return -F.logsigmoid(fake).mean()
    if loss in {"hinge", "wasserstein"}:  # -E[D(G(z))]
        return -fake.mean()
    if loss == "lsgan":  # 1/2 E[(D(G(z)) - 1)^2]
        return 0.5 * ((fake - 1) ** 2).mean()
    raise AssertionError(loss)


class AffineAugment(nn.Module):
    """A deterministic stand-in for DiffAugment that records what it is given.

    Affine, so an interpolate of augmented images is the augmented interpolate, and
    different enough from the identity that a missing augmentation changes every gradient.
    """

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.inputs.append(x.detach().clone())
        return 0.5 * x.flip(-1) + 0.25


def interpolation_weights(point: Tensor, real: Tensor, fake: Tensor) -> Tensor:
    """The eps of each image with point = eps * real + (1 - eps) * fake (least squares)."""
    direction = (real - fake).flatten(1)
    return ((point - fake).flatten(1) * direction).sum(1) / direction.pow(2).sum(1)


def expected_gan_gradient(
    settings: dict[str, Any], step: OptimizerStep, augment: nn.Module | None
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """The gradient of the documented objective of `step.network` at the step's weights,
    and the scalars the step should log: its loss (without penalties), the mean D
    probabilities, and each penalty unweighted."""
    model = tiny_gan(**settings)
    model.load_state_dict(step.state)
    model.train()
    G, D = model.generator, model.discriminator
    transform = augment if augment is not None else nn.Identity()
    real, labels = step.batch
    real_labels = labels if model.conditional else None
    z, fake_labels = step.generator_inputs
    loss = settings.get("loss", "nonsaturating")

    def critic(images: Tensor, y: Tensor | None) -> Tensor:
        return D(transform(images)) if y is None else D(transform(images), y)

    fake = G(z) if fake_labels is None else G(z, fake_labels)
    if step.network == "generator":
        g_loss = g_objective(loss, critic(fake, fake_labels))
        return gradients(g_loss, G, "generator"), {"train/g_loss": g_loss.item()}

    fake = fake.detach()
    real_logits, fake_logits = critic(real, real_labels), critic(fake, fake_labels)
    objective = d_objective(loss, real_logits, fake_logits)
    logged = {
        "train/d_loss": objective.item(),
        "train/d_real": torch.sigmoid(real_logits).mean().item(),  # E[D(x)]
        "train/d_fake": torch.sigmoid(fake_logits).mean().item(),  # E[D(G(z))]
    }
    if settings.get(
        "gradient_penalty"
    ):  # lambda E[(||grad D(x_hat)|| - 1)^2], x_hat on real-fake lines
        (recorded,) = step.penalty_inputs
        eps = interpolation_weights(recorded, transform(real), transform(fake)).view(-1, 1, 1, 1)
        assert ((eps >= 0) & (eps <= 1)).all() and eps.std() > 0.05  # eps ~ U[0, 1] per image
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        assert torch.allclose(transform(x_hat), recorded, atol=1e-5)  # the point D was given
        (grad,) = torch.autograd.grad(critic(x_hat, real_labels).sum(), x_hat, create_graph=True)
        gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        objective = objective + settings["gradient_penalty"] * gp
        logged["train/gp"] = gp.item()
    if settings.get("r1_gamma"):  # gamma / 2 E[||grad D(x)||^2] on real images
        x = real.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x, real_labels).sum(), x, create_graph=True)
        r1 = grad.flatten(1).pow(2).sum(1).mean()
        objective = objective + settings["r1_gamma"] / 2 * r1
        logged["train/r1"] = r1.item()
    return gradients(objective, D, "discriminator"), logged


def check_gan_steps(settings: dict[str, Any], iterations: int, stand_in: bool = False) -> list:
    """Train a tiny GAN with `settings`, compare every step's gradient with the documented
    objective's, and return the recorded steps."""
    model = tiny_gan(**settings)
    augment = None
    if stand_in:
        augment = model.augment = AffineAugment()
    recorder = record(model, iterations, log_every_n_steps=1)
    for step in recorder.steps:
        expected, _ = expected_gan_gradient(settings, step, augment)
        assert_same_gradient(step.grads, expected)
    return recorder.steps


LOSSES = ["nonsaturating", "hinge", "wasserstein", "lsgan"]
REGULARISERS = {
    "none": {},
    "gp_1": {"gradient_penalty": 1.0},
    "gp_10": {"gradient_penalty": 10.0},
    "r1_1": {"r1_gamma": 1.0},
    "r1_10": {"r1_gamma": 10.0},
}


@pytest.mark.parametrize("regulariser", list(REGULARISERS))
@pytest.mark.parametrize("loss", LOSSES)
def test_gan_backpropagates_each_loss_and_penalty(loss: str, regulariser: str) -> None:
    steps = check_gan_steps({"loss": loss, **REGULARISERS[regulariser]}, iterations=2)
    assert [s.network for s in steps] == ["discriminator", "generator"] * 2


@pytest.mark.parametrize("settings", [{"gradient_penalty": 10.0}, {"r1_gamma": 10.0}])
def test_penalty_weights_visibly_scale_the_discriminators_gradient(settings: dict) -> None:
    """The comparisons above can tell a weighted penalty from an unweighted or missing one."""
    (step, _) = check_gan_steps(settings, iterations=1)
    with_penalty, _ = expected_gan_gradient(settings, step, None)
    weight_one, _ = expected_gan_gradient({k: 1.0 for k in settings}, step, None)
    without, _ = expected_gan_gradient({}, step, None)
    for other in (weight_one, without):
        diff = sum((with_penalty[k] - other[k]).norm() ** 2 for k in other) ** 0.5
        assert diff > 1e-2 * sum(g.norm() ** 2 for g in other.values()) ** 0.5


@pytest.mark.parametrize(
    "settings", [{}, {"gradient_penalty": 10.0}, {"r1_gamma": 10.0}, {"loss": "hinge"}]
)
def test_gan_logs_what_its_step_computed(settings: dict) -> None:
    """train/d_loss (without penalties), train/g_loss, the mean D probabilities, and each
    penalty unweighted, of the one batch trained on."""
    recorder = StepRecorder()
    trainer = fit(decisive(tiny_gan(**settings)), 1, data=loader(n=8), callbacks=[recorder],
                  log_every_n_steps=1)  # fmt: skip
    expected = {}
    for step in recorder.steps:
        expected |= expected_gan_gradient(settings, step, None)[1]
    logged = {k: v.item() for k, v in trainer.callback_metrics.items() if k in expected}
    assert logged == pytest.approx(expected, rel=1e-5)
    assert len(expected) == 4 + len(settings.keys() - {"loss"})


def test_n_critic_updates_d_every_batch_and_g_every_nth() -> None:
    steps = check_gan_steps({"n_critic": 3}, iterations=6)
    assert [(s.batch_idx % 4, s.network[0]) for s in steps] == [
        (0, "d"),
        (1, "d"),
        (2, "d"),
        (2, "g"),
        (3, "d"),
        (0, "d"),
        (1, "d"),
        (1, "g"),
    ]  # fmt: skip (4 batches per epoch: the 6 iterations span two epochs)


def test_diffaugment_reaches_every_image_d_sees_in_both_updates() -> None:
    steps = check_gan_steps({"augment": ["translation"]}, iterations=2, stand_in=True)
    assert [s.network for s in steps] == ["discriminator", "generator"] * 2


def test_diffaugment_reaches_the_penalty_points_too() -> None:
    check_gan_steps({"augment": ["translation"], "gradient_penalty": 10.0}, 1, stand_in=True)
    check_gan_steps({"augment": ["translation"], "r1_gamma": 10.0}, 1, stand_in=True)


@pytest.mark.parametrize("settings", [{}, {"gradient_penalty": 10.0}, {"loss": "hinge"}])
def test_labels_reach_generator_and_discriminator(settings: dict) -> None:
    steps = check_gan_steps({"num_classes": 10, **settings}, iterations=2)
    real_labels = steps[0].batch[1]
    _, fake_labels = steps[0].generator_inputs
    assert fake_labels is not None and not torch.equal(fake_labels, real_labels)


def test_ttur_steps_each_network_with_its_own_learning_rate() -> None:
    lr_g, lr_d = 1e-4, 3e-4
    model = tiny_gan(lr_g=lr_g, lr_d=lr_d)
    d_step, g_step = record(model, 1).steps
    after = {**g_step.state, **{k: v.detach() for k, v in model.state_dict().items()}}
    for step, lr, following in ((d_step, lr_d, g_step.state), (g_step, lr_g, after)):
        for name, grad in step.grads.items():
            weight = step.state[name].clone().requires_grad_(True)
            weight.grad = grad
            adam = torch.optim.Adam([weight], lr=lr, betas=(0.5, 0.999))
            adam.step()  # Adam's first step, as the model's own optimizer took it
            torch.testing.assert_close(following[name], weight.detach(), rtol=0, atol=1e-7)


# --- the VAE objectives --------------------------------------------------------------------


def log_likelihood(likelihood: str, decoded: Tensor, x: Tensor, sigma: float) -> Tensor:
    """log p(x|z) per image: Bernoulli on (x + 1) / 2 with logits, or N(x; mean, sigma^2)."""
    if likelihood == "bernoulli":
        target = (x + 1) / 2
        per_pixel = target * F.logsigmoid(decoded) + (1 - target) * F.logsigmoid(-decoded)
    else:
        per_pixel = Normal(decoded, sigma).log_prob(x)
    return per_pixel.flatten(1).sum(1)


def expected_vae_gradient(
    settings: dict[str, Any], step: OptimizerStep
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """The gradient of the documented objective (negative ELBO with the KL weight of that
    step, or the negative IWAE bound) with the step's weights, batch and noise, and the
    scalars the step should log: train/loss is the bound itself (-ELBO, unweighted by beta,
    or -L_k), with the ELBO's terms."""
    model = tiny_vae(**settings)
    model.load_state_dict(step.state)
    model.train()
    x, labels = step.batch
    y = labels if model.conditional else None
    torch.set_rng_state(step.rng_state)  # the reparameterisation noise the step drew

    def decode(z: Tensor, y: Tensor | None) -> Tensor:
        return model.decoder(z) if y is None else model.decoder(z, y)

    mu, logvar = model.encoder(x) if y is None else model.encoder(x, y)
    q = Normal(mu, torch.exp(0.5 * logvar))
    likelihood = settings.get("likelihood", "bernoulli")
    sigma = settings.get("gaussian_sigma", 0.1)
    if settings.get("objective") == "iwae":  # -L_k, L_k = log 1/k sum_i p(x, z_i) / q(z_i | x)
        k = settings["iw_samples"]
        z = mu + torch.exp(0.5 * logvar) * torch.randn(k, *mu.shape)
        repeated_y = None if y is None else y.repeat(k)
        decoded = decode(z.flatten(0, 1), repeated_y)
        log_px = log_likelihood(likelihood, decoded, x.repeat(k, 1, 1, 1), sigma).view(k, -1)
        log_w = log_px + Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
        objective = -(torch.logsumexp(log_w, 0) - math.log(k)).mean()
        logged = {"train/loss": objective.item()}
    else:  # E_q[-log p(x|z)] + w_t KL(q(z|x) || N(0, I)), one sample
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        kl = kl_divergence(q, Normal(0.0, 1.0)).sum(1)
        beta, warmup = settings.get("beta", 1.0), settings.get("kl_warmup_steps", 0)
        weight = beta * min(1.0, (step.batch_idx + 1) / warmup) if warmup else beta
        recon = -log_likelihood(likelihood, decode(z, y), x, sigma)
        objective = (recon + weight * kl).mean()
        logged = {
            "train/loss": (recon + kl).mean().item(),
            "train/recon": recon.mean().item(),
            "train/kl": kl.mean().item(),
            "train/beta": weight,
        }
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(objective, list(params.values()))
    return dict(zip(params, grads, strict=True)), logged


VAE_CASES = {
    "elbo": {},
    "beta_4": {"beta": 4.0},
    "kl_warmup": {"beta": 2.0, "kl_warmup_steps": 3},
    "gaussian": {"likelihood": "gaussian", "gaussian_sigma": 0.5},
    "iwae": {"objective": "iwae", "iw_samples": 3},
    "iwae_gaussian": {"objective": "iwae", "iw_samples": 2, "likelihood": "gaussian"},
    "conditional": {"num_classes": 10},
    "conditional_iwae": {"num_classes": 10, "objective": "iwae", "iw_samples": 3},
}


@pytest.mark.parametrize("case", list(VAE_CASES))
def test_vae_backpropagates_its_documented_objective(case: str) -> None:
    settings = VAE_CASES[case]
    recorder = StepRecorder()
    trainer = fit(decisive(tiny_vae(**settings)), 4, data=loader(n=32), callbacks=[recorder],
                  log_every_n_steps=1)  # fmt: skip
    assert [s.batch_idx for s in recorder.steps] == [0, 1, 2, 3]
    for step in recorder.steps:
        expected, logged = expected_vae_gradient(settings, step)
        assert_same_gradient(step.grads, expected)
    got = {k: v.item() for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    assert got == pytest.approx(logged, rel=1e-5)  # the last step's scalars


def test_kl_weight_changes_the_gradient_visibly() -> None:
    """The ELBO comparison can tell beta = 4 from beta = 1 and from a dropped KL term."""
    (step,) = record(tiny_vae(beta=4.0), iterations=1).steps
    beta_four, _ = expected_vae_gradient({"beta": 4.0}, step)
    for other, _ in (expected_vae_gradient({}, step), expected_vae_gradient({"beta": 0.0}, step)):
        diff = sum((beta_four[k] - other[k]).norm() ** 2 for k in other) ** 0.5
        assert diff > 1e-2 * sum(g.norm() ** 2 for g in other.values()) ** 0.5
