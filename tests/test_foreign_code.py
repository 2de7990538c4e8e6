"""Nothing read from a file decides what code runs: checkpoint configs and command-line
`_target_`s build only allowed classes, and the Inception weights are checked by hash."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from torch.hub import HASH_REGEX

from genlab.checkpoints import load_model, run_datamodule
from genlab.config.instantiate import check_target
from genlab.config.paths import config_dir
from genlab.data.cifar import CIFAR10DataModule
from genlab.data.errors import DataError
from genlab.errors import ConfigError, GenlabError
from genlab.metrics.extractors import (
    INCEPTION_SHA256,
    INCEPTION_WEIGHTS,
    build_extractor,
    inception_weights_path,
)
from genlab.train import train
from tests.helpers.fake_datasets import write_cifar10
from tests.helpers.runs import TINY_RUN, MakeConfig

BIN = Path(sys.executable).parent


class CreatesFile:
    """A pickle that creates `path` when it is unpickled (what a weights_only=False load runs)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.touch, (self.path,))


def payloads(marker: Path, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Configs whose instantiation would create `marker`, each through another route.

    Hydra 1.3.8 itself refuses `os.system` and `builtins.exec`, but not `torch.load` with
    `weights_only=False`, which unpickles (and so runs) whatever the file holds.
    """
    pickled = tmp_path / "payload.pkl"
    pickled.write_bytes(pickle.dumps(CreatesFile(marker)))
    return {
        "os.system": {"_target_": "os.system", "_args_": [f"touch {marker}"]},
        "builtins.exec": {"_target_": "builtins.exec", "_args_": [f"open({str(marker)!r}, 'w')"]},
        "torch.load": {"_target_": "torch.load", "f": str(pickled), "weights_only": False},
        "through genlab's namespace": {
            "_target_": "genlab.checkpoints.torch.load", "f": str(pickled), "weights_only": False,
        },
    }  # fmt: skip


def refused(call: Callable[[], object], marker: Path, pattern: str) -> None:
    """`call` fails with a ConfigError matching `pattern`, and the payload did not run."""
    with pytest.raises(ConfigError) as err:
        call()
    assert not marker.exists()
    assert re.search(pattern, str(err.value))


def crafted_checkpoint(path: Path, config: dict[str, Any]) -> Path:
    """A file that passes read_checkpoint: a dict with a run config and a state_dict."""
    torch.save({"genlab_config": config, "state_dict": {}}, path)
    return path


@pytest.mark.parametrize("route", ["os.system", "builtins.exec", "torch.load",
                                   "through genlab's namespace"])  # fmt: skip
def test_a_crafted_checkpoint_model_runs_nothing(tmp_path: Path, route: str) -> None:
    marker = tmp_path / "pwned"
    payload = payloads(marker, tmp_path)[route]
    ckpt = crafted_checkpoint(tmp_path / "crafted.ckpt", {"model": payload})
    refused(lambda: load_model(ckpt), marker, r"model\._target_=.* is not allowed")


def test_a_target_nested_inside_an_allowed_model_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = {
        "_target_": "genlab.models.GANModule",
        "generator": payloads(marker, tmp_path)["torch.load"],
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True},
    }
    ckpt = crafted_checkpoint(tmp_path / "crafted.ckpt", {"model": model})
    refused(
        lambda: load_model(ckpt), marker, r"^model\.generator\._target_=torch\.load is not allowed"
    )


def test_a_partial_target_is_refused_before_it_can_be_called(tmp_path: Path) -> None:
    model = {
        "_target_": "genlab.models.VAEModule",
        "optimizer": {"_target_": "torch.load", "_partial_": True, "weights_only": False},
    }
    ckpt = crafted_checkpoint(tmp_path / "crafted.ckpt", {"model": model})
    with pytest.raises(ConfigError, match=r"^model\.optimizer\._target_=torch\.load is not"):
        load_model(ckpt)


def test_a_crafted_checkpoint_data_config_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run_cfg = OmegaConf.create({"data": payloads(marker, tmp_path)["torch.load"]})
    refused(lambda: run_datamodule(run_cfg), marker, r"^data\._target_=torch\.load is not allowed")


def test_an_interpolated_target_is_checked_by_its_value(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = {**payloads(marker, tmp_path)["torch.load"], "_target_": "${oc.decode:'torch.load'}"}
    ckpt = crafted_checkpoint(tmp_path / "crafted.ckpt", {"model": payload})
    refused(lambda: load_model(ckpt), marker, r"model\._target_=torch\.load is not allowed")


def test_a_command_line_callback_target_runs_nothing(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    pickled = payloads(marker, tmp_path)["torch.load"]["f"]
    cfg = make_config(
        overrides=[*TINY_RUN, "logger=csv", "+callbacks.x._target_=torch.load",
                   f"+callbacks.x.f={pickled}", "+callbacks.x.weights_only=false"]
    )  # fmt: skip
    refused(lambda: train(cfg), marker, r"^callbacks\.x\._target_=torch\.load is not allowed")
    assert not (tmp_path / "checkpoints").exists()


def test_a_target_in_a_module_that_runs_code_on_import_is_refused_before_the_import(
    make_config: MakeConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing a module runs it: the config checks must refuse its name first."""
    marker = tmp_path / "pwned"
    (tmp_path / "evil_on_import.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\nclass Callback: ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = make_config(
        overrides=[*TINY_RUN, "logger=csv", "+callbacks.x._target_=evil_on_import.Callback"]
    )
    refused(lambda: train(cfg), marker, r"^callbacks\.x\._target_=evil_on_import\.Callback is not")
    assert "evil_on_import" not in sys.modules


def test_a_users_own_module_can_be_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="GENLAB_TRUSTED_MODULES"):
        check_target("model.optimizer._target_", "collections.OrderedDict")
    monkeypatch.setenv("GENLAB_TRUSTED_MODULES", "collections")
    check_target("model.optimizer._target_", "collections.OrderedDict")


