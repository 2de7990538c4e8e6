"""Mixed precision and DDP on the CPU: bf16 autocast, two gloo ranks, FID synced across ranks."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import DictConfig

from genlab.metrics.extractors import LeNetExtractor
from genlab.metrics.suite import MetricSuite
from genlab.train import train
from tests.helpers.cli import BIN, run
from tests.helpers.runs import TINY_RUN, model_options

pytestmark = pytest.mark.slow  # DDP ranks as processes, mixed precision runs


# Post-hoc EMA rides along: a snapshot every 2 of the 3 iterations, and one at the end.
POSTHOC_EMA = ["callbacks=posthoc_ema", "callbacks.posthoc_ema.snapshot_every=2"]


def assert_posthoc_snapshots(run_dir: Path, steps: list[int]) -> None:
    """One snapshot per step and profile, its averages finite float32 weights."""
    files = sorted((run_dir / "ema_snapshots").glob("*.pt"))
    assert [f.name for f in files] == [f"{s:08d}-{r}.pt" for s in steps for r in ("0.05", "0.1")]
    for file in files:
        weights = torch.load(file, weights_only=True)["state_dict"].values()
        assert all(torch.isfinite(w).all() for w in weights if w.is_floating_point())
        assert {w.dtype for w in weights if w.is_floating_point()} == {torch.float32}


def logged_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("model", model_options())
def test_bf16_mixed_trains_with_finite_losses(
    make_config: Callable[..., DictConfig], model: str
) -> None:
    overrides = [*TINY_RUN, f"model={model}", "logger=csv", "trainer.precision=bf16-mixed"]
    cfg = make_config(overrides=[*overrides, *POSTHOC_EMA])
    train(cfg)
    assert_posthoc_snapshots(Path(cfg.paths.output_dir), [2, 3])
    rows = logged_rows(Path(cfg.paths.output_dir))
    keys = {"gan": ["train/g_loss", "train/d_loss"], "vae": ["train/loss", "train/kl"]}.get(
        model, ["train/loss", "val/loss"]
    )
    values = [float(r[k]) for r in rows for k in keys if r.get(k)]
    assert len(values) >= 2 * len(keys) and all(math.isfinite(v) for v in values)


@pytest.mark.parametrize("model", ["gan", "vae", "flow"])
def test_ddp_sim_two_cpu_ranks_train_and_log_fid_once(tmp_path: Path, model: str) -> None:
    run_dir = tmp_path / "run"
    run(
        [str(BIN / "genlab-train"), "trainer=ddp_sim", f"model={model}", "logger=csv", *TINY_RUN,
         f"hydra.run.dir={run_dir}", f"paths.cache_dir={tmp_path / 'cache'}", *POSTHOC_EMA],
        cwd=tmp_path,
    )  # fmt: skip
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert_posthoc_snapshots(run_dir, [2, 3])  # 3 iterations on each rank
    fid_rows = [r for r in logged_rows(run_dir) if r.get("val/fid_lenet")]
    assert len(fid_rows) == 1  # one value per evaluation, not one per rank
    assert float(fid_rows[0]["val/n_samples"]) == 100  # 50 per rank
    assert math.isfinite(float(fid_rows[0]["val/fid_lenet"]))


def _rank_fid(
    rank: int, world: int, port: int, real: torch.Tensor, fake: torch.Tensor, out
) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        suite = MetricSuite(LeNetExtractor(), real, rank=rank, world_size=world)
        suite.update(fake.chunk(world)[rank])
        out[rank] = suite.compute()["fid"]
    finally:
        dist.destroy_process_group()


def test_fid_on_two_ranks_equals_single_process(tmp_path: Path) -> None:
    torch.manual_seed(0)
    from genlab.data import MNISTEmbeddedDataModule

    dm = MNISTEmbeddedDataModule(data_dir="unused")
    extractor = LeNetExtractor()
    real = extractor(dm.real_images("val"))[0]
    fake = dm.real_images("train")[:400] + 0.3 * torch.randn(400, 1, 28, 28)
    single = MetricSuite(extractor, real)
    single.update(fake)
    expected = single.compute()["fid"]
    results = mp.Manager().dict()
    port = 29500 + os.getpid() % 1000
    mp.spawn(_rank_fid, args=(2, port, real, fake, results), nprocs=2, join=True)
    assert results[0] == pytest.approx(expected, rel=1e-5)
    assert results[1] == pytest.approx(expected, rel=1e-5)


def test_gan_fp16_loss_scaling_goes_through_manual_backward() -> None:
    """16-mixed's GradScaler sees every GAN loss: `manual_backward` scales it, steps unscale.

    CUDA is where 16-mixed runs; torch's CPU GradScaler exercises the same Lightning path
    (MixedPrecision plugin -> scaler.scale in manual_backward -> scaler.step).
    """
    from pytorch_lightning.plugins.precision import MixedPrecision

    from tests.helpers.tiny import fit, tiny_gan

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    model = tiny_gan()
    before = [p.detach().clone() for p in model.generator.parameters()]
    fit(model, iterations=4, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    assert scaler._scale is not None  # scaler.scale(loss) ran: the losses were scaled
    assert math.isfinite(scaler.get_scale())
    after = list(model.generator.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_each_fid_pass_releases_its_generated_features() -> None:
    """Evaluation memory does not grow across epochs: reset() frees what update() kept."""
    from genlab.data import MNISTEmbeddedDataModule

    dm = MNISTEmbeddedDataModule(data_dir="unused")
    extractor = LeNetExtractor()
    suite = MetricSuite(extractor, extractor(dm.real_images("val"))[0])
    fake = dm.real_images("train")[:200]
    values = []
    for _ in range(2):
        suite.update(fake)
        assert len(suite.kid.fake_features) > 0
        values.append(suite.compute()["fid"])
        suite.reset()
        assert len(suite.kid.fake_features) == 0 and len(suite.inception_score.features) == 0
        assert suite.fid.fake_features_num_samples == 0
    assert values[0] == pytest.approx(values[1])  # the real statistics survived the reset
