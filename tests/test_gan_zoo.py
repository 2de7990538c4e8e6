"""The GAN variants: penalties on hand-checked values, spectral norm,
class-conditional nets, EMA, and every GAN experiment recipe trained for a few steps."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.nn.utils import parameters_to_vector

from genlab import losses
from genlab.callbacks.ema import EMA, ema_avg_fn, ramped_decay
from genlab.checkpoints import load_model
from genlab.errors import ConfigError
from genlab.models import GANModule
from genlab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from genlab.nets.layers import ConditionalBatchNorm2d
from genlab.nets.resnet import ResNetDiscriminator, ResNetGenerator
from genlab.preflight import check_model_fits
from genlab.train import train, weight_averaging_last
from genlab.visualize import class_per_row
from tests.helpers.fake_datasets import write_cifar10
from tests.helpers.runs import TINY_RUN, TINY_RUN_NO_METRICS, MakeConfig
from tests.helpers.tiny import fit, tiny_gan

# A few real steps, CSV logs, no FID: what each recipe needs to show it trains.
QUICK = TINY_RUN_NO_METRICS


# --- penalties ----------------------------------------------------------------------------


def linear_critic(weight: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """D(x) = <w, x>: its input gradient is w everywhere."""
    return lambda x: (x.flatten(1) * weight).sum(dim=1)


def test_gradient_penalty_of_a_linear_critic_is_hand_computed() -> None:
    # ||grad|| = ||(3, 4)|| = 5 at every interpolate: (5 - 1)^2 = 16.
    weight = torch.tensor([3.0, 4.0])
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    assert losses.gradient_penalty(linear_critic(weight), real, fake).item() == pytest.approx(16.0)
    # a 1-Lipschitz critic with unit gradient pays nothing
    unit = torch.tensor([0.6, 0.8])
    assert losses.gradient_penalty(linear_critic(unit), real, fake).item() == pytest.approx(0.0)


def test_r1_penalty_is_the_squared_gradient_norm_on_real_images() -> None:
    # D(x) = sum x^2: grad = 2x; for x = (1, 2) and (0, 3): ||2x||^2 = 20 and 36, mean 28.
    real = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    assert losses.r1_penalty(lambda x: x.pow(2).sum(dim=1), real).item() == pytest.approx(28.0)


def test_penalties_keep_the_graph_so_they_train_the_critic() -> None:
    weight = torch.tensor([3.0, 4.0], requires_grad=True)
    losses.gradient_penalty(linear_critic(weight), torch.randn(4, 2), torch.randn(4, 2)).backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 4 * (0.6, 0.8)
    assert weight.grad.tolist() == pytest.approx([4.8, 6.4])


def test_negative_penalty_weights_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"gradient_penalty and model\.r1_gamma must be >= 0"):
        tiny_gan(r1_gamma=-1.0)


# --- spectral normalisation and conditional networks -------------------------------------


@pytest.mark.parametrize(
    ("make_d", "size"),
    [
        (lambda: DCGANDiscriminator(width=8, batch_norm=False, spectral_norm=True), 28),
        (lambda: ResNetDiscriminator(channels=1, width=8, spectral_norm=True), 32),
    ],
)
def test_spectral_norm_bounds_each_weight_by_one(
    make_d: Callable[[], torch.nn.Module], size: int
) -> None:
    d = make_d()
    for _ in range(30):  # power iterations run in training-mode forward passes
        d(torch.randn(2, 1, size, size))
    d.eval()
    for module in d.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            sigma = torch.linalg.matrix_norm(module.weight.flatten(1), ord=2)
            assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_projection_discriminator_and_conditional_generators_use_the_label() -> None:
    torch.manual_seed(0)
    z = torch.randn(1, 8).repeat(2, 1)
    labels = torch.tensor([0, 1])
    for generator, image_size in [
        (DCGANGenerator(latent_dim=8, width=8, num_classes=10), 28),
        (ResNetGenerator(latent_dim=8, channels=1, width=8, num_classes=10), 32),
    ]:
        for module in generator.modules():  # class gains start at 1: make the classes differ
            if isinstance(module, ConditionalBatchNorm2d):
                torch.nn.init.normal_(module.bias.weight)
        images = generator.train()(z, labels)
        assert images.shape == (2, 1, image_size, image_size)
        assert not torch.allclose(images[0], images[1])  # same z, different class
    d = DCGANDiscriminator(width=8, num_classes=10).eval()
    x = torch.randn(1, 1, 28, 28).repeat(2, 1, 1, 1)
    logits = d(x, labels)
    assert logits[0] != logits[1]
    with pytest.raises(ValueError, match="class-conditional"):
        d(x)


def test_conditional_gan_generates_requested_classes_and_checks_labels() -> None:
    model = GANModule(
        generator=DCGANGenerator(latent_dim=8, width=8, num_classes=10),
        discriminator=DCGANDiscriminator(width=8, num_classes=10),
        optimizer=partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999)),
        latent_dim=8,
        num_classes=10,
    )
    check_model_fits(model, (1, 28, 28))
    fit(model, iterations=2)
    images = model.generate(
        4, generator=torch.Generator().manual_seed(0), labels=torch.tensor([1, 1, 2, 2])
    )
    assert images.shape == (4, 1, 28, 28)
    with pytest.raises(ConfigError, match=r"labels must lie in 0\.\.9"):
        model.generate(2, labels=torch.tensor([3, 10]))
    with pytest.raises(ConfigError, match="model is unconditional"):
        tiny_gan().generate(2, labels=torch.tensor([0, 1]))


def test_conditional_model_with_unconditional_nets_fails_in_one_line() -> None:
    message = r"model\.generator\.num_classes=0 but model\.num_classes=10"
    with pytest.raises(ConfigError, match=message):
        GANModule(
            generator=DCGANGenerator(latent_dim=8, width=8),
            discriminator=DCGANDiscriminator(width=8),
            optimizer=partial(torch.optim.Adam, lr=2e-4),
            latent_dim=8,
            num_classes=10,
        )


# --- EMA ----------------------------------------------------------------------------------


def test_weight_averaging_runs_after_the_callbacks_that_sample() -> None:
    ema = pl.callbacks.EMAWeightAveraging()
    sampler, checkpoint = pl.Callback(), pl.callbacks.ModelCheckpoint()
    assert weight_averaging_last([ema, sampler, checkpoint]) == [sampler, checkpoint, ema]


def test_ema_decay_ramps_up_to_its_ceiling() -> None:
    # min(decay, (1 + n) / (10 + n)): 1/10, 2/11, 91/100, then the ceiling.
    assert ramped_decay(0.999, 0).item() == pytest.approx(0.1)
    assert ramped_decay(0.999, 1).item() == pytest.approx(2 / 11)
    assert ramped_decay(0.999, torch.tensor(90)).item() == pytest.approx(0.91)
    assert ramped_decay(0.99, 890).item() == pytest.approx(0.99)
    assert ramped_decay(0.99, 10_000).item() == pytest.approx(0.99)


def test_ema_with_the_ramp_forgets_the_first_weights() -> None:
    """One weight at 1, then 20 updates towards 0: the first value keeps the product of
    the betas, prod_{n=1..20} (1 + n) / (10 + n) = 10! 21! / 30! = 7.0e-7 of the average
    (without the ramp 0.999^20 = 0.98)."""
    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.ones_(net.weight)
    average = torch.optim.swa_utils.AveragedModel(net, avg_fn=ema_avg_fn(0.999))
    average.update_parameters(net)  # the first update copies
    torch.nn.init.zeros_(net.weight)
    for _ in range(20):
        average.update_parameters(net)
    assert average.module.weight.item() == pytest.approx(6.99e-7, rel=0.01)


class RawWeights(pl.Callback):
    """Keeps the trained generator's weights at the end of training, before EMA (listed
    after it) copies the average in."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.weights = parameters_to_vector(pl_module.generator.parameters()).detach()


