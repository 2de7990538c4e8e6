"""genlab-export: a checkpoint's generator as a file that loads without genlab, with a model card.

genlab-export ckpt_path=<run>/checkpoints/best.ckpt
genlab-export ckpt_path=... metrics_file=<eval run>/metrics.json out_dir=release/
genlab-export ckpt_path=<flow run>/checkpoints/last.ckpt sampling.steps=10   # fewer steps
Then, anywhere with PyTorch: torch.export.load("generator.pt2").module()(torch.randn(16, 100))
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from genlab.checkpoints import load_model, read_checkpoint
from genlab.config.checks import sampling_overrides
from genlab.config.overrides import checked_entry_point
from genlab.config.paths import config_dir
from genlab.config.resolvers import register_resolvers
from genlab.errors import user_errors_reported
from genlab.evaluation.standalone import (
    CARD_FILE,
    EXPORT_FILE,
    card_facts,
    export_generator,
    model_card,
    read_metrics,
    write_card,
)
from genlab.runs.output_paths import writable_directory
from genlab.runs.result import result_recorded
from genlab.utils.progress import progress

log = logging.getLogger(__name__)


def export(cfg: DictConfig) -> Path:
    """Write `generator.pt2` and `model_card.md` into `cfg.out_dir`; return the program's path."""
    out_dir = writable_directory("out_dir", Path(cfg.out_dir))
    metrics = read_metrics(cfg.metrics_file)
    model, run_cfg = load_model(cfg.ckpt_path)
    sampling = sampling_overrides(cfg.sampling)
    with progress(f"exporting {type(model).__name__} (traced, then checked on new noise)"):
        program = export_generator(model, out_dir / EXPORT_FILE, sampling)
    checkpoint = read_checkpoint(cfg.ckpt_path)
    facts = card_facts(model, checkpoint, Path(cfg.ckpt_path), run_cfg, sampling)
    write_card(out_dir / CARD_FILE, model_card(facts, run_cfg, metrics, EXPORT_FILE))
    log.info("wrote %s and %s", program, out_dir / CARD_FILE)
    return program


register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="export")
def main(cfg: DictConfig) -> None:
    """Console entry point `genlab-export`."""
    with user_errors_reported(), result_recorded(cfg):
        export(cfg)


cli = checked_entry_point(main, config_name="export")

if __name__ == "__main__":
    cli()
