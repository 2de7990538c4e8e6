"""GANModule and VAEModule trained for a few real steps with Lightning's Trainer."""

from __future__ import annotations

from functools import partial

import pytest
import pytorch_lightning as pl
import torch

from genlab.errors import ConfigError
from genlab.models import GANModule
from genlab.models.optimizers import accepts_fused
from genlab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from genlab.preflight import check_model_fits
from tests.helpers.tiny import LATENT, fit, tiny_gan, tiny_vae


class CountBatches(pl.Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, *args: object) -> None:
        self.batches += 1


@pytest.mark.parametrize(("n_critic", "g_steps"), [(1, 5), (2, 2), (5, 1)])
def test_gan_max_steps_counts_iterations(n_critic: int, g_steps: int) -> None:
    counter = CountBatches()
    model = tiny_gan(n_critic=n_critic)
    trainer = fit(model, iterations=5, callbacks=[counter])
    assert counter.batches == 5
    assert trainer.global_step == 5 + g_steps
    opt_g, opt_d = trainer.optimizers
    assert opt_d.state[next(iter(model.discriminator.parameters()))]["step"].item() == 5
    assert opt_g.state[next(iter(model.generator.parameters()))]["step"].item() == g_steps


def test_discriminator_only_iterations_leave_the_generator_unchanged() -> None:
    # n_critic=2: the first iteration updates D alone; G's weights must not move.
    model = tiny_gan(n_critic=2)
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    fit(model, iterations=1)
    assert all(
        torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters(), strict=True)
    )
    assert model.iteration == 1


@pytest.mark.parametrize("make", [tiny_gan, tiny_vae])
def test_generate_is_reproducible_in_range_and_keeps_train_mode(make) -> None:
    model = make()
    model.train()
    a = model.generate(10, generator=torch.Generator().manual_seed(3), batch_size=4)
    b = model.generate(10, generator=torch.Generator().manual_seed(3))
    again = model.generate(10, generator=torch.Generator().manual_seed(3))
    assert a.shape == (10, 1, 28, 28)
    assert torch.equal(b, again)
    # other batch sizes: the same images up to float rounding (kernels differ by batch size)
    assert torch.allclose(a, b, atol=1e-5)
    assert a.min() >= -1 and a.max() <= 1
    assert model.training


def test_bad_model_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="n_critic"):
        tiny_gan(n_critic=0)
    with pytest.raises(ConfigError, match="likelihood"):
        tiny_vae(likelihood="poisson")
    with pytest.raises(ConfigError, match="learning rate must be > 0"):
        GANModule(
            generator=DCGANGenerator(latent_dim=LATENT, width=8),
            discriminator=DCGANDiscriminator(width=8),
            optimizer=partial(torch.optim.Adam, lr=0.0),
            latent_dim=LATENT,
        ).configure_optimizers()


def test_latent_size_mismatch_is_named() -> None:
    with pytest.raises(ConfigError, match="latent_dim"):
        GANModule(
            generator=DCGANGenerator(latent_dim=LATENT, width=8),
            discriminator=DCGANDiscriminator(width=8),
            optimizer=torch.optim.Adam,
            latent_dim=LATENT + 1,
        )


def test_channel_mismatch_is_named() -> None:
    with pytest.raises(ConfigError, match=r"generator makes images of shape \(1, 28, 28\)"):
        check_model_fits(tiny_gan(), (3, 28, 28))
    colour_g_grey_d = GANModule(
        generator=DCGANGenerator(latent_dim=LATENT, channels=3, width=8),
        discriminator=DCGANDiscriminator(channels=1, width=8),
        optimizer=torch.optim.Adam,
        latent_dim=LATENT,
    )
    with pytest.raises(
        ConfigError, match=r"discriminator cannot take images of shape \(3, 28, 28\)"
    ):
        check_model_fits(colour_g_grey_d, (3, 28, 28))
    with pytest.raises(ConfigError, match="encoder cannot take images"):
        check_model_fits(tiny_vae(), (3, 28, 28))


class StepRecorder(pl.loggers.Logger):
    """Records which keys each logged step carries."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, set[str]]] = []

    @property
    def name(self) -> str:
        return "recorder"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params: object) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.rows.append((step, set(metrics)))


@pytest.mark.parametrize(("make", "key"), [(tiny_gan, "train/d_loss"), (tiny_vae, "train/loss")])
def test_training_scalars_reach_the_logger_on_every_written_step(make, key: str) -> None:
    # The models skip self.log on steps Lightning would not write; the written ones
    # must still carry every scalar.
    recorder = StepRecorder()
    fit(make(), iterations=6, log_every_n_steps=2, logger=recorder)
    logged = [step for step, keys in recorder.rows if key in keys]
    assert len(logged) == 3, recorder.rows


def test_fused_optimizer_only_where_the_class_has_one() -> None:
    assert accepts_fused(partial(torch.optim.Adam, lr=1e-3))
    assert not accepts_fused(partial(torch.optim.LBFGS, lr=1e-3))
    optimizer = tiny_gan().configure_optimizers()[0]
    assert not optimizer.defaults.get("fused")  # CPU parameters: the default kernels


@pytest.mark.slow  # torch.compile builds C++ kernels: half a minute
def test_compile_trains_and_keeps_checkpoint_keys() -> None:
    # model.compile=true on the CPU: torch.compile (inductor, needs a C++ compiler) for a
    # few real steps; nn.Module.compile leaves parameter names as they were.
    torch._dynamo.reset()
    model = tiny_gan(compile=True)
    keys = set(model.state_dict())
    trainer = fit(model, iterations=2, log_every_n_steps=1)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0
    assert set(model.state_dict()) == keys
    assert all(torch.isfinite(v) for v in trainer.callback_metrics.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_optimizers_are_fused_unless_configured() -> None:
    model = tiny_gan().cuda()
    assert all(opt.defaults["fused"] for opt in model.configure_optimizers())
    model.optimizer_factory = partial(torch.optim.Adam, lr=1e-3, foreach=True)
    assert not any(opt.defaults.get("fused") for opt in model.configure_optimizers())