def test_ema_callback_averages_recent_weights_in_a_short_run() -> None:
    """After 60 iterations with decay 0.999, the average must have moved from the initial
    weights nearly as far as training did (without the ramp it keeps 0.999^59 = 94% of the
    first iteration's weights and moves about a tenth as far)."""
    torch.manual_seed(0)
    model, raw = tiny_gan(), RawWeights()
    initial = parameters_to_vector(model.generator.parameters()).detach().clone()
    fit(model, iterations=60, callbacks=[raw, EMA(decay=0.999)])
    averaged = parameters_to_vector(model.generator.parameters()).detach()
    assert not torch.equal(averaged, raw.weights)  # the average, not the trained weights
    moved = (averaged - initial).norm() / (raw.weights - initial).norm()
    assert moved > 0.5, f"the average moved {moved:.2f} of the way"


def test_ema_decay_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"callbacks\.ema\.decay must be in \[0, 1\)"):
        EMA(decay=1.0)


def ema_run(make_config: MakeConfig, decay: float, extra: list[str] | None = None) -> Path:
    cfg = make_config(
        overrides=[*QUICK, "callbacks=ema", f"callbacks.ema.decay={decay}"] + (extra or [])
    )
    train(cfg)
    return Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"


def test_ema_checkpoint_holds_the_average_and_sampling_uses_it(make_config: MakeConfig) -> None:
    ckpt_path = ema_run(make_config, decay=0.9)
    ckpt = torch.load(ckpt_path, weights_only=False)
    averaged, current = ckpt["state_dict"], ckpt["current_model_state"]
    key = "generator.project.0.weight"
    assert not torch.equal(averaged[key], current[key])  # two different weight sets are kept
    model, _ = load_model(ckpt_path)
    assert torch.equal(model.state_dict()[key], averaged[key])  # genlab-sample/eval see the EMA