def config_targets(tree: Any) -> list[str]:
    """Every `_target_` value in a YAML tree."""
    if isinstance(tree, dict):
        own = [tree["_target_"]] if "_target_" in tree else []
        return own + [t for key, value in tree.items() if key != "_target_"
                      for t in config_targets(value)]  # fmt: skip
    if isinstance(tree, list):
        return [t for item in tree for t in config_targets(item)]
    return []


def test_every_target_in_genlabs_config_groups_is_allowed() -> None:
    """The allow-list is not tighter than genlab's own configs (Hydra's own groups, its
    launchers, sweepers and callbacks, are built by Hydra, not by genlab)."""
    hydras = ("hydra", "hparams_search")
    files = [
        p
        for p in config_dir().rglob("*.yaml")
        if p.relative_to(config_dir()).parts[0] not in hydras
    ]
    found = [(path, t) for path in files for t in config_targets(yaml.safe_load(path.read_text()))]
    assert len({t for _, t in found}) >= 20  # generators, datamodules, callbacks, loggers, ...
    for path, target in found:
        check_target(f"{path.name}:_target_", target)


@pytest.mark.slow
def test_genlab_sample_refuses_a_crafted_checkpoint_in_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ckpt = crafted_checkpoint(
        tmp_path / "crafted.ckpt", {"model": payloads(marker, tmp_path)["torch.load"]}
    )
    proc = subprocess.run(
        [str(BIN / "genlab-sample"), f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()[-1].startswith("error: model._target_=torch.load is not")
    )
    assert not marker.exists()


def test_the_inception_hash_matches_torch_hubs_name_convention() -> None:
    """torch hub names a file `<name>-<first hex digits of its SHA-256>.<ext>`."""
    assert HASH_REGEX.search(INCEPTION_WEIGHTS).group(1) == INCEPTION_SHA256[:8]
    assert len(INCEPTION_SHA256) == 64


def test_a_crafted_inception_weights_file_is_never_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    weights = inception_weights_path()
    weights.parent.mkdir(parents=True)
    weights.write_bytes(pickle.dumps(CreatesFile(marker)))
    with pytest.raises(Exception) as err:  # the type is checked below
        build_extractor("inception")
    assert not marker.exists()
    assert isinstance(err.value, GenlabError)
    assert str(weights) in str(err.value) and "SHA-256" in str(err.value)


def test_a_crafted_download_is_never_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mirror or proxy that serves another file under the right name."""
    marker = tmp_path / "pwned"

    def download(url: str, dst: str, hash_prefix: str | None = None, **kwargs: object) -> None:
        Path(dst).write_bytes(pickle.dumps(CreatesFile(marker)))

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    with pytest.raises(Exception) as err:  # the type is checked below
        build_extractor("inception", allow_download=True)
    assert not marker.exists()
    assert isinstance(err.value, GenlabError) and "SHA-256" in str(err.value)


def test_a_crafted_cifar10_file_runs_nothing(tmp_path: Path) -> None:
    """CIFAR-10's batches are pickles; one that is not CIFAR-10's is refused, not run."""
    marker = tmp_path / "pwned"
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({"data": CreatesFile(marker), "labels": [0]}))
    datamodule = CIFAR10DataModule(data_dir=str(tmp_path), batch_size=4, verify_checksums=False)
    with pytest.raises(Exception) as err:  # the type is checked below
        datamodule.setup()
    assert not marker.exists()
    assert isinstance(err.value, DataError)
    assert "could not read the files" in str(err.value) and "pathlib" in str(err.value)
