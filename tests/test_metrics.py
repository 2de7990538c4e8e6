"""FID/KID/IS, precision/recall and the real-feature cache, against references and real data."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from genlab.data import MNISTEmbeddedDataModule
from genlab.errors import ConfigError, GenlabError
from genlab.metrics import GenerativeMetrics, extractors
from genlab.metrics.extractors import (
    INCEPTION_WEIGHTS,
    InceptionExtractor,
    LeNetExtractor,
    build_extractor,
    file_sha256,
)
from genlab.metrics.lenet import (
    WEIGHTS_FILE,
    LeNet,
    accuracy,
    embedded_mnist_split,
    train_lenet,
    weights_sha256,
)
from genlab.metrics.precision_recall import precision_recall
from genlab.metrics.real_features import real_features
from genlab.metrics.stats_cache import cache_key, cache_path, cached_features
from genlab.metrics.suite import MetricSuite, Precomputed


def reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Heusel et al. 2017: |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), in float64."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


@pytest.fixture(scope="module")
def mnist() -> MNISTEmbeddedDataModule:
    dm = MNISTEmbeddedDataModule(data_dir="unused")
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def lenet() -> LeNetExtractor:
    return LeNetExtractor()


def test_frechet_distance_matches_scipy_reference() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 16))
    b = rng.normal(loc=0.3, scale=1.5, size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.3
    fid = FrechetInceptionDistance(feature=Precomputed(16))
    fid.update(torch.from_numpy(a), real=True)
    fid.update(torch.from_numpy(b), real=False)
    assert fid.compute().item() == pytest.approx(reference_fid(a, b), rel=1e-6)


def test_statistics_accumulate_in_float64_from_float32_features() -> None:
    fid = FrechetInceptionDistance(feature=Precomputed(4))
    fid.update(torch.randn(10, 4, dtype=torch.float32), real=True)
    assert fid.real_features_sum.dtype == torch.float64
    assert fid.real_features_cov_sum.dtype == torch.float64


def test_fid_of_a_set_against_itself_is_zero(mnist, lenet) -> None:
    real = lenet(mnist.real_images("val"))[0]
    suite = MetricSuite(lenet, real)
    suite.update(mnist.real_images("val"))
    assert abs(suite.compute()["fid"]) < 1e-2


def test_mnist_halves_are_close_and_noise_is_far(mnist, lenet) -> None:
    train = mnist.real_images("train")
    first, second = train[:2000], train[2000:4000]
    suite = MetricSuite(lenet, lenet(first)[0])
    suite.update(second)
    same = suite.compute()
    suite.reset()
    suite.update(torch.rand(2000, 1, 28, 28) * 2 - 1)
    noise = suite.compute()
    assert same["fid"] < 25 and noise["fid"] > 40 * same["fid"]
    assert same["is_mean"] > 8.5 and noise["is_mean"] < 2  # 10 digit classes
    assert abs(same["kid_mean"]) < 3 * same["kid_std"] + 1e-6
    assert noise["kid_mean"] > 10 * noise["kid_std"]


def test_lenet_weights_classify_digits(mnist) -> None:
    _, _, x_test, y_test = embedded_mnist_split()
    model = LeNet()
    model.load_state_dict(torch.load(WEIGHTS_FILE, weights_only=True))
    assert accuracy(model, x_test, y_test) > 0.97


@pytest.mark.slow  # two trainings of the classifier, an epoch each
def test_lenet_training_is_reproducible() -> None:
    a, _ = train_lenet(epochs=1)
    b, _ = train_lenet(epochs=1)
    assert weights_sha256(a.state_dict()) == weights_sha256(b.state_dict())


def test_lenet_rejects_colour_images(lenet) -> None:
    with pytest.raises(ConfigError, match="metrics=fid_inception"):
        lenet(torch.zeros(2, 3, 32, 32))


def test_precision_recall_separate_fidelity_from_coverage() -> None:
    torch.manual_seed(0)
    real = torch.randn(600, 8)
    assert min(precision_recall(real, torch.randn(600, 8))) > 0.8
    assert min(precision_recall(real, torch.randn(3000, 8))) > 0.8  # cut to 600 points each
    far = torch.randn(600, 8) + 20
    assert precision_recall(real, far) == (0.0, 0.0)
    collapsed = real[:20].repeat(30, 1) + 1e-3 * torch.randn(600, 8)  # mode collapse
    precision, recall = precision_recall(real, collapsed)
    assert precision > 0.95 and recall < 0.3


def test_cache_hit_miss_and_corrupt_file(tmp_path: Path, caplog) -> None:
    calls = []

    def compute() -> torch.Tensor:
        calls.append(1)
        return torch.arange(6.0).view(3, 2)

    key = cache_key("mnist", "val", 3, "img", "lenet", "abc")
    first = cached_features(tmp_path, key, compute)
    again = cached_features(tmp_path, key, compute)
    assert torch.equal(first, again) and len(calls) == 1
    for changed in (
        cache_key("mnist", "test", 3, "img", "lenet", "abc"),
        cache_key("mnist", "val", 3, "img", "lenet", "abd"),
        cache_key("cifar10", "val", 3, "img", "lenet", "abc"),
        cache_key("mnist", "val", 3, "img", "inception", "abc"),
        cache_key("mnist", "val", 3, "other", "lenet", "abc"),
    ):
        cached_features(tmp_path, changed, compute)
    assert len(calls) == 6
    cache_path(tmp_path, key).write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING):
        recovered = cached_features(tmp_path, key, compute)
    assert torch.equal(recovered, first) and len(calls) == 7
    assert "unreadable feature cache" in caplog.text
    assert torch.equal(cached_features(tmp_path, key, compute), first) and len(calls) == 7


def test_real_features_cache_reuses_only_the_same_images(tmp_path: Path, lenet, caplog) -> None:
    first = MNISTEmbeddedDataModule(data_dir="unused", split_seed=0)
    moved = MNISTEmbeddedDataModule(data_dir="unused", split_seed=1)  # same name, split, count
    with caplog.at_level(logging.INFO, logger="genlab.metrics.stats_cache"):
        computed = real_features(first, "val", lenet, tmp_path)
        reused = real_features(first, "val", lenet, tmp_path)
        other = real_features(moved, "val", lenet, tmp_path)
    assert torch.equal(computed, reused) and not torch.equal(computed, other)
    assert caplog.text.count("computed and cached") == 2 and caplog.text.count("from cache") == 1
    assert len(list((tmp_path / "real_features").glob("*.pt"))) == 2


def test_compute_is_repeatable_and_leaves_the_global_rng_alone(mnist, lenet) -> None:
    images, real = mnist.real_images("val"), lenet(mnist.real_images("train")[:500])[0]

    def scores(seed: int) -> dict[str, float]:
        suite = MetricSuite(lenet, real, kid_subset_size=100, seed=seed)
        suite.update(images)
        return suite.compute()

    state = torch.random.get_rng_state()
    first = scores(seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert scores(seed=3) == first
    assert scores(seed=4)["kid_std"] != first["kid_std"]  # the seed draws KID's subsets


def test_missing_inception_weights_is_one_clear_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(GenlabError) as err:
        build_extractor("inception")
    message = str(err.value)
    assert INCEPTION_WEIGHTS in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "metrics=fid_lenet" in message and "\n" not in message


def test_failed_inception_download_is_the_same_clear_line(tmp_path: Path, monkeypatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(GenlabError, match=f"place {INCEPTION_WEIGHTS} in .*name resolution"):
        build_extractor("inception", allow_download=True)


def write_random_inception_weights(hub: Path, monkeypatch) -> None:
    """A random-weights InceptionV3 state dict in torch-fidelity's layout, where torch hub looks."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
    monkeypatch.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
    net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    state = net.state_dict()
    monkeypatch.undo()
    (hub / "checkpoints").mkdir(parents=True)
    path = hub / "checkpoints" / INCEPTION_WEIGHTS
    torch.save(state, path)
    monkeypatch.setattr(extractors, "INCEPTION_SHA256", file_sha256(path))  # trust this file


