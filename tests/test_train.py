"""`genlab.train.train` in-process: every model on every datamodule, and start-up checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.io import read_image

from genlab.data import DataError
from genlab.errors import ConfigError
from genlab.train import train
from tests.helpers.fake_datasets import write_cifar10, write_image_folder, write_mnist
from tests.helpers.runs import TINY_RUN, MakeConfig, iterative_model_options, model_options


def data_overrides(name: str, root: Path) -> list[str]:
    """Write a tiny copy of dataset `name` under `root`; return the overrides that select it."""
    if name in {"mnist", "fashion_mnist"}:
        write_mnist(root, folder="MNIST" if name == "mnist" else "FashionMNIST")
        return [f"data={name}", "data.batch_size=8", "data.val_fraction=0.25"]
    if name == "cifar10":
        write_cifar10(root)
        return ["data=cifar10", "data.verify_checksums=false", "data.batch_size=8", "metrics=none"]
    if name == "image_folder":
        write_image_folder(root / "images", per_class=10, size=36)
        return ["data=image_folder", "data.image_size=32", "data.batch_size=8", "metrics=none"]
    return [f"data={name}"]


DATASETS = ["mnist_embedded", "mnist", "fashion_mnist", "cifar10", "image_folder"]
ITERATIVE = iterative_model_options()


@pytest.mark.parametrize(
    ("model", "dataset"),
    [
        (model, dataset)
        for model in model_options()
        # an iterative family on one 1-channel and one 3-channel dataset: its UNet is the
        # slow part, and the datamodules are the one-pass families' runs' to cover
        for dataset in (DATASETS[::3] if model in ITERATIVE else DATASETS)
    ],
)
def test_fast_dev_run_every_model_on_every_datamodule(
    make_config: MakeConfig, tmp_path: Path, model: str, dataset: str
) -> None:
    data_dir = tmp_path / "data"
    overrides = ["debug=fast", f"model={model}", *data_overrides(dataset, data_dir)]
    if "metrics=none" not in overrides:
        overrides.append("metrics.n_samples=100")
    if model in ITERATIVE:  # 2 sampling steps: the grid's shape is checked, not its quality
        overrides.append("model.validation_sampling.steps=2")
    cfg = make_config(overrides=overrides, data_dir=data_dir)
    train(cfg)
    # one batch each way, and the grid of 64 samples (8 x 8, 2-pixel borders) has the data's size
    grid = read_image(str(Path(cfg.paths.output_dir) / "samples" / "epoch_0000.png"))
    size = cfg.data.image_size
    assert tuple(grid.shape[1:]) == (8 * (size + 2) + 2, 8 * (size + 2) + 2)
    assert grid.float().std() > 0  # not a blank picture


def test_max_steps_counts_gan_iterations(make_config: MakeConfig) -> None:
    cfg = make_config(
        overrides=[
            *TINY_RUN,
            "logger=csv",
            "trainer.limit_train_batches=null",
            "trainer.max_epochs=5",
            "trainer.max_steps=4",
        ]
    )
    train(cfg)
    lines = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    train_steps = sorted(int(r["step"]) for r in rows if r["train/d_loss"])
    assert train_steps == [0, 1, 2, 3]  # 4 iterations, though Lightning made 8 optimizer steps
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 8


def test_lenet_metrics_on_colour_data_fail_before_training(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    overrides = ["debug=fast", *data_overrides("cifar10", data_dir)][:-1]  # keep fid_lenet
    with pytest.raises(ConfigError, match="use metrics=fid_inception or metrics=none"):
        train(make_config(overrides=overrides, data_dir=data_dir))


def test_the_seeds_56x56_generator_fails_before_training(make_config: MakeConfig) -> None:
    cfg = make_config(
        overrides=["debug=fast", "model/net=seed_literal", "model.generator.strides=[1,2,2,2]"]
    )
    with pytest.raises(ConfigError, match=r"\(1, 56, 56\) but the data has shape \(1, 28, 28\)"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


@pytest.mark.parametrize(
    ("override", "error", "pattern"),
    [
        ("model.optimizer.lr=0", ConfigError, "learning rate must be > 0"),
        ("model.optimizer.lr=-1e-3", ConfigError, "learning rate must be > 0"),
        (
            "model.latent_dim=abc",
            ConfigError,
            "^model.latent_dim: Value 'abc' of type 'str' could not be converted to Integer$",
        ),
        ("trainer.max_epochs=ten", ConfigError, "^trainer.max_epochs: Value 'ten' of type"),
        (
            "model.optimizer.lr=fast",
            ConfigError,
            "^model.optimizer.lr: 'fast' is not a float or int$",
        ),
        (
            "data.batch_size=1.5",
            ConfigError,
            "^data.batch_size: Value '1.5' of type 'float' could not",
        ),
        (
            "+model.lantent_dim=8",
            ConfigError,
            "^model.lantent_dim is not a parameter of genlab.models.GANModule; its parameters are",
        ),
        (
            "+callbacks.sample_grid.nn=3",
            ConfigError,
            "^callbacks.sample_grid.nn is not a parameter of genlab.callbacks.SampleGrid",
        ),
        ("+data.batch_szie=3", ConfigError, "^data.batch_szie is not a parameter of genlab.data"),
        (
            "+trainer.max_epoch=3",
            ConfigError,
            "^trainer.max_epoch is not a parameter of pytorch_lightning.Trainer",
        ),
        ("model.generator.latent_dim=x", ConfigError, "^model.generator.latent_dim: Value 'x'"),
        (
            "+trainr.max_epochs=1",
            ConfigError,
            "^trainr is not a top-level config key; the keys are task_name, ",
        ),
        ("model.loss=hing", ConfigError, "choose one of nonsaturating"),
        ("data.batch_size=5000", DataError, "data.batch_size=5000 is larger than the 4000"),
        ("data.channels=3 metrics=none", DataError, "have 1 channel.*data.channels=3"),
        ("trainer.max_steps=0", ConfigError, "trainer.max_steps must be"),
        ("metrics.n_samples=0", ConfigError, "metrics.n_samples must be >= 2"),
    ],
)
def test_bad_input_fails_with_one_line(
    make_config: MakeConfig, override: str, error: type[Exception], pattern: str
) -> None:
    cfg = make_config(overrides=["debug=fast", *override.split()])
    with pytest.raises(error, match=pattern) as info:
        train(cfg)
    assert "\n" not in str(info.value)
