"""genlab-ema: the post-hoc EMA of any length from a run's snapshots, as a checkpoint that
sampling, evaluation and export take; what it refuses, in one line each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from genlab.checkpoints import load_model
from genlab.errors import ConfigError, GenlabError
from genlab.posthoc_ema_cli import build_posthoc_ema
from genlab.train import train
from tests.helpers.runs import TINY_RUN_NO_METRICS, MakeConfig, compose_config

# 2 epochs of 3 iterations, a snapshot every 2 and one at the end: iterations 2, 4, 6
RUN = [*TINY_RUN_NO_METRICS, "callbacks=posthoc_ema", "trainer.max_epochs=2",
       "callbacks.posthoc_ema.snapshot_every=2"]  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run for the module; each test works on a copy of it."""
    directory = tmp_path_factory.mktemp("posthoc_run")
    train(compose_config("train", RUN, directory))
    return directory


@pytest.fixture
def run_dir(trained_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def test_a_stored_profile_comes_back_and_any_other_is_built(
    run_dir: Path, make_config: MakeConfig
) -> None:
    names = sorted(path.name for path in (run_dir / "ema_snapshots").glob("*.pt"))
    assert names == [f"{s:08d}-{r}.pt" for s in (2, 4, 6) for r in ("0.05", "0.1")]
    written = build_posthoc_ema(
        make_config("ema", [f"run_dir={run_dir}", "sigma_rels=[0.05,0.07]", "decays=[0.5]"])
    )
    # 0.5 at 6 iterations: sqrt(0.5) / 0.5 / 6 = 0.2357
    assert [path.name for path in written] == [
        "posthoc_ema-0.05.ckpt", "posthoc_ema-0.07.ckpt", "posthoc_ema-0.2357.ckpt",
    ]  # fmt: skip
    stored = torch.load(run_dir / "ema_snapshots" / "00000006-0.05.pt", weights_only=True)
    rebuilt = torch.load(written[0], weights_only=True)
    assert rebuilt["posthoc_ema"] == {"sigma_rel": 0.05, "step": 6, "profile_error": 0.0}
    assert "optimizer_states" not in rebuilt
    for key, value in stored["state_dict"].items():
        torch.testing.assert_close(rebuilt["state_dict"][key], value, rtol=1e-5, atol=1e-6)
    other = torch.load(written[1], weights_only=True)["state_dict"]
    assert any(not torch.allclose(other[k], v) for k, v in stored["state_dict"].items())
    model, _ = load_model(written[1])
    images = model.generate(4, generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 1, 28, 28) and images.abs().max() <= 1


def test_an_earlier_step_uses_only_the_snapshots_up_to_it(
    run_dir: Path, make_config: MakeConfig
) -> None:
    (path,) = build_posthoc_ema(
        make_config("ema", [f"run_dir={run_dir}", "sigma_rels=[0.1]", "step=4"])
    )
    stored = torch.load(run_dir / "ema_snapshots" / "00000004-0.1.pt", weights_only=True)
    rebuilt = torch.load(path, weights_only=True)
    assert rebuilt["posthoc_ema"]["step"] == 4
    for key, value in stored["state_dict"].items():
        torch.testing.assert_close(rebuilt["state_dict"][key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["step=7"], ConfigError, "step must lie in 1..6 (the last snapshot's), got 7"),
        (["sigma_rels=[0.3]"], ConfigError, "a sigma_rel must lie in (0, 0.289), got 0.3"),
        (["sigma_rels=[]"], ConfigError, "give sigma_rels=[...] or decays=[...]"),
        (["sigma_rels=[]", "decays=[1.0]"], ConfigError, "decays must lie in (0, 1), got 1.0"),
    ],
)
def test_a_bad_request_is_one_line(
    run_dir: Path, make_config: MakeConfig, overrides: list[str], error: type, message: str
) -> None:
    with pytest.raises(error) as raised:
        build_posthoc_ema(make_config("ema", [f"run_dir={run_dir}", *overrides]))
    assert str(raised.value).startswith(message), raised.value


def test_a_run_without_snapshots_and_a_damaged_snapshot_are_one_line(
    run_dir: Path, make_config: MakeConfig
) -> None:
    snapshot = run_dir / "ema_snapshots" / "00000004-0.1.pt"
    snapshot.write_bytes(snapshot.read_bytes()[:100])
    with pytest.raises(GenlabError, match=f"snapshot {snapshot} cannot be read"):
        build_posthoc_ema(make_config("ema", [f"run_dir={run_dir}"]))
    for path in (run_dir / "ema_snapshots").glob("*.pt"):
        path.unlink()
    with pytest.raises(GenlabError, match="holds no post-hoc EMA snapshots; train with callbacks"):
        build_posthoc_ema(make_config("ema", [f"run_dir={run_dir}"]))


def test_a_posthoc_checkpoint_is_not_resumed_and_survives(
    run_dir: Path, make_config: MakeConfig
) -> None:
    (path,) = build_posthoc_ema(make_config("ema", [f"run_dir={run_dir}", "sigma_rels=[0.1]"]))
    with pytest.raises(ConfigError, match=r"holds post-hoc EMA weights \(sigma_rel 0.1\) for samp"):
        train(make_config("train", [*RUN, "trainer.max_epochs=3", f"ckpt_path={path}"]))
    load_model(path)


@pytest.mark.slow  # genlab-eval as a process
def test_score_compares_live_fixed_decay_and_posthoc_weights_on_one_table(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    train(make_config("train", [*RUN, "callbacks=[ema,posthoc_ema]"]))
    eval_args = ["metrics.n_samples=100", "memorization.enabled=false",
                 f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    quoted = ",".join(f'"{arg}"' for arg in eval_args)
    # the command's output directory is the run's here (make_config puts it in tmp_path)
    build_posthoc_ema(make_config("ema", [
        f"run_dir={tmp_path}", "sigma_rels=[0.05,0.1]", "score=true", f"eval_args=[{quoted}]",
    ]))  # fmt: skip
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    live_path = tmp_path / "checkpoints" / "live.ckpt"
    live_checkpoint = torch.load(live_path, weights_only=True)
    assert "optimizer_states" not in live_checkpoint  # weights for sampling, not for resuming
    live = live_checkpoint["state_dict"]
    for key, value in last["current_model_state"].items():
        assert torch.equal(live[key], value), key
    with pytest.raises(ConfigError, match="holds the live weights of a run with an EMA for samp"):
        train(make_config("train", [*RUN, "trainer.max_epochs=3", f"ckpt_path={live_path}"]))
    assert any(not torch.equal(live[k], v) for k, v in last["state_dict"].items())
    rows = (tmp_path / "posthoc_ema.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in rows] == [
        ["weights", "sigma_rel"], ["live", ""], ["ema 0.999", ""],
        ["posthoc 0.05", "0.05"], ["posthoc 0.1", "0.1"],
    ]  # fmt: skip
    evaluated = json.loads((tmp_path / "posthoc_ema_eval" / "metrics.json").read_text())
    fids = [float(row.split(",")[2]) for row in rows[1:]]
    assert fids == [source["fid"] for source in evaluated["sources"]]
    assert len(set(fids)) == 4  # four different sets of weights
    best = min(fids[2:])
    assert f"FID {best:.4g}" in (tmp_path / "posthoc_ema.md").read_text()
    assert (tmp_path / "posthoc_ema.png").stat().st_size > 0
