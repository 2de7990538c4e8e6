"""The VAE variants: IWAE objective, beta-VAE and conditional VAE recipes, ex-post GMM latents."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from torch import Tensor
from torchvision.io import read_image
from torchvision.utils import make_grid

from genlab.checkpoints import load_model
from genlab.data import MNISTEmbeddedDataModule
from genlab.errors import ConfigError
from genlab.eval import evaluate
from genlab.losses import iwae_bound
from genlab.models import VAEModule
from genlab.models.latent_gmm import LatentGMM, encoded_means, fit_latent_gmm
from genlab.nets.conv_vae import ConvDecoder, ConvEncoder
from genlab.sample import sample
from genlab.train import train
from tests.helpers.cli import BIN, run
from tests.helpers.runs import TINY_RUN, compose_config

SMALL_NETS = [
    f"model.{net}.{key}={value}"
    for net in ("encoder", "decoder")
    for key, value in (("width", 8), ("hidden", 32))
]
FAST = [*TINY_RUN, "trainer.max_steps=3", "logger=csv", "callbacks.sample_grid.n=8"]


# --- the IWAE loss on hand-checked values ---------------------------------------------------


def test_iwae_with_one_sample_is_the_negative_elbo() -> None:
    log_w = torch.tensor([[-3.0, -1.5]])  # k = 1: log w = log p(x, z) - log q(z|x), a 1-sample ELBO
    assert torch.allclose(-iwae_bound(log_w), torch.tensor([3.0, 1.5]))


def test_iwae_bound_of_two_weights_is_their_log_mean() -> None:
    log_w = torch.log(torch.tensor([[1.0], [3.0]]))  # w = 1 and 3: L_2 = log((1 + 3) / 2) = log 2
    assert iwae_bound(log_w).item() == pytest.approx(math.log(2.0))
    assert iwae_bound(log_w + 100.0).item() == pytest.approx(100.0 + math.log(2.0))  # no overflow


def test_iwae_gradient_weights_each_sample_by_its_normalised_weight() -> None:
    """Burda et al. 2016, eq. 14: d(-L_k)/d(log w_i) = -w_i / sum_j w_j = -(1/4, 3/4)."""
    log_w = torch.log(torch.tensor([[1.0], [3.0]])).requires_grad_()
    (-iwae_bound(log_w)).sum().backward()
    assert torch.allclose(log_w.grad, torch.tensor([[-0.25], [-0.75]]))


def tiny_vae(num_classes: int = 0, **kwargs: object) -> VAEModule:
    return VAEModule(
        encoder=ConvEncoder(latent_dim=4, width=8, hidden=32, num_classes=num_classes),
        decoder=ConvDecoder(latent_dim=4, width=8, hidden=32, num_classes=num_classes),
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        latent_dim=4,
        num_classes=num_classes,
        **kwargs,
    )


def test_bad_vae_objective_settings_fail_in_one_line() -> None:
    with pytest.raises(ConfigError, match="objective='iwea' is unknown"):
        tiny_vae(objective="iwea")
    with pytest.raises(ConfigError, match="iwae objective does not have"):
        tiny_vae(objective="iwae", beta=4.0)
    with pytest.raises(ConfigError, match="iw_samples >= 1"):
        tiny_vae(objective="iwae", iw_samples=0)
    with pytest.raises(ConfigError, match=r"encoder\.num_classes=10 but model\.num_classes=0"):
        VAEModule(
            encoder=ConvEncoder(latent_dim=4, num_classes=10),
            decoder=ConvDecoder(latent_dim=4),
            optimizer=partial(torch.optim.Adam, lr=1e-3),
            latent_dim=4,
        )


# --- every recipe composes and trains ------------------------------------------------------


def train_recipe(experiment: str, run_dir: Path) -> Path:
    """Train `experiment` for 3 steps in `run_dir` (small VAE nets); return its last checkpoint."""
    vae_nets = SMALL_NETS if experiment != "quickstart" else []
    cfg = compose_config("train", [f"experiment={experiment}", *FAST, *vae_nets], run_dir)
    train(cfg)
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def cvae_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cvae_mnist recipe trained for 3 steps (and its reconstruction panel drawn)."""
    run_dir = tmp_path_factory.mktemp("cvae")
    ckpt = train_recipe("cvae_mnist", run_dir)
    assert (run_dir / "samples" / "reconstruction_0000.png").is_file()
    return ckpt


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        ("beta_vae_mnist", {"beta": 4.0, "latent_dim": 10, "objective": "elbo"}),
        ("iwae_mnist", {"objective": "iwae", "iw_samples": 5, "latent_dim": 50}),
    ],
)
def test_recipe_trains_a_few_steps(experiment: str, expected: dict, tmp_path: Path) -> None:
    ckpt = train_recipe(experiment, tmp_path)
    model, run_cfg = load_model(ckpt)
    assert {key: getattr(model, key) for key in expected} == expected  # what the module got
    assert run_cfg.data._target_.endswith("MNISTEmbeddedDataModule")
    assert run_cfg.metrics.extractor == "lenet" and run_cfg.trainer.accelerator == "cpu"
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "val/loss", "val/elbo", "val/fid_lenet"} <= set(header)
    if expected["objective"] == "iwae":
        assert "val/iwae_bound" in header


