"""Bad sampling options and labels on the command lines that sample (genlab-sample,
genlab-eval, a resumed genlab-train): one line naming the option, before any image is made;
none is recorded as if it had worked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from genlab.config.instantiate import build
from genlab.config.overrides import check_overrides, forced_on_resume
from genlab.errors import ConfigError
from genlab.eval import evaluate
from genlab.resume import restore_run_config
from genlab.sample import sample
from tests.helpers.cli import BIN, run
from tests.helpers.runs import TINY_RUN, compose_config
from tests.helpers.sample_files import digits, write_npz
from tests.helpers.tiny import tiny_flow

# An untrained flow with a network small enough to build in a moment.
FLOW = ["model=flow", "model.net.width=8", "logger=csv"]


@pytest.fixture(scope="module")
def flow_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained unconditional flow's checkpoint, as genlab-train writes its config."""
    folder = tmp_path_factory.mktemp("flow")
    cfg = compose_config("train", FLOW, folder)
    path = folder / "last.ckpt"
    torch.save(
        {
            "genlab_config": OmegaConf.to_container(cfg, resolve=True),
            "state_dict": build("model", cfg.model).state_dict(),
        },
        path,
    )
    return path


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        # once a hang: a million Euler steps per image, with no progress shown
        ("sampling.steps=1000000", r"^sampling\.steps must lie in 1\.\.10000 \("),
        # once silently recorded: an unconditional model's images are those of w = 1
        ("sampling.guidance=3", r"^sampling\.guidance=3 needs a class-conditional model"),
        # once all-black images with exit status 0
        ("sampling.guidance=nan", r"^sampling\.guidance must be a finite number >= 0, got nan"),
        ("sampling.guidance=inf", r"^sampling\.guidance must be a finite number >= 0, got inf"),
        ("sampling.rtol=-1", r"^sampling\.rtol must be a finite number > 0, got -1"),
    ],
)
@pytest.mark.parametrize("command", ["sample", "eval"])
def test_a_bad_sampling_option_is_one_line_before_any_image(
    flow_checkpoint: Path, tmp_path: Path, command: str, override: str, pattern: str
) -> None:
    overrides = [f"ckpt_path={flow_checkpoint}", "n=1", override]
    if command == "eval":
        overrides = [f"ckpt_path={flow_checkpoint}", "metrics.n_samples=10", override]
    cfg = compose_config(command, overrides, tmp_path)
    run = sample if command == "sample" else evaluate
    with pytest.raises(ConfigError, match=pattern):
        run(cfg)
    assert not list(tmp_path.rglob("*.png")) and not list(tmp_path.rglob("metrics.json"))


def test_dopri5_tolerances_reach_the_solver() -> None:
    """The documented `sampling.rtol`/`atol` change how many steps dopri5 takes (measured
    15 network evaluations at 0.1, 57 at 1e-4)."""
    model = tiny_flow()
    evaluations = []
    for tolerance in (1e-1, 1e-4):
        model.generate(2, generator=torch.Generator().manual_seed(0), solver="dopri5",
                       rtol=tolerance, atol=tolerance)  # fmt: skip
        evaluations.append(model.last_function_evaluations)
    assert evaluations[0] < evaluations[1]


@pytest.mark.parametrize("model", [FLOW, []], ids=["model=flow given", "default model"])
def test_sampling_options_may_change_when_a_run_resumes(tmp_path: Path, model: list[str]) -> None:
    """Once a 90-line traceback: they change how samples are drawn, not what is trained.
    Without `model=flow` on the command line today's default model (the GAN) has no
    sampling options, so the command line's are forced in (`++`) for resume to judge."""
    stored = compose_config("train", [*TINY_RUN, *FLOW], tmp_path / "first")
    checkpoint = {"genlab_config": OmegaConf.to_container(stored, resolve=True)}
    args = [*TINY_RUN, *model, "model.sampling.steps=3", "model.validation_sampling.steps=2",
            "ckpt_path=x"]  # fmt: skip
    args = forced_on_resume("train", args)
    check_overrides("train", args)
    resumed = compose_config("train", args, tmp_path / "second")
    restore_run_config(resumed, checkpoint)
    assert resumed.model.sampling.steps == 3 and resumed.model.validation_sampling.steps == 2
    assert resumed.model._target_ == "genlab.models.FlowMatchingModule"
    assert resumed.model.sampling.solver == stored.model.sampling.solver  # the rest: stored


def test_a_key_of_the_checkpoints_model_on_resume_is_answered_without_another_models_keys() -> None:
    """`ckpt_path=<flow run> model.coupling=ot`: the default model is the GAN, whose keys
    once were listed as the choices."""
    with pytest.raises(ConfigError) as info:
        check_overrides("train", ["ckpt_path=outputs/some/run", "model.coupling=ot"])
    message = str(info.value)
    assert message.startswith("model.coupling is not a key of today's default model config")
    assert "a resumed run keeps the checkpoint's model keys" in message
    assert "generator" not in message and "\n" not in message


def test_npz_labels_outside_the_references_classes_are_one_line(tmp_path: Path) -> None:
    """Once `class_accuracy: null` and a partial intra-class FID with exit status 0."""
    images, labels = digits("train", 60)
    npz = write_npz(tmp_path / "samples.npz", images, labels + 5)  # 5..14 for ten digits
    cfg = compose_config(
        "eval",
        [f"samples={npz}", "data=mnist_embedded", "metrics.n_samples=60",
         "memorization.enabled=false", f"paths.cache_dir={tmp_path / 'cache'}"],
        tmp_path / "eval",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"labels lie in 5\.\.14, outside the 10 classes 0\.\.9"):
        evaluate(cfg)
    assert not (tmp_path / "eval" / "metrics.json").exists()


@pytest.mark.slow
def test_genlab_train_takes_a_sampling_option_on_resume_without_naming_the_model(
    tmp_path: Path,
) -> None:
    """The console script forces `model.sampling.*` in when resuming (here shown by
    Hydra's `--cfg job`, which composes the config and runs nothing)."""
    done = run([str(BIN / "genlab-train"), "ckpt_path=some/run", "model.sampling.steps=3",
                "--cfg", "job"], cwd=tmp_path)  # fmt: skip
    assert "steps: 3" in done.stdout
