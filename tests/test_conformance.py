"""The family contract, checked on every option of conf/model/ (enumerated from the config
group: a new family passes or fails by its config alone): images of the data's shape in
[-1, 1], seeded determinism across batch sizes, NFE counted equals NFE declared, guidance
identities, sampling under bf16 autocast, exact resume, and an export round-trip where the
sampler is deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import Tensor

from genlab.errors import ConfigError
from genlab.evaluation.standalone import export_generator, networks_used_by_sample
from genlab.models.base import GenerativeModule
from tests.helpers.resume import learning_rates, train
from tests.helpers.runs import compose_config, model_options

FAMILIES = model_options()
SHAPE = (1, 28, 28)  # the embedded digits, every family's default data


def build(family: str, tmp_path: Path, num_classes: int = 0) -> GenerativeModule:
    """The family's model as its config builds it, at 8 channels where its net has a width
    and 3 sampling steps where it samples iteratively, in eval mode."""
    overrides = [f"model={family}", f"model.num_classes={num_classes}"]
    cfg = compose_config("train", overrides, tmp_path)
    if "width" in cfg.model.get("net", {}):
        overrides.append("model.net.width=8")
    if "sampling" in cfg.model:
        overrides.append("model.sampling.steps=3")
    torch.manual_seed(0)
    model = instantiate(compose_config("train", overrides, tmp_path).model)
    with torch.no_grad():  # zero-initialised output layers would make every sample the same
        for weight in model.parameters():
            if weight.dim() > 1 and not weight.any():
                weight.normal_(0.0, 0.05)
    return model.eval()


def draw(model: GenerativeModule, n: int, batch_size: int, seed: int = 0, **sampling) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return model.generate(n, generator=generator, batch_size=batch_size, **sampling)


@pytest.mark.parametrize("family", FAMILIES)
def test_images_have_the_datas_shape_and_range_and_follow_the_seed(family, tmp_path) -> None:
    model = build(family, tmp_path)
    images = draw(model, 6, batch_size=6)
    assert images.shape == (6, *SHAPE) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0
    # any batch size: the same images up to rounding (6e-5 at most, amplified by the steps)
    assert torch.allclose(draw(model, 6, batch_size=2), images, atol=2e-4)
    assert not torch.allclose(draw(model, 6, batch_size=6, seed=1), images)


@pytest.mark.parametrize("family", FAMILIES)
def test_network_evaluations_counted_equal_those_declared(family, tmp_path) -> None:
    model = build(family, tmp_path)
    z = torch.zeros(2, *model.noise_shape)
    used = networks_used_by_sample(model, model.default_sampling, z)
    calls: list[int] = []
    for name in used:
        getattr(model, name).register_forward_hook(lambda *_: calls.append(1))
    draw(model, 6, batch_size=3)
    assert len(calls) == 2 * model.function_evaluations() * len(used)  # 2 batches


@pytest.mark.parametrize("family", FAMILIES)
def test_guidance_zero_is_unconditional_and_one_conditional(family, tmp_path) -> None:
    model = build(family, tmp_path, num_classes=10)
    noise = torch.randn(4, *model.noise_shape, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([1, 2, 3, 4])
    if "guidance" not in model.default_sampling:  # a one-pass family: no guidance to take
        with pytest.raises(ConfigError, match="no sampling option guidance"):
            model.generate(4, labels=labels, guidance=0.0)
        return
    with torch.no_grad():
        conditional = model.sample(noise, labels, guidance=1.0)
        unconditional = model.sample(noise, None)
        assert torch.equal(model.sample(noise, labels, guidance=0.0), unconditional)
        assert not torch.allclose(conditional, unconditional)
        guided = model.sample(noise, labels, guidance=2.0)
    assert not torch.allclose(guided, conditional)
    assert model.last_function_evaluations == 2 * model.function_evaluations(guidance=1.0)


@pytest.mark.parametrize("family", FAMILIES)
def test_sampling_runs_under_bf16_autocast(family, tmp_path) -> None:
    model = build(family, tmp_path)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        images = draw(model, 4, batch_size=4)
    assert images.dtype == torch.float32 and torch.isfinite(images).all()
    # bf16 rounding only: 1e-4 to 5e-3 on average (a rounding can flip a clipped pixel)
    assert (images - draw(model, 4, batch_size=4)).abs().mean() < 0.02


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_a_run_resumed_after_its_first_epoch_ends_as_the_uninterrupted_run(family, tmp_path):
    def make_model() -> pl.LightningModule:
        return build(family, tmp_path / "config", num_classes=10).train()

    straight, straight_trainer = train(make_model, False, tmp_path / "straight", None)
    resumed, resumed_trainer = train(
        make_model, False, tmp_path / "resumed", tmp_path / "straight" / "epoch=0.ckpt"
    )
    assert resumed_trainer.global_step == straight_trainer.global_step
    assert learning_rates(resumed_trainer) == learning_rates(straight_trainer)
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_export_round_trip_where_sampling_is_deterministic(family, tmp_path) -> None:
    model = build(family, tmp_path)
    if not model.deterministic_sampling():
        with pytest.raises(ConfigError, match="samples with fresh noise"):
            export_generator(model, tmp_path / "generator.pt2")
        return
    path = export_generator(model, tmp_path / "generator.pt2")  # checks 5 noises itself
    z = torch.randn(3, *model.noise_shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model.sample(z).clamp(-1, 1)
    assert torch.allclose(torch.export.load(path).module()(z), expected, atol=1e-5)
