"""genlab-eval: score samples (a checkpoint, a folder of images, an .npz/.npy array) against a
reference (a dataset split, a folder, an array, a statistics file); write metrics.json and a
comparison table.

genlab-eval ckpt_path=<run>/checkpoints/best.ckpt
genlab-eval ckpt_path=... metrics=fid_inception metrics.n_samples=10000
genlab-eval ckpt_path=<VAE run>/checkpoints/best.ckpt latents=gmm   # + fid_gmm, ...
genlab-eval samples=samples.npz data=mnist_embedded                  # any generator's samples
genlab-eval samples=[gan.ckpt,vae.ckpt,digits/] names=[GAN,VAE,real] data=mnist_embedded
genlab-eval samples=folder/ reference=stats.npz                     # statistics from genlab-stats
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from genlab.config.overrides import checked_entry_point
from genlab.config.paths import config_dir
from genlab.config.resolvers import register_resolvers
from genlab.errors import user_errors_reported
from genlab.evaluation.harness import evaluate
from genlab.runs.result import result_recorded

__all__ = ["cli", "evaluate", "main"]

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def main(cfg: DictConfig) -> None:
    """Console entry point `genlab-eval`."""
    with user_errors_reported(), result_recorded(cfg):
        evaluate(cfg)


cli = checked_entry_point(main, config_name="eval")

if __name__ == "__main__":
    cli()
