"""`make bench ARGS=--quick` runs and writes its JSON (benchmarks are never timed assertions)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genlab.models import GenerativeModule
from tests.helpers.runs import compose_config, iterative_model_options, model_options

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_bench_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    if shutil.which("make"):
        command = [
            "make",
            "-s",
            "bench",
            f"ARGS=--quick --skip-sampling --models gan vae --out {out}",
        ]
    else:  # the sampling table is run in process below, on narrower networks
        command = [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--skip-sampling",
            "--models",
            "gan",
            "vae",
            "--out",
            str(out),
        ]
    env = {**os.environ, "WANDB_MODE": "offline"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training throughput" in done.stdout

    result = json.loads(out.read_text())
    assert {
        "environment",
        "settings",
        "training",
        "breakdown",
        "evaluation",
        "memory",
    } <= result.keys()
    assert {"date", "versions", "device", "cpu"} <= result["environment"].keys()
    rows = {(row["model"], row["precision"]) for row in result["training"]}
    assert {("gan", "32-true"), ("vae", "32-true"), ("gan", "bf16-mixed")} <= rows
    for row in result["training"]:
        for key in ("framework_img_s", "plain_img_s", "ratio"):
            assert math.isfinite(row[key]) and row[key] > 0, (row, key)
        assert len(row["framework_window_s"]) == len(row["plain_window_s"]) == 3
    assert "per-iteration cost, gan with near-zero networks" in done.stdout
    for breakdown in result["breakdown"]:  # --quick: the two ends of the breakdown
        rows = {row["key"]: row for row in breakdown["rows"]}
        assert rows.keys() == {"lightning", "genlab"}
        assert rows["lightning"]["added_ms"] == rows["lightning"]["overhead_ms"]
        genlab = rows["genlab"]
        assert genlab["added_ms"] == genlab["overhead_ms"] - rows["lightning"]["overhead_ms"]
        assert all(math.isfinite(row["overhead_cpu_ms"]) for row in rows.values())
        # the Trainer makes more calls per iteration than the plain loop, genlab's more still
        assert 0 < rows["lightning"]["overhead_calls"] < rows["genlab"]["overhead_calls"]
        assert breakdown["data_ms_per_batch"] > 0
    evaluation = result["evaluation"]
    for key in ("generate_gan_img_s", "generate_vae_img_s", "features_s", "frechet_s",
                "fid_eval_s", "real_features_s", "real_features_cached_s"):  # fmt: skip
        assert evaluation[key] > 0, key
    assert result["memory"]["peak_rss_mb"] > 0


def test_the_sampling_table_times_every_fixed_step_sampler_of_every_iterative_family(
    tmp_path: Path,
) -> None:
    from benchmarks.report import render_sampling
    from benchmarks.sampling import bench_sampling
    from rich.console import Console

    from genlab.denoising.samplers import SAMPLERS

    rows = bench_sampling(3, 4, 4, tmp_path, [])
    iterative = iterative_model_options()
    fixed = [name for name, spec in SAMPLERS.items() if spec.nfe([1.0, 0.0]) is not None]
    assert {(r["family"], r["solver"]) for r in rows} == {(f, s) for f in iterative for s in fixed}
    for row in rows:
        assert 1 <= row["nfe"] <= 3 and row["steps"] >= 1, row
        assert row["images_per_second"] > 0 and row["network_images_per_second"] > 0
    # heun spends 2 per step but 1 on the step to sigma = 0: 2 steps fit in NFE 3
    assert {r["steps"] for r in rows if r["solver"] == "heun" and r["family"] == "edm"} == {2}
    console = Console(record=True, width=160)
    render_sampling({"nfe": 3, "rows": rows}, console)
    assert "dpmpp_2m" in console.export_text()


@pytest.mark.parametrize("argv", [["--window", "0"], ["--models", "gan", "--windows", "0"]])
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    from benchmarks.cli import parse_args

    with pytest.raises(SystemExit):
        parse_args(argv)


def plain_loop_model(family: str, tmp_path: Path) -> GenerativeModule:
    """A model of `family` with what its update can hold: the GAN's penalty, augmentation and
    labels, the VAE's IWAE bound; flow, diffusion and EDM as their configs build them,
    conditional, with a narrow UNet."""
    from hydra.utils import instantiate

    from tests.helpers.tiny import tiny_gan, tiny_vae

    if family == "gan":
        return tiny_gan(r1_gamma=1.0, augment=["translation"], num_classes=10)
    if family == "vae":
        return tiny_vae(objective="iwae")
    overrides = [f"model={family}", "model.num_classes=10", "model.net.width=8"]
    return instantiate(compose_config("train", overrides, tmp_path).model)


@pytest.mark.parametrize("family", model_options())
def test_the_plain_loop_makes_the_trainers_update(family: str, tmp_path: Path) -> None:
    """One plain-loop iteration from the same weights and seed lands on the weights of one
    Trainer step: the loop runs the model's own updates (penalties, augmentation, labels,
    noise levels and noise)."""
    from benchmarks.training import PlainLoop

    from tests.helpers.tiny import fit, loader

    torch.manual_seed(0)
    trained, plain = plain_loop_model(family, tmp_path), plain_loop_model(family, tmp_path)
    plain.load_state_dict(trained.state_dict())
    torch.manual_seed(1)
    fit(trained, 1, loader())
    torch.manual_seed(1)
    PlainLoop(plain, loader, torch.device("cpu"), "32-true").run(1)
    expected = plain.state_dict()
    for name, value in trained.state_dict().items():
        assert torch.allclose(value, expected[name], atol=1e-6), name


def test_every_family_is_benched_and_has_near_zero_networks(tmp_path: Path) -> None:
    """`make bench` times every option of conf/model/ by default, and the breakdown's
    near-zero networks replace each family's own and still train."""
    from benchmarks.cli import parse_args
    from benchmarks.near_zero import near_zero_networks
    from benchmarks.training import PlainLoop, training_config
    from hydra.utils import instantiate

    from tests.helpers.tiny import loader

    assert parse_args([]).models == model_options()
    for family in model_options():
        cfg = training_config(family, "32-true", 8, tmp_path / family, [])
        near_zero_networks(cfg)
        model = instantiate(cfg.model)
        networks = [m for m in model.children() if isinstance(m, torch.nn.Module)]
        assert all(type(m).__module__ == "benchmarks.near_zero" for m in networks if
                   sum(p.numel() for p in m.parameters()) > 0), (family, networks)  # fmt: skip
        assert sum(p.numel() for p in model.parameters()) < 1_000, family  # real ones: 1e5+
        before = {k: v.clone() for k, v in model.state_dict().items()}
        PlainLoop(model, loader, torch.device("cpu"), "32-true").run(2)
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
        assert changed, f"{family}: a step of the near-zero networks changed no weight"


