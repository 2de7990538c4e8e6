"""genlab-eval on a checkpoint from a short real run, and the VAE's likelihood bounds."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from genlab.data import MNISTEmbeddedDataModule
from genlab.models import VAEModule
from genlab.models.likelihood import iw_nll
from genlab.nets.conv_vae import ConvDecoder, ConvEncoder
from genlab.train import train
from tests.helpers.cli import BIN, run
from tests.helpers.runs import TINY_RUN

COMMON_FIELDS = {
    "fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall", "n_samples",
    "extractor", "weights_sha256", "sampling_images_per_second", "n_real", "pr_samples",
}  # fmt: skip
VAE_FIELDS = {"test_elbo_nats", "iw_nll_nats", "iw_nll_bits_per_dim", "iw_samples"}


@pytest.mark.slow
def test_eval_writes_every_field_for_a_vae(
    make_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_config(overrides=[*TINY_RUN, "model=vae", "logger=csv", "metrics.n_samples=100"])
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    out = tmp_path / "eval"
    run(
        [str(BIN / "genlab-eval"), f"ckpt_path={ckpt}", "metrics.n_samples=300", "iw_samples=4",
         f"hydra.run.dir={out}", f"paths.cache_dir={tmp_path / 'cache'}"],
        cwd=tmp_path,
    )  # fmt: skip
    results = json.loads((out / "metrics.json").read_text())
    assert results.keys() >= COMMON_FIELDS | VAE_FIELDS
    assert results["extractor"] == "lenet" and len(results["weights_sha256"]) == 64
    assert results["n_samples"] == 300 and results["iw_samples"] == 4
    assert results["real_split"] == "test" and results["pr_samples"] == min(300, results["n_real"])
    assert results["iw_nll_nats"] <= -results["test_elbo_nats"] + 1.0  # bound, up to sampling noise
    assert results["iw_nll_bits_per_dim"] == pytest.approx(
        results["iw_nll_nats"] / (784 * 0.6931471805599453)
    )


@pytest.fixture(scope="module")
def trained_vae() -> tuple[VAEModule, torch.Tensor]:
    """A small VAE trained for 300 steps on 1,000 real digits; 200 held-out digits."""
    torch.manual_seed(0)
    dm = MNISTEmbeddedDataModule(data_dir="unused")
    train_x, test_x = dm.real_images("train")[:1000], dm.real_images("val")[:200]
    vae = VAEModule(
        encoder=ConvEncoder(latent_dim=8, width=16, hidden=64),
        decoder=ConvDecoder(latent_dim=8, width=16, hidden=64),
        optimizer=partial(torch.optim.Adam, lr=2e-3),
        latent_dim=8,
    )
    optimizer = vae.configure_optimizers()[0]
    for step in range(300):
        batch = train_x[(step * 50) % 1000 :][:50]
        recon, kl = vae.negative_elbo_terms(batch)
        optimizer.zero_grad()
        (recon + kl).mean().backward()
        optimizer.step()
    return vae.eval(), test_x


def test_iw_bound_is_below_negative_elbo_and_tightens_with_k(trained_vae) -> None:
    vae, x = trained_vae
    torch.manual_seed(1)
    with torch.no_grad():
        neg_elbo = torch.stack([sum(vae.negative_elbo_terms(x)) for _ in range(5)]).mean()
        bounds = {k: iw_nll(vae, x, k).mean() for k in (1, 10, 100)}
        one_per_chunk = iw_nll(vae, x, 10, max_decoded=len(x)).mean()
    assert bounds[1].item() == pytest.approx(neg_elbo.item(), rel=0.02)  # k = 1 is the ELBO
    assert one_per_chunk.item() == pytest.approx(bounds[10].item(), rel=0.01)
    assert bounds[100] < bounds[10] < neg_elbo
    assert neg_elbo - bounds[100] > 0.5  # a visible gap on a trained model, in nats


def test_eval_and_sample_read_moved_data_from_data_dir(make_config, tmp_path) -> None:
    from genlab.checkpoints import run_datamodule

    run_cfg = make_config(overrides=["data=mnist"])
    stored = run_cfg.data.data_dir
    assert run_datamodule(run_cfg).data_dir == stored
    assert run_datamodule(run_cfg, str(tmp_path / "moved")).data_dir == str(tmp_path / "moved")
