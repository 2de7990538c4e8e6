"""A generator as a file that runs without genlab, and its model card.

The file is a `torch.export` program (`.pt2`): the sampling networks' graph and weights,
loaded with plain PyTorch (`torch.export.load(path).module()`), batch size free. It maps
noise (N, *noise_shape), plus class labels (N,) for a conditional model, to images in
[-1, 1], exactly as `generate()` samples them (eval mode, clamped). For a flow or diffusion
model the sampler's loop is unrolled into the program with the model's sampling settings
(solver, steps, guidance), which the card states; only a deterministic sampler can be
written this way. TorchScript, the older
format, is deprecated in the PyTorch genlab uses (torch.jit.trace warns so); ONNX would need
the `onnx` and `onnxscript` packages, which genlab does not depend on.

Only the networks that sampling runs are in the file (a GAN's discriminator and a VAE's
encoder are not): they are found by running `sample` once with forward hooks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

import genlab
from genlab.compat import checkpoint_epochs_trained
from genlab.errors import ConfigError, GenlabError, first_line
from genlab.models.base import GenerativeModule
from genlab.runs.result import read_result
from genlab.utils.files import write_atomically
from genlab.utils.git import git_commit

EXPORT_FILE = "generator.pt2"
CARD_FILE = "model_card.md"


def networks_used_by_sample(
    model: GenerativeModule, settings: dict[str, Any], z: Tensor, labels: Tensor | None = None
) -> list[str]:
    """Names of the model's child modules that `sample` runs with `settings`."""
    called: list[str] = []
    hooks = [
        child.register_forward_hook(lambda *_, name=name: called.append(name))
        for name, child in model.named_children()
    ]
    try:
        with torch.no_grad():
            model.sample(z, labels, **settings)
    finally:
        for hook in hooks:
            hook.remove()
    return list(dict.fromkeys(called))


class ExportedGenerator(nn.Module):
    """`model.sample(z, labels, **settings).clamp(-1, 1)`, holding only the networks
    sampling runs."""

    def __init__(self, model: GenerativeModule, settings: dict[str, Any], used: list[str]) -> None:
        super().__init__()
        self.networks = nn.ModuleDict({name: getattr(model, name) for name in used})
        object.__setattr__(self, "model", model)  # not a submodule: the rest stays out
        self.settings = settings

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.model.sample(z, labels, **self.settings).clamp(-1.0, 1.0)


def example_inputs(model: GenerativeModule) -> tuple[Tensor, ...]:
    """Two noises (and labels): what the program is traced with."""
    z = torch.zeros(2, *model.noise_shape)
    return (z, torch.zeros(2, dtype=torch.long)) if model.conditional else (z,)


def export_generator(
    model: GenerativeModule, path: Path, sampling: dict[str, Any] | None = None
) -> Path:
    """Write the model's sampler, with its sampling settings updated by `sampling` (the
    command's `sampling.*`), as a torch.export program with a free batch size.

    The loop of an iterative model is unrolled into the program, so its sampler must be
    deterministic and take a fixed number of steps. The written file is loaded back and
    checked against `sample` on random noise; a mismatch is an error, not a silent export.
    """
    model = model.cpu().eval()
    settings = model.sampling_settings(**(sampling or {}))
    if not model.deterministic_sampling(**settings):
        raise ConfigError(
            f"{type(model).__name__} samples with fresh noise at every step ({settings}), "
            "which a program of the noise alone cannot reproduce; export a deterministic "
            "sampler: sampling.solver=ddim sampling.eta=0"
        )
    if model.function_evaluations(**settings) is None:
        raise ConfigError(
            f"sampling.solver={settings.get('solver')} takes as many steps as its tolerances "
            "need, which an exported program cannot unroll; export a fixed-step solver: "
            "sampling.solver=heun (or euler) with sampling.steps=N"
        )
    inputs = example_inputs(model)
    decoder = ExportedGenerator(model, settings, networks_used_by_sample(model, settings, *inputs))
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.export.export(
            decoder, inputs, dynamic_shapes=tuple({0: batch} for _ in inputs)
        )
    except Exception as err:  # the exporter raises many types for graphs it cannot capture
        reason = first_line(err)
        raise GenlabError(f"torch.export cannot capture this generator: {reason}") from None

    def write(tmp: Path) -> None:
        with tmp.open("wb") as file:
            torch.export.save(program, file)

    write_atomically(path, write)
    check_round_trip(model, decoder, path)
    return path