def test_inception_path_end_to_end_with_random_weights(tmp_path: Path, monkeypatch, caplog) -> None:
    write_random_inception_weights(tmp_path / "hub", monkeypatch)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    extractor = InceptionExtractor()
    grey = torch.rand(4, 1, 28, 28) * 2 - 1
    features, logits = extractor(grey)
    assert features.shape == (4, 2048) and logits.shape == (4, 1008)
    colour = torch.rand(4, 3, 32, 32) * 2 - 1
    suite = MetricSuite(extractor, extractor(colour)[0], kid_subset_size=2)
    suite.update(colour)
    with caplog.at_level(logging.WARNING, logger="genlab.metrics.suite"):
        assert abs(suite.compute()["fid"]) < 1e-2
    assert "FID on 4 samples with 2048-d features is biased upwards" in caplog.text


def test_callback_names_and_bad_settings() -> None:
    assert GenerativeMetrics(extractor="lenet").monitor == "val/fid_lenet"
    assert GenerativeMetrics(extractor="lenet").name("kid") == "val/kid_lenet"
    with pytest.raises(ConfigError, match="n_samples must be >= 2"):
        GenerativeMetrics(n_samples=0)
    with pytest.raises(ConfigError, match="choose one of lenet, inception"):
        GenerativeMetrics(extractor="resnet")


def test_inception_features_equal_torchmetrics_on_the_same_weights(
    tmp_path: Path, monkeypatch
) -> None:
    """torch-fidelity's public forward gives what torchmetrics' FID feature extractor
    computes (its TF-compatible resize, antialias off), so FIDs compare with both."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    write_random_inception_weights(tmp_path / "hub", monkeypatch)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    extractor = InceptionExtractor()
    reference = NoTrainInceptionV3(
        name="inception-v3-compat",
        features_list=["2048", "logits_unbiased"],
        feature_extractor_weights_path=str(tmp_path / "hub" / "checkpoints" / INCEPTION_WEIGHTS),
        antialias=False,
    )
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    pixels = ((images + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    features, logits = extractor(images)
    expected_features, expected_logits = reference._torch_fidelity_forward(pixels)
    assert torch.equal(features, expected_features) and torch.equal(logits, expected_logits)