# --- the conditional VAE -------------------------------------------------------------------


def test_cvae_generates_the_requested_classes(cvae_checkpoint: Path) -> None:
    model, run_cfg = load_model(cvae_checkpoint)
    assert run_cfg.model.num_classes == 10 and model.conditional
    images = model.generate(
        4, generator=torch.Generator().manual_seed(0), labels=torch.tensor([0, 3, 3, 9])
    )
    assert images.shape == (4, 1, 28, 28)
    z = torch.randn(1, model.latent_dim).repeat(2, 1)
    three, seven = model.sample(z, torch.tensor([3, 7]))
    assert not torch.allclose(three, seven)  # the label reaches the decoder
    with pytest.raises(ConfigError, match=r"labels must lie in 0\.\.9"):
        model.generate(2, labels=torch.tensor([3, 10]))
    with pytest.raises(ConfigError, match="expected 2 labels"):
        model.generate(2, labels=torch.tensor([3]))


def test_sample_labels_makes_that_class(
    cvae_checkpoint: Path, make_config: Callable[..., DictConfig]
) -> None:
    cfg = make_config("sample", [f"ckpt_path={cvae_checkpoint}", "n=8", "labels=3"])
    written = sample(cfg)
    model, _ = load_model(cvae_checkpoint)
    # the decoder's Bernoulli means for the seed's prior latents, each with label 3
    z = torch.randn(8, model.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        threes = torch.sigmoid(model.decoder(z, torch.full((8,), 3))) * 2 - 1
        fives = torch.sigmoid(model.decoder(z, torch.full((8,), 5))) * 2 - 1
    grid = read_image(str(written)).float() / 255
    expected = make_grid(threes, nrow=8, normalize=True, value_range=(-1, 1))
    assert torch.allclose(grid, expected, atol=1 / 255)
    other = make_grid(fives, nrow=8, normalize=True, value_range=(-1, 1))
    assert not torch.allclose(grid, other, atol=1 / 255)


# --- the ex-post Gaussian mixture ----------------------------------------------------------


def test_latent_gmm_samples_match_the_latents_it_was_fitted_on() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[3.0, 0.0, -1.0], [-2.0, 1.0, 4.0]])
    latents = centres[torch.arange(2000) % 2] + 0.3 * torch.randn(2000, 3, generator=generator)
    gmm = LatentGMM.fit(latents, components=2, seed=0)
    z = gmm(4000, generator=torch.Generator().manual_seed(1))
    assert z.shape == (4000, 3)
    assert torch.allclose(z.mean(0), latents.mean(0), atol=0.1)
    assert torch.allclose(z.std(0), latents.std(0), rtol=0.05)
    assert torch.equal(z, gmm(4000, generator=torch.Generator().manual_seed(1)))  # reproducible
    with pytest.raises(ConfigError, match="gmm_components must lie in"):
        LatentGMM.fit(latents[:5], components=10)


