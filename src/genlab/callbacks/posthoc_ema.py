"""Post-hoc EMA during training: two power-function averages of the weights and their
snapshots, from which `genlab-ema` builds the EMA of any length after training (EDM2,
Karras et al. 2024, sec. 3; the mathematics is `genlab.posthoc_ema`).

After every training iteration the module's state (weights and buffers, so that a
batch-norm network normalises with averaged statistics, as `callbacks.ema` does with
`use_buffers`) is folded into one average per `sigma_rel`; every `snapshot_every`
iterations, and at the end of training, each average is written to
`<dirpath>/<step>-<sigma_rel>.pt` by rank 0, atomically. The averages travel in every
checkpoint (this callback's state), so a resumed run continues the same profiles and
writes the snapshots the uninterrupted run would have written. The averages follow the
weights being trained, not those of `callbacks.ema` (which the module holds only while
validating).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from genlab.checkpoints import save_into_file
from genlab.errors import ConfigError
from genlab.posthoc_ema import MAX_SIGMA_REL, PowerEMA, is_sigma_rel
from genlab.utils.files import write_atomically

#: where a run's snapshots go (conf/callbacks/posthoc_ema.yaml's dirpath) and genlab-ema looks
SNAPSHOT_DIR = "ema_snapshots"


def snapshot_name(step: int, sigma_rel: float) -> str:
    """`<step, 8 digits>-<sigma_rel>.pt`: sorted by step, one file per profile."""
    return f"{step:08d}-{sigma_rel:g}.pt"


def snapshot_step(path: Path) -> int:
    """The training iteration of a snapshot file, read from its `snapshot_name`."""
    return int(path.name.split("-")[0])


class PostHocEMA(pl.Callback):
    """Power-function EMAs of the weights with sigma_rel in `sigma_rels`, written every
    `snapshot_every` training iterations (and at the end) into `dirpath`."""

    def __init__(
        self, dirpath: str | Path, sigma_rels: list[float], snapshot_every: int = 100
    ) -> None:
        sigma_rels = list(sigma_rels)
        if not sigma_rels or not all(map(is_sigma_rel, sigma_rels)):
            raise ConfigError(
                f"callbacks.posthoc_ema.sigma_rels must be a non-empty list of numbers in "
                f"(0, {MAX_SIGMA_REL:.3f}), got {sigma_rels}"
            )
        if not isinstance(snapshot_every, int) or snapshot_every < 1:
            raise ConfigError(
                "callbacks.posthoc_ema.snapshot_every must be an integer >= 1, "
                f"got {snapshot_every}"
            )
        self.dirpath = Path(dirpath)
        self.snapshot_every = snapshot_every
        self.averages = PowerEMA(sigma_rels)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Averages restored from a checkpoint come in on the CPU: put them beside the weights."""
        for average in self.averages.averages:
            for name, tensor in average.items():
                average[name] = tensor.to(pl_module.device)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        self.averages.update(pl_module.state_dict(), self.averages.step + 1)
        if self.averages.step % self.snapshot_every == 0:
            self.write_snapshots(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averages.step and self.averages.step % self.snapshot_every:
            self.write_snapshots(trainer)

    def write_snapshots(self, trainer: pl.Trainer) -> None:
        """One file per profile: its average at this step, with the profile that made it."""
        if not trainer.is_global_zero:
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        step = self.averages.step
        for sigma_rel, gamma, average in zip(
            self.averages.sigma_rels, self.averages.gammas, self.averages.averages, strict=True
        ):
            snapshot = {
                "step": step,
                "sigma_rel": sigma_rel,
                "gamma": gamma,
                "state_dict": {name: t.detach().cpu() for name, t in average.items()},
            }
            write_atomically(
                self.dirpath / snapshot_name(step, sigma_rel),
                lambda tmp, snapshot=snapshot: save_into_file(snapshot, tmp),
            )

    def state_dict(self) -> dict[str, Any]:
        return self.averages.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        try:
            self.averages.load_state_dict(state_dict)
        except ValueError as err:
            raise ConfigError(
                f"callbacks.posthoc_ema: {err}; the profiles cannot change on resume"
            ) from None

    @property
    def state_key(self) -> str:
        return "PostHocEMA"