def check_round_trip(model: GenerativeModule, decoder: ExportedGenerator, path: Path) -> None:
    """The saved program must reproduce the model on 5 random noises (a batch size it was
    not traced with)."""
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(5, *model.noise_shape, generator=generator)
    inputs = (z, torch.arange(5) % model.num_classes) if model.conditional else (z,)
    loaded = torch.export.load(path).module()
    with torch.no_grad():
        expected, got = decoder(*inputs), loaded(*inputs)
    if not torch.allclose(expected, got, atol=1e-5):
        raise GenlabError(
            f"the exported {path} differs from the model by {float((expected - got).abs().max())}"
        )


def card_facts(
    model: GenerativeModule,
    checkpoint: dict[str, Any],
    ckpt_path: Path,
    run_cfg: DictConfig,
    sampling: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the card states about the model, its data, its training and the sampling
    settings (updated by `sampling`) the program was exported with."""
    settings = model.sampling_settings(**(sampling or {}))
    data = run_cfg.data
    run = read_result(ckpt_path.resolve().parent.parent) or {}
    return {
        "checkpoint": str(ckpt_path.resolve()),
        "model": type(model).__name__,
        "noise_shape": list(model.noise_shape),
        "sampling": settings or "one pass",
        "nfe": model.function_evaluations(**settings),
        "num_classes": model.num_classes,
        "image_shape": [int(data.channels), int(data.image_size), int(data.image_size)],
        "dataset": str(data.get("_target_", "?")).rsplit(".", 1)[-1],
        "epochs_trained": checkpoint_epochs_trained(checkpoint) if "loops" in checkpoint else None,
        "optimizer_steps": checkpoint.get("global_step"),
        "training_wall_seconds": run.get("wall_seconds"),
        "training_status": run.get("status"),
        "trained_with_genlab": checkpoint.get("genlab_version"),
        "exported_with_genlab": genlab.__version__,
        "genlab_commit": git_commit(Path(genlab.__file__).parent),
        "torch": torch.__version__,
    }


def model_card(
    facts: dict[str, Any], run_cfg: DictConfig, metrics: dict[str, Any] | None, file_name: str
) -> str:
    """The Markdown model card."""
    classes = facts["num_classes"]
    label_lines = [f"labels = torch.randint({classes}, (16,))  # the class of each image"]
    lines = [
        f"# {facts['model']} generator",
        "",
        f"`{file_name}` is a torch.export program: it needs PyTorch {facts['torch'].split('+')[0]}"
        " or newer, not genlab.",
        "",
        "```python",
        "import torch",
        f'g = torch.export.load("{file_name}").module()',
        f"z = torch.randn(16, {', '.join(map(str, facts['noise_shape']))})  # the prior N(0, I)",
        *(label_lines if classes else []),
        f"images = g({'z, labels' if classes else 'z'})  # (16, C, H, W) in [-1, 1]",
        "```",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts.items()),
        "",
        "## Evaluation",
        "",
    ]
    if metrics is None:
        lines.append("Not evaluated: export with metrics_file=<genlab-eval's metrics.json>.")
    else:
        lines += ["```json", json.dumps(metrics, indent=2), "```"]
    config = yaml.safe_dump(OmegaConf.to_container(run_cfg, resolve=False), sort_keys=False)
    lines += ["", "## Training config", "", "```yaml", config.rstrip(), "```", ""]
    return "\n".join(lines)


def read_metrics(path: str | None) -> dict[str, Any] | None:
    """The metrics.json to quote in the card, or None."""
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise GenlabError(f"metrics_file={path} cannot be read as JSON: {err}") from None


def write_card(path: Path, text: str) -> Path:
    write_atomically(path, lambda tmp: tmp.write_text(text))
    return path
