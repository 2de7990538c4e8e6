"""A write that fails half-way (a full disk, a crash) leaves the previous file whole.

Each test makes the write of one file itself fail: the bytes written so far reach the
disk, then ENOSPC is raised. Whatever genlab writes through (a temporary file beside the
target, then a rename), the target must still hold its previous content and no temporary
file may be left behind; a write straight to the target would leave half a file there.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from genlab.checkpoints import AtomicCheckpointIO, read_checkpoint
from genlab.errors import GenlabError
from genlab.metrics.stats_cache import cache_key, cache_path, cached_features
from genlab.runs.result import read_result, write_result
from genlab.sample import write_npz
from genlab.train import train
from genlab.utils import files
from tests.helpers.runs import TINY_RUN_WITHOUT_METRICS, MakeConfig


class FailingWrites:
    """Fails the `fail_at`-th write (1-based) whose destination's name contains `name`,
    after writing the first half of its bytes."""

    def __init__(self, name: str, fail_at: int) -> None:
        self.name, self.fail_at, self.writes = name, fail_at, 0

    def hits(self, destination: Any) -> bool:
        """A path, or an open file (genlab may save through one), whose name matches."""
        target = (
            destination if isinstance(destination, str | Path) else getattr(destination, "name", "")
        )
        if self.name not in Path(str(target)).name:
            return False
        self.writes += 1
        return self.writes == self.fail_at

    def half_then_fail(self, destination: Any, data: bytes) -> None:
        half = data[: len(data) // 2]
        if isinstance(destination, str | Path):
            Path(destination).write_bytes(half)
        else:
            destination.write(half)
            destination.flush()
        raise OSError(errno.ENOSPC, "No space left on device", str(destination))

    def torch_save(self, original: Callable[..., None]) -> Callable[..., None]:
        def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
            if not self.hits(f):
                return original(obj, f, *args, **kwargs)
            buffer = io.BytesIO()
            original(obj, buffer, *args, **kwargs)
            self.half_then_fail(f, buffer.getvalue())

        return save

    def write_text(self, original: Callable[..., int]) -> Callable[..., int]:
        def write(path: Path, text: str, *args: Any, **kwargs: Any) -> int:
            if not self.hits(path):
                return original(path, text, *args, **kwargs)
            self.half_then_fail(path, text.encode())

        return write


def leftovers(directory: Path) -> list[Path]:
    """Temporary files of interrupted writes."""
    return [p for p in directory.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.suffixes]


def test_a_failed_write_of_last_ckpt_keeps_the_previous_one(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault = FailingWrites("last.ckpt", fail_at=2)  # epoch 0's write succeeds, epoch 1's fails
    monkeypatch.setattr(torch, "save", fault.torch_save(torch.save))
    cfg = make_config(
        overrides=[*TINY_RUN_WITHOUT_METRICS, "trainer.max_epochs=2", "logger=csv", "metrics=none"]
    )
    with pytest.raises((OSError, GenlabError, SystemExit)):
        train(cfg)
    assert fault.writes == 2  # the fault was really injected into last.ckpt's second write
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    checkpoint = read_checkpoint(checkpoints / "last.ckpt")  # whole, and genlab's
    assert checkpoint["epoch"] == 0 and checkpoint["global_step"] > 0
    assert leftovers(checkpoints) == []


def test_a_failed_write_of_the_feature_cache_leaves_no_file_and_heals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = cache_key("mnist", "val", 3, "img", "lenet", "abc")
    features = torch.arange(6.0).view(3, 2)
    fault = FailingWrites(cache_path(tmp_path, key).name, fail_at=1)
    monkeypatch.setattr(torch, "save", fault.torch_save(torch.save))
    with pytest.raises(OSError):
        cached_features(tmp_path, key, lambda: features)
    assert fault.writes == 1
    assert not cache_path(tmp_path, key).exists() and leftovers(tmp_path) == []
    assert torch.equal(cached_features(tmp_path, key, lambda: features), features)
    assert torch.equal(cached_features(tmp_path, key, lambda: features * 0), features)  # stored


def test_a_failed_write_of_result_yaml_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_result(tmp_path, {"status": "running", "value": None})
    fault = FailingWrites("result.yaml", fail_at=1)
    monkeypatch.setattr(Path, "write_text", fault.write_text(Path.write_text))
    with pytest.raises(OSError):
        write_result(tmp_path, {"status": "completed", "value": 1.5, "error": "x" * 4000})
    assert fault.writes == 1
    assert read_result(tmp_path) == {"status": "running", "value": None}
    assert yaml.safe_load((tmp_path / "result.yaml").read_text())["status"] == "running"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_are_as_readable_as_the_umask_allows(
    umask: int, mode: int, tmp_path: Path
) -> None:
    previous = os.umask(umask)
    files.process_umask.cache_clear()
    try:
        checkpoint = tmp_path / "last.ckpt"
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, checkpoint)
        written = [checkpoint, write_npz(torch.zeros(2, 1, 4, 4), None, tmp_path / "s.npz")]
        write_result(tmp_path, {"status": "completed"})
        written.append(next(tmp_path.glob("result.yaml")))
    finally:
        os.umask(previous)
        files.process_umask.cache_clear()
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in written} == dict.fromkeys(
        (path.name for path in written), mode
    )
