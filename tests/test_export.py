"""genlab-export: the generator as a torch.export program that plain PyTorch runs, in a fresh
process that never imports genlab, and its model card."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genlab.checkpoints import load_model
from genlab.config.overrides import check_overrides
from genlab.errors import ConfigError, GenlabError
from genlab.export import export
from genlab.runs.result import write_result
from genlab.train import train
from tests.helpers.checkpoints import write_checkpoint
from tests.helpers.runs import TINY_RUN_NO_METRICS, compose_config

# Run by a fresh interpreter: any import of genlab raises, and none may have happened.
LOADER = """
import sys

class NoGenlab:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "genlab":
            raise ImportError("the exported generator imported " + name)

sys.meta_path.insert(0, NoGenlab())
import torch

inputs = torch.load(sys.argv[2])
program = torch.export.load(sys.argv[1]).module()
with torch.no_grad():
    torch.save(program(*inputs), sys.argv[3])
assert not [m for m in sys.modules if m.split(".")[0] == "genlab"], "genlab was imported"
"""


def fixed_inputs(ckpt: Path, n: int, seed: int) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """generate(n) from `seed`, and the noise (and labels) it sampled from, drawn from the
    same seed in generate()'s order: labels first, then the noise."""
    model, _ = load_model(ckpt)
    expected = model.generate(n, generator=torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(seed)
    labels = model.sample_labels(n, generator)
    z = torch.randn(n, *model.noise_shape, generator=generator)
    return expected, (z,) if labels is None else (z, labels)


def run_without_genlab(program: Path, inputs: tuple[torch.Tensor, ...], tmp: Path) -> torch.Tensor:
    torch.save(inputs, tmp / "inputs.pt")
    subprocess.run(
        [sys.executable, "-c", LOADER, str(program), str(tmp / "inputs.pt"), str(tmp / "out.pt")],
        cwd=tmp, check=True, timeout=300, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return torch.load(tmp / "out.pt")


FLOW_WITH_GUIDANCE = ["experiment=cfg_flow_mnist", "model.net.width=8", "model.sampling.steps=3"]
DDIM = ["model=diffusion", "model.net.width=8", "model.sampling.steps=4"]
FLOW = ["model=flow", "model.net.width=8", "model.sampling.steps=3"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides", [["experiment=cgan_mnist"], ["model=vae"], FLOW_WITH_GUIDANCE, DDIM], ids=str
)
def test_the_exported_generator_reproduces_generate_in_a_process_without_genlab(
    tmp_path: Path, overrides: list[str]
) -> None:
    """Exported through `python -m genlab.export`; a conditional GAN (z and labels), an
    unconditional VAE (z alone), a conditional flow with guidance 2 (Heun, its loop
    unrolled) and DDIM; 11 images (the program was traced with 2)."""
    ckpt = write_checkpoint(tmp_path / "run", overrides, seed=4)
    out = tmp_path / "release"
    subprocess.run(
        [sys.executable, "-m", "genlab.export", f"ckpt_path={ckpt}", f"out_dir={out}",
         f"hydra.run.dir={tmp_path / 'export_run'}"],
        cwd=tmp_path, check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    expected, inputs = fixed_inputs(ckpt, 11, seed=9)
    images = run_without_genlab(out / "generator.pt2", inputs, tmp_path)
    assert images.shape == (11, 1, 28, 28) and images.std() > 0
    # A sampler compounds float rounding over its steps (DDIM's x0 divides by sqrt(abar_T),
    # about 0.006 at the noisiest step), and the fresh process runs other thread counts.
    iterative = overrides in (FLOW_WITH_GUIDANCE, DDIM)
    torch.testing.assert_close(images, expected, atol=2e-4 if iterative else 1e-5, rtol=0)
    assert (out / "model_card.md").is_file()


def test_the_model_card_states_config_data_training_and_evaluation(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "run", ["experiment=cgan_mnist"])
    write_result(tmp_path / "run", {"status": "completed", "wall_seconds": 123.4})
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"fid": 12.5, "extractor": "lenet"}))
    cfg = compose_config("export", [f"ckpt_path={ckpt}", f"metrics_file={metrics}"], tmp_path)
    program = export(cfg)
    card = (program.parent / "model_card.md").read_text()
    for fact in ("| model | GANModule |", "| num_classes | 10 |", "| noise_shape | [100] |",
                 "| dataset | MNISTEmbeddedDataModule |", "| training_wall_seconds | 123.4 |",
                 "| exported_with_genlab | ", "| genlab_commit | ", '"fid": 12.5',
                 "labels = torch.randint(10, (16,))", "seed: 42", "num_classes: 10"):  # fmt: skip
        assert fact in card


