"""What each part of a run sees: augmentation only inside training steps, labels in every
conditional generation, and the averaged weights wherever `callbacks=ema` promises them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from genlab.augment import DiffAugment
from genlab.callbacks import SampleGrid
from genlab.metrics import GenerativeMetrics
from genlab.train import train
from tests.helpers.runs import TINY_RUN, MakeConfig
from tests.helpers.tiny import LATENT, fit, loader, tiny_gan


def test_diffaugment_runs_only_inside_training_steps(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sample grids, interpolations, validation and FID see G's images as they are."""
    calls: list[bool] = []  # per call: inside a training step (gradients on)?
    augment = DiffAugment.forward

    def recorded(self: DiffAugment, x: Tensor) -> Tensor:
        calls.append(torch.is_grad_enabled() and not torch.is_inference_mode_enabled())
        return augment(self, x)

    monkeypatch.setattr(DiffAugment, "forward", recorded)
    cfg = make_config(overrides=["experiment=diffaugment_mnist", *TINY_RUN, "logger=csv"])
    train(cfg)
    assert (Path(cfg.paths.output_dir) / "samples" / "epoch_0000.png").is_file()
    assert calls and all(calls), f"{calls.count(False)} augmentations outside training steps"
    assert len(calls) == 3 * 3  # 3 batches: D's real and fake, G's fake


def test_diffaugment_changes_both_images_d_trains_on() -> None:
    """With the real DiffAugment, no image D sees in training is a raw real or fake image."""
    model = tiny_gan(augment=["translation", "cutout"])
    seen: list[Tensor] = []
    fakes: list[Tensor] = []
    model.discriminator.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach()))
    model.generator.register_forward_hook(lambda *args: fakes.append(args[2].detach()))
    data = loader(n=8, batch_size=8)
    fit(model, iterations=1, data=data)
    real = next(iter(data))[0]
    assert len(seen) == 3  # D(T(x)), D(T(G(z))) for D's update, D(T(G(z))) for G's
    for images in seen:
        for raw in (real, fakes[0]):
            assert not torch.isclose(images, raw).flatten(1).all(1).any()


def test_conditional_generation_decodes_the_labels_it_is_given() -> None:
    model = tiny_gan(num_classes=10).eval()
    seeded = torch.Generator().manual_seed(0)
    threes = model.generate(
        4, generator=torch.Generator().manual_seed(0), labels=torch.full((4,), 3)
    )
    fives = model.generate(
        4, generator=torch.Generator().manual_seed(0), labels=torch.full((4,), 5)
    )
    z = torch.randn(4, LATENT, generator=seeded)
    with torch.no_grad():
        assert torch.allclose(threes, model.generator(z, torch.full((4,), 3)).clamp(-1, 1))
    assert not torch.allclose(threes, fives)


def test_unlabelled_generation_of_a_conditional_model_draws_every_class() -> None:
    """FID of a conditional model compares with all the data: labels are drawn uniformly."""
    model = tiny_gan(num_classes=10)
    labels: list[Tensor] = []
    model.generator.register_forward_pre_hook(lambda _, args: labels.append(args[1]))
    model.generate(2000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(torch.cat(labels), minlength=10)
    assert counts.min() > 150 and counts.max() < 250  # 200 each, up to sampling noise


def test_metrics_and_sample_grids_see_the_averaged_weights(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With callbacks=ema, FID and the sample grid are of the EMA weights, as checkpoints are."""
    seen: dict[str, dict[str, Tensor]] = {}
    for callback in (GenerativeMetrics, SampleGrid):
        original = callback.on_validation_epoch_end

        def spy(self, trainer, pl_module, _original=original, _name=callback.__name__) -> None:
            seen[_name] = {k: v.clone() for k, v in pl_module.generator.state_dict().items()}
            _original(self, trainer, pl_module)

        monkeypatch.setattr(callback, "on_validation_epoch_end", spy)
    cfg = make_config(
        overrides=[*TINY_RUN, "logger=csv", "callbacks=ema", "callbacks.ema.decay=0.5"]
    )
    train(cfg)
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    averaged = {k[len("generator.") :]: v for k, v in ckpt["state_dict"].items()
                if k.startswith("generator.")}  # fmt: skip
    current = ckpt["current_model_state"]
    key = "project.0.weight"
    assert not torch.equal(averaged[key], current[f"generator.{key}"])
    assert seen.keys() == {"GenerativeMetrics", "SampleGrid"}
    for name, weights in seen.items():
        assert all(torch.equal(weights[k], averaged[k]) for k in averaged), name
