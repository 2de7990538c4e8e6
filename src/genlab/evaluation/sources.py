"""Sources of samples: a genlab checkpoint (generated on demand), a folder of images, or an
`.npz`/`.npy` array of samples written by any other code.

Every source answers `draw(n, seed)` with an ImageSet, so that the metrics never ask
where the images came from. A checkpoint generates `n` new images from `seed`; a file
gives `n` of its images (a random subset drawn with `seed` when it holds more, all of
them when it holds fewer), so that repeated evaluations of a file vary the subset.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from genlab.checkpoints import load_model
from genlab.errors import ConfigError, GenlabError
from genlab.evaluation.image_files import ARRAY_SUFFIXES, ImageSet, read_array, read_folder
from genlab.models.base import GenerativeModule
from genlab.models.latent_gmm import check_latents, fit_latent_gmm
from genlab.utils.progress import Advance, progress

log = logging.getLogger(__name__)

SOURCE_KINDS = ("checkpoint", "folder", "array")


def source_kind(path: Path, key: str) -> str:
    """checkpoint (`.ckpt`), folder, or array (`.npz`/`.npy`); anything else is one line."""
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise GenlabError(f"{key}={path} does not exist")
    if path.suffix == ".ckpt":
        return "checkpoint"
    if path.suffix in ARRAY_SUFFIXES:
        return "array"
    raise GenlabError(
        f"{key}={path} is not a source of samples: give a folder of images, an .npz or .npy "
        "array (uint8, N x H x W x C) or a genlab .ckpt checkpoint"
    )


def estimating(advance: Advance, n: int, start: float, name: str) -> Advance:
    """`advance`, and once the first batch of several is made, the estimated time for all
    `n` samples (from that batch's time) in the log."""
    done = 0

    def on_batch(size: int) -> None:
        nonlocal done
        if done == 0 and size < n:
            seconds = (time.perf_counter() - start) * n / size
            log.info("%s: the first %d samples took %.0f s; all %d will take about %.0f min",
                     name, size, seconds * size / n, n, seconds / 60)  # fmt: skip
        done += size
        advance(size)

    return on_batch


@dataclass
class CheckpointSource:
    """A genlab checkpoint: its generator draws new images for every seed."""

    name: str
    path: Path
    model: GenerativeModule
    run_cfg: DictConfig
    latents: str = "prior"  # prior | gmm: where a VAE's latents come from
    batch_size: int = 500
    #: sampling options beyond the model's defaults (steps, solver, guidance, eta)
    sampling: dict[str, Any] = field(default_factory=dict)
    kind: str = "checkpoint"
    #: seconds spent in generation by the last `draw`
    last_generation_seconds: float = field(default=0.0, init=False)

    @classmethod
    def load(
        cls,
        name: str,
        path: Path,
        latents: str,
        batch_size: int,
        device: torch.device,
        sampling: dict[str, Any] | None = None,
    ) -> CheckpointSource:
        model, run_cfg = load_model(path)
        check_latents(latents, model)
        sampling = sampling or {}
        model.sampling_settings(**sampling)  # an option the model lacks fails before any work
        return cls(name, path, model.to(device), run_cfg, latents, batch_size, sampling)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        data = self.run_cfg.data
        return (int(data.channels), int(data.image_size), int(data.image_size))

    @property
    def num_classes(self) -> int | None:
        return self.model.num_classes or None

    def draw(self, n: int, seed: int) -> ImageSet:
        """`n` generated images from `seed`, with the labels a conditional model drew."""
        generator = torch.Generator().manual_seed(seed)
        nfe = self.model.function_evaluations(**self.sampling)
        if nfe != 1:  # an iterative model: say what the sampling costs before it starts
            log.info("%s: %d samples x %s network passes each (%s)", self.name, n,
                     nfe or "adaptive", self.model.sampling_settings(**self.sampling))  # fmt: skip
        start = time.perf_counter()
        # The labels generate() would draw itself, drawn first so that they are known.
        labels = self.model.sample_labels(n, generator)
        with progress(f"{self.name}: sampling", total=n) as advance:
            on_batch = estimating(advance, n, start, self.name) if nfe != 1 else advance
            images = self.model.generate(
                n, generator=generator, labels=labels, batch_size=self.batch_size,
                on_batch=on_batch, **self.sampling,
            )  # fmt: skip
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.last_generation_seconds = time.perf_counter() - start
        return ImageSet(images.cpu(), None if labels is None else labels.cpu())

    def use_fitted_mixture(self, datamodule: Any, components: int, seed: int) -> None:
        """Draw latents from a Gaussian mixture fitted to the training latents (latents=gmm)."""
        self.model.latent_draw = fit_latent_gmm(self.model, datamodule, components, seed)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "source_kind": self.kind,
            "checkpoint": str(self.path.resolve()),
            "model": type(self.model).__name__,
            "latents": self.latents,
            "sampling": self.model.sampling_settings(**self.sampling),
            "nfe": self.model.function_evaluations(**self.sampling),
        }


@dataclass
class FileSource:
    """Images from a folder or an array file, read once."""

    name: str
    path: Path
    kind: str
    images: ImageSet

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.images.image_shape

    @property
    def num_classes(self) -> int | None:
        labels = self.images.labels
        return None if labels is None else int(labels.max()) + 1

    def draw(self, n: int, seed: int) -> ImageSet:
        """`n` of the file's images: a subset drawn with `seed` when it holds more."""
        if n >= len(self.images):
            return self.images
        order = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(seed))
        return self.images.subset(order[:n])

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "source_kind": self.kind,
            "source_path": str(self.path.resolve()),
            "source_images": len(self.images),
        }


Source = CheckpointSource | FileSource


def read_file_source(
    name: str,
    path: Path,
    kind: str,
    folder_shape: tuple[int, int, int],
    images_key: str,
    labels_key: str | None,
    key: str = "samples",
) -> FileSource:
    """A folder (decoded at `folder_shape`) or an array file as a source."""
    if kind == "folder":
        images = read_folder(path, folder_shape, key)
    else:
        images = read_array(path, key, images_key, labels_key)
    return FileSource(name, path, kind, images)


def source_paths(ckpt_path: str | None, samples: Any) -> list[str]:
    """The sources named by `ckpt_path` and `samples` (a path or a list of paths), in order."""
    paths = [] if ckpt_path is None else [str(ckpt_path)]
    if samples is not None:
        paths += [str(samples)] if isinstance(samples, str | Path) else [str(s) for s in samples]
    if not paths:
        raise ConfigError(
            "ckpt_path must be given, or samples=<folder | .npz | .npy | .ckpt> (a list for a "
            "comparison table)"
        )
    return paths


def source_names(paths: list[str], names: Any) -> list[str]:
    """The row names of the sources: `names` when given (one per source), else the paths."""
    if names is None:
        chosen = list(paths)
    else:
        chosen = [str(names)] if isinstance(names, str) else [str(n) for n in names]
    if len(chosen) != len(paths):
        raise ConfigError(
            f"names has {len(chosen)} entries for {len(paths)} sources; give one each"
        )
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"names must differ from each other, got {chosen}")
    return chosen
