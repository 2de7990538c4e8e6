"""NaN or infinite images and features are caught before any metric: FID's matrix routines
would end the process natively (exit 134/139, no message) on 2048-d features."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from genlab.config.instantiate import build
from genlab.errors import GenlabError
from genlab.eval import evaluate
from genlab.metrics.extractors import LeNetExtractor
from genlab.metrics.stats_cache import cache_key, cache_path, cached_features
from genlab.metrics.suite import MetricSuite, NonFiniteSamplesError
from genlab.models import GANModule
from genlab.train import train
from tests.helpers.runs import TINY_RUN, MakeConfig


@pytest.fixture(scope="module")
def lenet() -> LeNetExtractor:
    return LeNetExtractor()


def digits(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_the_suite_refuses_non_finite_images_and_keeps_its_state(
    lenet: LeNetExtractor, bad: float
) -> None:
    real = lenet(digits(200, 0))[0]
    images = digits(100, 1)
    poisoned = images.clone()
    poisoned[3, 0, 5, 5] = bad  # one pixel of one image
    suite = MetricSuite(lenet, real, kid_subset_size=50)
    with pytest.raises(NonFiniteSamplesError, match="1 of 100 generated images hold NaN"):
        suite.update(poisoned)
    suite.update(images)  # the refused batch left nothing behind
    clean = MetricSuite(lenet, real, kid_subset_size=50)
    clean.update(images)
    assert suite.compute() == clean.compute()


def test_the_suite_refuses_non_finite_real_features(lenet: LeNetExtractor) -> None:
    real = lenet(digits(200, 0))[0]
    real[7, 2] = math.nan
    with pytest.raises(GenlabError, match="1 of 200 real-image feature vectors hold NaN"):
        MetricSuite(lenet, real, kid_subset_size=50)


def test_a_cached_file_with_nan_features_is_discarded_and_recomputed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = cache_key("mnist", "val", 3, "img", "lenet", "abc")
    good = torch.arange(6.0).view(3, 2)
    poisoned = good.clone()
    poisoned[1, 1] = math.nan
    path = cache_path(tmp_path, key)
    path.parent.mkdir(parents=True)
    torch.save({"key": key, "features": poisoned}, path)
    with caplog.at_level(logging.WARNING):
        features = cached_features(tmp_path, key, lambda: good)
    assert torch.equal(features, good)
    assert "NaN or infinite features" in caplog.text and str(path) in caplog.text
    assert torch.equal(torch.load(path, weights_only=True)["features"], good)  # replaced


def test_non_finite_real_features_are_never_cached(tmp_path: Path) -> None:
    key = cache_key("mnist", "val", 3, "img", "lenet", "abc")
    poisoned = torch.tensor([[0.0, 1.0], [math.inf, 2.0], [3.0, 4.0]])
    with pytest.raises(GenlabError, match="lenet features of the real mnist val images hold NaN"):
        cached_features(tmp_path, key, lambda: poisoned)
    assert not cache_path(tmp_path, key).exists()


def nan_images(self: GANModule, n: int, *args: object, **kwargs: object) -> torch.Tensor:
    """What a diverged generator makes."""
    return torch.full((n, 1, 28, 28), math.nan)


def test_training_logs_nan_metrics_with_a_warning_and_goes_on(
    make_config: MakeConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(GANModule, "generate", nan_images)
    cfg = make_config(overrides=[*TINY_RUN, "logger=csv", "trainer.max_epochs=2"])
    with caplog.at_level(logging.WARNING, logger="genlab"):
        train(cfg)
    warnings = [r.message for r in caplog.records if "val/fid_lenet" in r.getMessage()]
    assert len(warnings) == 2  # one per validation epoch
    assert "100 of 100 generated images hold NaN" in caplog.text
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    logged = [row["val/fid_lenet"] for row in rows if row.get("val/fid_lenet")]
    assert len(logged) == 2 and all(math.isnan(float(value)) for value in logged)  # 2 epochs ran


def test_eval_of_a_diverged_generator_fails_in_one_line(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    run_cfg = make_config(overrides=["logger=csv"])
    model = build("model", run_cfg.model)
    state = {k: v.fill_(math.nan) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}  # fmt: skip
    ckpt = tmp_path / "diverged.ckpt"
    genlab_config = OmegaConf.to_container(run_cfg, resolve=True)
    torch.save({"genlab_config": genlab_config, "state_dict": state}, ckpt)
    cfg = make_config("eval", [f"ckpt_path={ckpt}", "metrics.n_samples=100"])
    with pytest.raises(NonFiniteSamplesError) as err:
        evaluate(cfg)
    message = str(err.value)
    assert message.startswith("100 of 100 generated images hold NaN or infinite values")
    assert "evaluate an earlier checkpoint" in message and "\n" not in message
    assert not Path(cfg.out_file).exists()