def test_ema_with_zero_decay_is_the_current_weights(make_config: MakeConfig) -> None:
    ckpt = torch.load(ema_run(make_config, decay=0.0), weights_only=False)
    for key, value in ckpt["current_model_state"].items():
        if value.is_floating_point():
            assert torch.equal(ckpt["state_dict"][key], value), key


def test_an_ema_checkpoint_resumes_with_ema_without_asking(make_config: MakeConfig) -> None:
    """The checkpoint's config brings callbacks=ema back, so training goes on from the
    trained weights kept beside the average, not from the average."""
    ckpt_path = ema_run(make_config, decay=0.9)
    steps = torch.load(ckpt_path, weights_only=False)["global_step"]
    train(make_config(overrides=[*QUICK, f"ckpt_path={ckpt_path}", "trainer.max_epochs=2"]))
    resumed = torch.load(ckpt_path, weights_only=False)
    assert resumed["global_step"] > steps
    assert "current_model_state" in resumed  # still averaging
    assert resumed["genlab_config"]["callbacks"]["ema"]["decay"] == 0.9


# --- every GAN recipe trains --------------------------------------------------------------

TINY_NETS = ["model.generator.width=8", "model.discriminator.width=8"]

GAN_EXPERIMENTS = [
    "wgan_gp_mnist",
    "hinge_sn_mnist",
    "lsgan_mnist",
    "r1_mnist",
    "ttur_mnist",
    "ema_gan_mnist",
    "cgan_mnist",
    "diffaugment_mnist",
]


@pytest.mark.parametrize("experiment", GAN_EXPERIMENTS)
def test_gan_experiment_trains_a_few_steps(make_config: MakeConfig, experiment: str) -> None:
    with_fid = experiment == "cgan_mnist"  # FID of a conditional G: labels drawn uniformly
    run = [*TINY_RUN, "logger=csv"] if with_fid else QUICK
    cfg = make_config(overrides=[f"experiment={experiment}", *run, *TINY_NETS])
    fid = train(cfg)
    assert (fid is not None) == with_fid
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] > 0
    assert all(v.isfinite().all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_sngan_resnet_cifar10_recipe_trains_a_few_steps(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    write_cifar10(data_dir)
    cfg = make_config(
        overrides=[
            "experiment=sngan_resnet_cifar10",
            *QUICK,
            *TINY_NETS,
            "trainer.max_steps=3",
            "data.verify_checksums=false",
            "data.batch_size=8",
            "model.num_classes=10",
        ],
        data_dir=data_dir,
    )
    train(cfg)
    model, _ = load_model(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert model.generate(2, labels=torch.tensor([0, 9])).shape == (2, 3, 32, 32)


def test_grids_of_a_conditional_model_show_one_class_per_row() -> None:
    model = GANModule(
        generator=DCGANGenerator(latent_dim=8, width=8, num_classes=2),
        discriminator=DCGANDiscriminator(width=8, num_classes=2),
        optimizer=partial(torch.optim.Adam, lr=2e-4),
        latent_dim=8,
        num_classes=2,
    )
    rows = class_per_row(model, n=24, per_row=8).view(3, 8)  # sample grids, interpolation strips
    assert rows.tolist() == [[0] * 8, [1] * 8, [0] * 8]
    assert class_per_row(tiny_gan(), n=24, per_row=8) is None