def test_summary_pairs_each_trainer_window_with_the_plain_window_after_it() -> None:
    from benchmarks.training import InterleavedTimer, Span

    from tests.helpers.tiny import tiny_vae

    timer = InterleavedTimer(tiny_vae(), "32-true", "unused.json", window=10)
    timer.batch_size = 8
    # (wall, CPU) seconds of 10 iterations; the machine slows down in the third pair
    timer.framework = [Span(0.30, 0.20), Span(0.32, 0.21), Span(0.90, 0.22)]
    timer.plain_windows = [Span(0.20, 0.15), Span(0.21, 0.15), Span(0.80, 0.16)]
    timer.calls = {"framework": 900.0, "plain": 300.0}  # per iteration, from cProfile
    summary = timer.summary()
    # paired differences 0.10, 0.11, 0.10 s per 10 iterations: median 10 ms an iteration;
    # unpaired medians would give (0.32 - 0.21) / 10 = 11 ms
    assert summary["overhead_ms"] == pytest.approx(10.0)
    assert summary["overhead_cpu_ms"] == pytest.approx(6.0)  # 0.05, 0.06, 0.06
    assert summary["ratio"] == pytest.approx(0.20 / 0.30)  # ratios .667, .656, .889
    assert summary["framework_img_s"] == pytest.approx(80 / 0.32)
    assert summary["epoch_end_ms"] is None
    assert summary["overhead_calls"] == 600.0


def test_breakdown_settings_switch_off_what_they_leave_out(tmp_path: Path) -> None:
    from benchmarks.near_zero import near_zero_networks
    from benchmarks.overhead import apply, settings
    from benchmarks.training import training_config
    from hydra.utils import instantiate

    from genlab.config.instantiate import build_all

    base = training_config("vae", "32-true", 8, tmp_path, [])
    names = [name for name, node in base.callbacks.items() if node is not None]
    chosen = {s.key: s for s in settings(names)}
    assert {"lightning", "logging", "callbacks.nan_guard", "callbacks.progress_bar", "genlab"} <= (
        chosen.keys()
    )

    def trainer_of(key: str):
        cfg = training_config("vae", "32-true", 8, tmp_path, list(chosen[key].overrides))
        near_zero_networks(cfg)
        apply(chosen[key], cfg)
        callbacks = build_all("callbacks", cfg.callbacks)
        trainer = instantiate(
            cfg.trainer, callbacks=callbacks, logger=build_all("logger", cfg.logger)
        )
        return trainer, cfg

    trainer, cfg = trainer_of("lightning")
    assert trainer.callbacks == [] and trainer.loggers == []  # not even Lightning's defaults
    assert trainer.progress_bar_callback is None and trainer.checkpoint_callback is None
    assert cfg.model.encoder._target_ == "benchmarks.near_zero.MeanPixelEncoder"
    trainer, _ = trainer_of("callbacks.progress_bar")
    assert [type(c).__name__ for c in trainer.callbacks] == ["IntervalProgressBar"]
    assert [type(logger).__name__ for logger in trainer.loggers] == ["CSVLogger"]
    trainer, cfg = trainer_of("genlab")
    assert len(trainer.callbacks) == len(names)
    assert trainer.log_every_n_steps == base.trainer.log_every_n_steps
