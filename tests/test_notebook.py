"""notebooks/explore.ipynb runs top to bottom on a fresh run of each model, and is stored clean."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from genlab.train import train
from tests.helpers.runs import TINY_RUN_WITHOUT_METRICS, MakeConfig

pytestmark = pytest.mark.slow  # runs the notebook in a kernel on fresh training runs

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"


@pytest.fixture
def venv_kernel(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec that runs this interpreter, found first: a `python3` spec of another
    Python elsewhere on the machine could lack genlab."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / "genlab-test"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "genlab test", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    return "genlab-test"


def image_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """The PNGs the executed notebook shows, in cell order."""
    return [
        output["data"]["image/png"]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]


def printed(notebook: nbformat.NotebookNode) -> str:
    """Everything the executed notebook printed."""
    return "".join(
        output["text"]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output["output_type"] == "stream"
    )


# The GAN run has no FID and only last.ckpt (a run stopped before its first validation);
# the VAE run has both. Between them every branch of the notebook runs.
CASES = [
    pytest.param("gan", ["metrics=none"], "last.ckpt", 3, id="gan-last-no-fid"),
    pytest.param(
        "vae", ["metrics.n_samples=100"], "best.ckpt", 4, id="vae-best-fid"
    ),  # + reconstructions
]


@pytest.mark.parametrize(("model", "overrides", "checkpoint", "images"), CASES)
def test_notebook_runs_on_a_fresh_run(
    make_config: MakeConfig,
    venv_kernel: str,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    overrides: list[str],
    checkpoint: str,
    images: int,
) -> None:
    tiny = TINY_RUN_WITHOUT_METRICS  # metrics=none has no keys
    cfg = make_config(overrides=[*tiny, f"model={model}", "logger=csv", *overrides])
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    if checkpoint == "last.ckpt":
        (run_dir / "checkpoints" / "best.ckpt").unlink()
    monkeypatch.setenv("GENLAB_RUN_DIR", str(run_dir))  # the kernel inherits it
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=venv_kernel,
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first cell that fails
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output["output_type"] == "error"]
    assert f"{checkpoint}: {model.upper()}Module" in printed(notebook)
    # samples, interpolation, curves; a VAE also shows reconstructions
    assert len(image_outputs(notebook)) == images


def test_stored_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code_cells)
    assert 'RUN_DIR = Path(os.environ.get("GENLAB_RUN_DIR"' in code_cells[0].source
