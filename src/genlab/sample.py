"""genlab-sample: generate images from a checkpoint.

genlab-sample ckpt_path=<run>/checkpoints/last.ckpt n=64            # one grid PNG
genlab-sample ckpt_path=<run>/checkpoints/last.ckpt n=1000 out_dir=gen  # an ImageFolder
genlab-sample ckpt_path=<conditional run>/checkpoints/last.ckpt labels=7      # only sevens
genlab-sample ckpt_path=<conditional run>/checkpoints/last.ckpt labels=[0,1,2]  # cycled
genlab-sample ckpt_path=<VAE run>/checkpoints/last.ckpt sampler=gmm   # z from a fitted mixture
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, ListConfig
from torchvision.utils import make_grid, save_image

from genlab.checkpoints import load_model, run_datamodule
from genlab.config.checks import SAMPLE_KEYS, check_numbers
from genlab.config.overrides import checked_entry_point
from genlab.config.paths import config_dir
from genlab.config.resolvers import register_resolvers
from genlab.errors import ConfigError, user_errors_reported
from genlab.models.latent_gmm import check_sampler, fit_latent_gmm
from genlab.runs.output_paths import writable_directory
from genlab.runs.result import result_recorded
from genlab.utils.devices import checked_device

log = logging.getLogger(__name__)

IMAGE_FOLDER_CLASS = "samples"  # ImageFolder needs one subfolder per class


def write_grid(images: torch.Tensor, path: Path, nrow: int) -> Path:
    """Save images in [-1, 1] as one PNG grid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(images, nrow=nrow, normalize=True, value_range=(-1, 1)), path)
    return path


def write_image_folder(images: torch.Tensor, out_dir: Path) -> Path:
    """Save each image as `<out_dir>/samples/000000.png`: the layout ImageFolder reads."""
    folder = out_dir / IMAGE_FOLDER_CLASS
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        save_image((image + 1.0) / 2.0, folder / f"{i:06d}.png")
    return folder


def requested_labels(labels: int | ListConfig | None, n: int) -> torch.Tensor | None:
    """The `labels` option as one label per image: an int repeats, a list is cycled to `n`."""
    if labels is None:
        return None
    values = [labels] if isinstance(labels, int) else list(labels)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"labels must be a class index or a list of them, got {labels}")
    return torch.tensor(values, dtype=torch.long).repeat(n // len(values) + 1)[:n]


def sample(cfg: DictConfig) -> Path:
    """Generate `cfg.n` images from `cfg.ckpt_path`; return the file or folder written."""
    check_numbers(cfg, SAMPLE_KEYS)
    device = checked_device(cfg.device)
    out_dir = None if cfg.out_dir is None else writable_directory("out_dir", Path(cfg.out_dir))
    model, run_cfg = load_model(cfg.ckpt_path)
    check_sampler(cfg.sampler, model)
    model.to(device)
    if cfg.sampler == "gmm":  # the training data, as the checkpoint's config reads it
        datamodule = run_datamodule(run_cfg, cfg.data_dir)
        model.latent_sampler = fit_latent_gmm(model, datamodule, cfg.gmm_components, cfg.seed)
    images = model.generate(
        cfg.n,
        generator=torch.Generator().manual_seed(cfg.seed),
        labels=requested_labels(cfg.labels, cfg.n),
    ).cpu()
    if out_dir is None:
        written = write_grid(images, Path(cfg.paths.output_dir) / "samples.png", cfg.nrow)
    else:
        written = write_image_folder(images, out_dir)
    log.info("wrote %d samples to %s", cfg.n, written)
    return written


register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="sample")
def main(cfg: DictConfig) -> None:
    """Console entry point `genlab-sample`."""
    with user_errors_reported(), result_recorded(cfg):
        sample(cfg)


cli = checked_entry_point(main, config_name="sample")

if __name__ == "__main__":
    cli()
