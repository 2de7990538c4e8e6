"""genlab-sample: generate images from a checkpoint.

genlab-sample ckpt_path=<run>/checkpoints/last.ckpt n=64            # one grid PNG
genlab-sample ckpt_path=<run>/checkpoints/last.ckpt n=1000 out_dir=gen  # an ImageFolder
genlab-sample ckpt_path=<conditional run>/checkpoints/last.ckpt labels=7      # only sevens
genlab-sample ckpt_path=<conditional run>/checkpoints/last.ckpt labels=[0,1,2]  # cycled
genlab-sample ckpt_path=<VAE run>/checkpoints/last.ckpt latents=gmm   # z from a fitted mixture
genlab-sample ckpt_path=... n=10000 format=npz   # samples.npz: uint8 NHWC arr_0 (+ labels arr_1)
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, ListConfig
from torchvision.utils import make_grid, save_image

from genlab.checkpoints import load_model, run_datamodule
from genlab.config.checks import SAMPLE_KEYS, check_numbers, sampling_overrides
from genlab.config.overrides import checked_entry_point
from genlab.config.paths import config_dir
from genlab.config.resolvers import register_resolvers
from genlab.errors import ConfigError, user_errors_reported
from genlab.evaluation.image_files import IMAGES_KEY, LABELS_KEY, to_nhwc_array
from genlab.models.latent_gmm import check_latents, fit_latent_gmm
from genlab.runs.output_paths import writable_directory
from genlab.runs.result import result_recorded
from genlab.utils.devices import checked_device
from genlab.utils.files import write_atomically
from genlab.utils.progress import progress

log = logging.getLogger(__name__)

IMAGE_FOLDER_CLASS = "samples"  # ImageFolder needs one subfolder per class
FORMATS = ("grid", "folder", "npz")


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


def write_npz(images: torch.Tensor, labels: torch.Tensor | None, path: Path) -> Path:
    """Save images in [-1, 1] as uint8 (N, H, W, C) `arr_0`, and the labels of a conditional
    model as `arr_1`: the layout of OpenAI's guided-diffusion samples, which the ADM
    evaluation suite, genlab-eval and most generative-model repositories read."""
    arrays = {IMAGES_KEY: to_nhwc_array(images)}
    if labels is not None:
        arrays[LABELS_KEY] = labels.cpu().numpy().astype(np.int64)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as file:  # a file object: np.savez would append .npz to a path
            np.savez(file, **arrays)

    write_atomically(path, write)
    return path


def output_format(fmt: str | None, out_dir: Path | None) -> str:
    """`format`, or as before when null: a grid without out_dir, a folder with it."""
    if fmt is None:
        return "grid" if out_dir is None else "folder"
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is unknown; choose one of {', '.join(FORMATS)}")
    return fmt


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
    fmt = output_format(cfg.format, out_dir)
    model, run_cfg = load_model(cfg.ckpt_path)
    check_latents(cfg.latents, model)
    model.sampling_settings(**sampling_overrides(cfg.sampling))  # fails before any work
    model.to(device)
    if cfg.latents == "gmm":  # the training data, as the checkpoint's config reads it
        datamodule = run_datamodule(run_cfg, cfg.data_dir)
        model.latent_draw = fit_latent_gmm(model, datamodule, cfg.gmm_components, cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    labels = requested_labels(cfg.labels, cfg.n)
    if labels is None:  # the labels generate() would draw itself, drawn here to be written
        labels = model.sample_labels(cfg.n, generator)
    with progress(f"sampling {cfg.n} images", total=cfg.n) as advance:
        images = model.generate(
            cfg.n, generator=generator, labels=labels, on_batch=advance,
            **sampling_overrides(cfg.sampling),
        ).cpu()  # fmt: skip
    folder = out_dir or Path(cfg.paths.output_dir)
    if fmt == "grid":
        written = write_grid(images, folder / "samples.png", cfg.nrow)
    elif fmt == "folder":
        written = write_image_folder(images, folder)
    else:
        written = write_npz(images, labels, folder / "samples.npz")
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