def test_a_stochastic_sampler_is_not_exported(tmp_path: Path) -> None:
    ckpt = write_checkpoint(
        tmp_path / "run", ["model=diffusion", "model.sampling.solver=ancestral"]
    )
    cfg = compose_config("export", [f"ckpt_path={ckpt}"], tmp_path / "out")
    with pytest.raises(ConfigError, match="samples with fresh noise at every step") as err:
        export(cfg)
    # the advice names keys this command takes (once model.sampling.*, which it does not)
    assert str(err.value).endswith(
        "export a deterministic sampler: sampling.solver=ddim sampling.eta=0"
    )
    assert "\n" not in str(err.value) and not list((tmp_path / "out").glob("generator.pt2"))


@pytest.mark.parametrize(
    ("model", "override", "message"),
    [
        # once 65 s of tracing and 40 lines of graph dump
        (FLOW, "sampling.solver=dopri5", r"^sampling\.solver=dopri5 takes as many steps as its "
         r"tolerances need, which an exported program cannot unroll; export a fixed-step solver"),
        (FLOW, "sampling.solver=ancestral", "samples with fresh noise at every step"),
        (FLOW, "sampling.solver=dpmpp2m", r"^sampling\.solver='dpmpp2m' is not a sampler"),
        (DDIM, "sampling.eta=0.5", "samples with fresh noise at every step"),
        (["model=gan"], "sampling.steps=3", "GANModule has no sampling option steps"),
    ],
)  # fmt: skip
def test_a_sampling_option_export_cannot_honour_is_refused_by_name(
    tmp_path: Path, model: list[str], override: str, message: str
) -> None:
    ckpt = write_checkpoint(tmp_path / "run", model)
    cfg = compose_config("export", [f"ckpt_path={ckpt}", override], tmp_path / "out")
    with pytest.raises(ConfigError, match=message):
        export(cfg)
    assert not list((tmp_path / "out").glob("generator.pt2"))


def test_a_key_export_does_not_take_is_refused_by_name() -> None:
    with pytest.raises(
        ConfigError, match=r"^sampling\.sover is not a config key; keys of sampling"
    ):
        check_overrides("export", ["ckpt_path=x", "sampling.sover=ddim"])


def test_the_export_samples_with_the_commands_sampling_options(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "run", FLOW)
    cfg = compose_config("export", [f"ckpt_path={ckpt}", "sampling.solver=euler",
                                    "sampling.steps=2"], tmp_path / "out")  # fmt: skip
    program = export(cfg)
    card = (program.parent / "model_card.md").read_text()
    assert "'solver': 'euler', 'steps': 2" in card and "| nfe | 2 |" in card
    model, _ = load_model(ckpt)
    z = torch.randn(3, *model.noise_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        exported = torch.export.load(program).module()(z)
        expected = model.sample(z, solver="euler", steps=2).clamp(-1, 1)
    torch.testing.assert_close(exported, expected, atol=1e-5, rtol=0)


def test_the_model_card_counts_the_epochs_trained(tmp_path: Path) -> None:
    """A 2-epoch run's card says 2 (Lightning's checkpoint `epoch` says 1)."""
    run = tmp_path / "run"
    train(compose_config("train", [*TINY_RUN_NO_METRICS, "trainer.max_epochs=2"], run))
    ckpt = run / "checkpoints" / "last.ckpt"
    program = export(compose_config("export", [f"ckpt_path={ckpt}"], tmp_path / "out"))
    assert "| epochs_trained | 2 |" in (program.parent / "model_card.md").read_text()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("metrics_file", "metrics_file={path} cannot be read as JSON"),
        ("ckpt_path", "{path}"),
    ],
)
def test_an_unreadable_input_is_one_line_and_writes_nothing(
    tmp_path: Path, setting: str, message: str
) -> None:
    bad = tmp_path / "broken"
    bad.write_text("{not json")
    good = {"ckpt_path": write_checkpoint(tmp_path / "run", ["model=gan"])}
    settings = {**good, setting: bad}
    cfg = compose_config("export", [f"{key}={value}" for key, value in settings.items()],
                         tmp_path / "out")  # fmt: skip
    with pytest.raises(GenlabError) as err:
        export(cfg)
    assert message.format(path=bad) in str(err.value) and "\n" not in str(err.value)
    assert not list((tmp_path / "out").glob("generator.pt2")) and not list(
        (tmp_path / "out").glob("model_card.md")
    )
