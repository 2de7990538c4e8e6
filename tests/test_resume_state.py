"""Exact resume in process, for every option that carries state from one step to the next:
a run resumed from its checkpoint after the first epoch ends with the weights, the
optimiser and scheduler states, the n_critic phase, the KL warm-up and the EMA count of
the same run trained without a stop. (The kill-and-resume of the console script, mid-epoch
included, is in test_resume.py.)

An epoch is 8 batches: with n_critic = 3 the first epoch ends one batch before a G update,
so a resumed GAN that restarted its cycle would update G on other batches than the
uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from genlab.callbacks.ema import EMA
from tests.helpers.resume import EPOCHS, learning_rates, train
from tests.helpers.tiny import fit, tiny_diffusion, tiny_flow, tiny_gan, tiny_vae

HALVING = partial(torch.optim.lr_scheduler.ExponentialLR, gamma=0.5)

MODELS: dict[str, Callable[[], pl.LightningModule]] = {
    "wgan_gp_n_critic_3": lambda: tiny_gan(
        loss="wasserstein", n_critic=3, gradient_penalty=10.0, scheduler=HALVING
    ),
    "gan_diffaugment_n_critic_2": lambda: tiny_gan(
        n_critic=2, augment=["color", "translation", "cutout"], scheduler=HALVING
    ),
    "vae_kl_warmup": lambda: tiny_vae(beta=2.0, kl_warmup_steps=12, scheduler=HALVING),
    # label dropout and minibatch OT draw from the RNG that the checkpoint restores
    "cfg_flow_ot": lambda: tiny_flow(num_classes=10, coupling="ot", scheduler=HALVING),
    "cfg_diffusion_cosine": lambda: tiny_diffusion(
        num_classes=10, schedule="cosine", scheduler=HALVING
    ),
}


def ema_count(trainer: pl.Trainer) -> int:
    (ema,) = (cb for cb in trainer.callbacks if isinstance(cb, EMA))
    return int(ema._average_model.n_averaged)


@pytest.mark.parametrize("ema", [False, True], ids=["plain", "ema"])
@pytest.mark.parametrize("name", list(MODELS))
def test_a_run_resumed_after_its_first_epoch_ends_as_the_uninterrupted_run(
    name: str, ema: bool, tmp_path: Path
) -> None:
    straight, straight_trainer = train(MODELS[name], ema, tmp_path / "straight", None)
    resumed, resumed_trainer = train(
        MODELS[name], ema, tmp_path / "resumed", tmp_path / "straight" / "epoch=0.ckpt"
    )
    assert resumed_trainer.global_step == straight_trainer.global_step
    assert getattr(resumed, "iteration", None) == getattr(straight, "iteration", None)
    assert learning_rates(resumed_trainer) == learning_rates(straight_trainer)
    if ema:
        assert ema_count(resumed_trainer) == ema_count(straight_trainer) == 8 * EPOCHS
    expected = torch.load(tmp_path / "straight" / "epoch=1.ckpt", weights_only=False)
    got = torch.load(tmp_path / "resumed" / "epoch=1.ckpt", weights_only=False)
    for key, value in expected["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key
    for got_opt, expected_opt in zip(
        got["optimizer_states"], expected["optimizer_states"], strict=True
    ):
        for index, state in expected_opt["state"].items():
            for field, value in state.items():
                assert torch.equal(
                    torch.as_tensor(got_opt["state"][index][field]), torch.as_tensor(value)
                ), field


def test_a_resumed_gan_continues_its_n_critic_cycle() -> None:
    """Two batches of a cycle of three, then a resume: the third batch updates G."""
    model = tiny_gan(n_critic=3)
    fit(model, 2)
    assert model.iteration == 2
    checkpoint: dict = {}
    model.on_save_checkpoint(checkpoint)
    resumed = tiny_gan(n_critic=3)
    resumed.load_state_dict(model.state_dict())
    resumed.on_load_checkpoint(checkpoint)
    assert resumed.iteration == 2
    before = [p.clone() for p in resumed.generator.parameters()]
    fit(resumed, 1)  # a fresh trainer: only the model's own state knows the phase
    assert any(
        not torch.equal(a, b) for a, b in zip(before, resumed.generator.parameters(), strict=True)
    )


def test_the_uninterrupted_run_follows_its_schedules(tmp_path: Path) -> None:
    """What the resumed runs above must reproduce: the learning rates halve every epoch (the
    GAN steps its schedulers itself) and beta ramps over the steps across epochs."""
    for name in ("wgan_gp_n_critic_3", "vae_kl_warmup", "cfg_flow_ot"):
        _, trainer = train(MODELS[name], False, tmp_path / name, None)
        initial = [group["initial_lr"] for opt in trainer.optimizers for group in opt.param_groups]
        assert learning_rates(trainer) == pytest.approx([lr * 0.5**EPOCHS for lr in initial])

    betas: list[float] = []

    class RecordBeta(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            betas.append(pl_module.kl_weight())

    fit(tiny_vae(beta=2.0, kl_warmup_steps=12), 0, max_steps=-1, max_epochs=EPOCHS,
        callbacks=[RecordBeta()])  # fmt: skip
    assert betas == pytest.approx([2.0 * min(1.0, (step + 1) / 12) for step in range(16)])
