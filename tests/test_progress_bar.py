"""IntervalProgressBar: updated every N batches, showing the train/ scalars the models log."""

from __future__ import annotations

import pytest
from pytorch_lightning.callbacks import RichProgressBar

from genlab.callbacks import IntervalProgressBar
from genlab.utils.errors import ConfigError
from tests.helpers.tiny import fit, tiny_gan, tiny_vae


@pytest.mark.parametrize("make_model", [tiny_gan, tiny_vae], ids=["gan", "vae"])
def test_the_bar_updates_every_n_batches_and_shows_the_train_scalars(
    make_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    updates: list[int] = []
    shown: list[dict] = []
    rich_update = RichProgressBar.on_train_batch_end

    def counted(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        updates.append(batch_idx)
        shown.append(self.get_metrics(trainer, pl_module))
        rich_update(self, trainer, pl_module, outputs, batch, batch_idx)

    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", counted)
    bar = IntervalProgressBar(every_n_batches=3, refresh_rate=0)  # no drawing in a test
    model = make_model()
    # 64 images in batches of 8: 8 batches an epoch; 10 iterations = 8 + 2
    trainer = fit(model, iterations=10, callbacks=[bar], enable_progress_bar=True,
                  log_every_n_steps=1)  # fmt: skip
    # batches 3 and 6, the epoch's last (8), then where max_steps stops the second (2)
    assert updates == [2, 5, 7, 1]
    # the models log train/ scalars without prog_bar: Lightning does not turn them into
    # numbers after every batch; the bar reads them itself, as numbers
    assert not [name for name in trainer.progress_bar_metrics if name.startswith("train/")]
    expected = {"train/d_loss", "train/g_loss"} if make_model is tiny_gan else {"train/loss"}
    for metrics in shown:
        assert expected <= metrics.keys()
        assert all(type(metrics[name]) is float for name in expected)


def test_a_bad_interval_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="every_n_batches must be >= 1, got 0"):
        IntervalProgressBar(every_n_batches=0)