def class_latents(n: int = 3000) -> tuple[Tensor, Tensor, Tensor]:
    """Latents of three classes around three centres (the third class is rarer): z, y, centres."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 5.0]])
    labels = torch.tensor([0, 1, 0, 1, 2]).repeat(n // 5)
    latents = centres[labels] + 0.5 * torch.randn(len(labels), 2, generator=generator)
    return latents, labels, centres


def test_class_conditional_gmm_draws_each_label_from_its_own_class() -> None:
    latents, labels, centres = class_latents()
    gmm = LatentGMM.fit(latents, components=2, seed=0, labels=labels, num_classes=3)
    wanted = torch.tensor([2, 0, 1]).repeat(1000)
    z = gmm(3000, wanted, torch.Generator().manual_seed(1))
    for c in range(3):
        assert torch.allclose(z[wanted == c].mean(0), centres[c], atol=0.1)
        assert torch.allclose(z[wanted == c].std(0), torch.full((2,), 0.5), rtol=0.1)
    assert torch.equal(z, gmm(3000, wanted, torch.Generator().manual_seed(1)))  # reproducible
    # without labels: each class with its training frequency (2:2:1), i.e. the pooled latents
    pooled = gmm(5000, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(pooled.mean(0), latents.mean(0), atol=0.2)


def test_class_conditional_gmm_needs_every_class_in_the_training_labels() -> None:
    latents, labels, _ = class_latents()
    with pytest.raises(ConfigError, match="fewer than 2 images of class 3"):
        LatentGMM.fit(latents, components=2, labels=labels, num_classes=4)
    with pytest.raises(ConfigError, match=r"must lie in 0\.\.1"):
        LatentGMM.fit(latents, components=2, labels=labels, num_classes=2)
    with pytest.raises(ConfigError, match="fewer than 2 images of class 2"):
        LatentGMM.fit(latents[:6], components=3, labels=labels[:6], num_classes=3)  # 3, 2, 1
    few = LatentGMM.fit(latents[:10], components=3, labels=labels[:10], num_classes=3)
    assert [len(m.weights) for m in few.mixtures] == [3, 3, 2]  # at most one per image


def test_gmm_fitted_to_a_cvaes_training_latents_per_class(cvae_checkpoint: Path) -> None:
    model, _ = load_model(cvae_checkpoint)
    datamodule = MNISTEmbeddedDataModule(data_dir="unused")
    labels = datamodule.real_labels("train")
    means = encoded_means(model, datamodule.real_images("train"), labels)
    gmm = fit_latent_gmm(model, datamodule, components=3, seed=0)
    assert len(gmm.mixtures) == model.num_classes
    wanted = torch.full((2000,), 7)
    z = gmm(2000, wanted, torch.Generator().manual_seed(0))
    sevens = means[labels == 7]
    assert z.shape == (2000, model.latent_dim)
    assert torch.allclose(z.mean(0), sevens.mean(0), atol=0.1 * sevens.std(0).max().item())
    model.latent_draw = gmm  # generate hands its labels to the mixture
    images = model.generate(
        4, generator=torch.Generator().manual_seed(0), labels=torch.full((4,), 7)
    )
    expected_z = gmm(4, torch.full((4,), 7), torch.Generator().manual_seed(0)).to(model.device)
    assert torch.allclose(images, model.sample(expected_z, torch.full((4,), 7)).clamp(-1, 1))


def test_eval_with_gmm_latents_reports_both_fids(
    cvae_checkpoint: Path, make_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_config(
        "eval",
        [f"ckpt_path={cvae_checkpoint}", "latents=gmm", "gmm_components=3",
         "metrics.n_samples=200", "iw_samples=2"],
    )  # fmt: skip
    evaluate(cfg)
    results = json.loads(Path(cfg.out_file).read_text())
    assert results["latents"] == "gmm" and results["gmm_components"] == 3
    for key in ("fid", "kid_mean", "precision", "recall"):
        assert math.isfinite(results[key]) and math.isfinite(results[f"{key}_gmm"])
    assert results["fid"] != results["fid_gmm"]  # two latent draws, two sets of images
    assert results["seconds"]["gmm_fit"] > 0
    assert math.isfinite(results["iw_nll_nats"])  # the conditional bound, with labels


@pytest.mark.slow
def test_gmm_latents_on_a_gan_fail_in_one_line(tmp_path: Path) -> None:
    ckpt = train_recipe("quickstart", tmp_path / "gan")
    proc = run(
        [str(BIN / "genlab-sample"), f"ckpt_path={ckpt}", "latents=gmm",
         f"hydra.run.dir={tmp_path / 'out'}"],
        cwd=tmp_path,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: latents=gmm fits a mixture to a VAE's encoded latents, but this checkpoint "
        "holds a GANModule, which has no encoder; use latents=prior"
    ]
