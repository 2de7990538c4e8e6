"""genlab-stats: the feature statistics (mu, sigma) of any image source, as an `.npz` file in
pytorch-fid's layout with the extractor's name and weights checksum inside.

genlab-stats data=mnist_embedded split=test out_file=mnist_test_stats.npz
genlab-stats source=folder_of_pngs/ metrics=fid_inception
genlab-stats source=samples.npz            # arr_0: uint8 (N, H, W, C)
Then: genlab-eval samples=... reference=mnist_test_stats.npz
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from genlab.config.overrides import checked_entry_point
from genlab.config.paths import config_dir
from genlab.config.resolvers import register_resolvers
from genlab.errors import user_errors_reported
from genlab.evaluation.make_statistics import make_statistics
from genlab.runs.result import result_recorded

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="stats")
def main(cfg: DictConfig) -> None:
    """Console entry point `genlab-stats`."""
    with user_errors_reported(), result_recorded(cfg):
        make_statistics(cfg)


cli = checked_entry_point(main, config_name="stats")

if __name__ == "__main__":
    cli()
