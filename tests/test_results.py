"""genlab-results (`make results`): plan checks, the page rendered from cells, only missing
cells run, an interrupted training resumes in place, and docs/results.md is what the command
generates from the committed results/."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from genlab.config.paths import config_dir
from genlab.errors import ConfigError
from genlab.report.runs import read_metrics
from genlab.results import cells as cells_module
from genlab.results.cells import Cell, read_cells
from genlab.results.plan import Plan, Recipe, load_plan
from genlab.results.table import mean_std, paired_differences, render, verdict
from genlab.utils.git import has_uncommitted_changes
from tests.helpers.cli import BIN, run
from tests.helpers.runs import TINY_RUN

REPO = Path(__file__).resolve().parent.parent


def write_plan(path: Path, **plan: object) -> Path:
    path.write_text(yaml.safe_dump(plan))
    return path


def fake_cell(recipe: str, seed: int, fid: float, commit: str = "abcdef0123") -> dict:
    return {
        "recipe": recipe, "seed": seed, "commit": commit, "uncommitted_changes": False,
        "cpus": 2, "train": {"best_val_fid": fid + 1, "wall_seconds": 60.0},
        "eval": {"fid": fid, "precision": 0.5, "recall": 0.25, "density": 1.0,
                 "coverage": 0.75, "sampling_images_per_second": 1000.0},
    }  # fmt: skip


def test_a_plan_mistake_is_one_error_that_names_the_key(tmp_path: Path) -> None:
    good = {"seeds": [1], "recipes": {"a": {"train": ["model=gan"]}}}
    load_plan(write_plan(tmp_path / "ok.yaml", **good))
    cases = [
        ({**good, "seed": [1]}, "unknown key(s) ['seed']"),
        ({**good, "seeds": []}, "seeds must be a non-empty list of integers"),
        ({"seeds": [1], "recipes": {"a": {"trian": []}}}, "recipe a has unknown key(s) ['trian']"),
        ({"seeds": [1], "recipes": {"a": {"train": "model=gan"}}}, "a.train must be a list"),
        ({"seeds": [1], "recipes": {"a": {"train": [], "baseline": "b"}}},
         "its baseline b is not a recipe"),
    ]  # fmt: skip
    for plan, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_plan(write_plan(tmp_path / "bad.yaml", **plan))
    with pytest.raises(ConfigError, match="no recipe c in the results plan; choose from a"):
        load_plan(tmp_path / "ok.yaml").selected(["c"])
    with pytest.raises(ConfigError, match="no results plan at"):
        load_plan(tmp_path / "missing.yaml")


def test_a_change_helps_only_when_it_is_lower_in_every_seed() -> None:
    assert verdict([-3.0, -1.0, -0.5]) == "helps (lower in every seed)"
    assert verdict([2.0, 0.1]) == "hurts (higher in every seed)"
    assert verdict([-3.0, 1.0]) == "no consistent difference"
    assert verdict([-3.0]) == "not enough seeds" and verdict([]) == "not measured"
    assert mean_std([10.0, 12.0, 14.0], 1) == "12.0 ± 2.0"  # sample std
    assert mean_std([10.0], 1) == "10.0" and mean_std([], 1) == "-"
    recipe = [fake_cell("r", 1, 50.0), fake_cell("r", 2, 40.0), fake_cell("r", 3, 30.0)]
    baseline = [fake_cell("b", 1, 55.0), fake_cell("b", 3, 20.0)]  # seed 2 missing: unpaired
    assert paired_differences(recipe, baseline) == [-5.0, 10.0]


def test_the_page_holds_every_recipe_its_ablation_and_the_missing_cells(tmp_path: Path) -> None:
    plan = Plan(tmp_path / "results.yaml", (1, 2), tmp_path, (), {
        "base": Recipe("base", ("model=gan",)),
        "change": Recipe("change", ("model=gan",), "base", "a new loss"),
    })  # fmt: skip
    cells = {
        "base": [fake_cell("base", 1, 60.0), fake_cell("base", 2, 70.0)],
        "change": [fake_cell("change", 1, 50.0, commit="1234567890")],
    }
    page = render(plan, list(plan.recipes.values()), cells)
    assert "| `base` | 2/2 | 66.0 ± 7.1 | 65.0 ± 7.1 | 0.500 ± 0.000 |" in page
    assert "| `change` | 1/2 | 51.0 | 50.0 |" in page
    assert page.count("| 1 min 00 s |") == 2  # the mean wall time; no cell shared its cores
    cells["base"][1]["load_average_at_start"] = 2.9  # its own work on 2 CPUs
    assert "| 1 min 00 s* |" not in render(plan, list(plan.recipes.values()), cells)
    cells["base"][1]["load_average_at_start"] = 3.1  # another job beside it
    assert "| 1 min 00 s* |" in render(plan, list(plan.recipes.values()), cells)
    assert "| `change` vs `base` | a new loss | 50.0 | 65.0 ± 7.1 | -10.0 | 1/1 |" in page
    assert "not enough seeds" in page
    assert "Commits: 12345678, abcdef01; CPUs: 2." in page
    assert page.endswith("- `change`: seed 2\n")  # what `make results` runs next


def test_an_interrupted_training_resumes_in_place_and_a_completed_one_is_not_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(cells_module, "run_logged", lambda command, log: commands.append(command))
    cell = Cell(Recipe("r", ("model=gan",)), 3)
    run_dir = tmp_path / "r" / "3"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"saved")
    (run_dir / "result.yaml").write_text("status: interrupted\n")
    assert cells_module.train(cell, run_dir) is True
    assert commands[-1][-1] == f"ckpt_path={run_dir}" and "seed=3" in commands[-1]
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == b"saved"

    (run_dir / "result.yaml").write_text("status: completed\n")
    assert cells_module.train(cell, run_dir) is False and len(commands) == 1

    (run_dir / "checkpoints" / "last.ckpt").unlink()  # a start that died before its first save
    (run_dir / "result.yaml").write_text("status: failed\n")
    assert cells_module.train(cell, run_dir) is False
    assert not run_dir.exists() and not any(c.startswith("ckpt_path") for c in commands[-1])


@pytest.mark.slow
def test_make_results_runs_only_the_missing_cells_and_writes_the_page_from_them(
    tmp_path: Path,
) -> None:
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    tiny = ["experiment=quickstart", *TINY_RUN, cache]
    plan = write_plan(
        tmp_path / "plan.yaml", seeds=[1, 2], runs_dir=str(tmp_path / "runs"),
        eval=["metrics.n_samples=100", "memorization.enabled=false", cache],
        recipes={"tiny": {"train": tiny},
                 "tiny_lsgan": {"train": [*tiny, "model.loss=lsgan"], "baseline": "tiny"}},
    )  # fmt: skip
    results, page = tmp_path / "results", tmp_path / "results.md"
    command = [str(BIN / "genlab-results"), "--plan", str(plan), "--results", str(results),
               "--docs", str(page), "--only", "tiny"]  # fmt: skip
    first = run(command, cwd=tmp_path)
    assert "[2/2] tiny seed 2" in first.stdout

    stored = [json.loads((results / "tiny" / f"{seed}.json").read_text()) for seed in (1, 2)]
    for seed, cell in zip((1, 2), stored, strict=True):
        run_dir = tmp_path / "runs" / "tiny" / str(seed)
        assert cell["seed"] == cell["config"]["seed"] == seed  # the seed reached the run
        assert cell["config"]["trainer"]["max_epochs"] == 1  # the resolved config it ran
        assert len(cell["commit"]) == 40
        fids = read_metrics(run_dir / "csv" / "metrics.csv")["val/fid_lenet"].values
        assert cell["train"]["best_val_fid"] == min(fids)
        scores = json.loads((run_dir / "eval" / "metrics.json").read_text())
        assert cell["eval"]["fid"] == scores["fid"] > 0 and scores["n_samples"] == 100
        assert scores["real_split"] == "test"
    assert stored[0]["eval"]["fid"] != stored[1]["eval"]["fid"]  # two seeds, two runs

    recipes = list(load_plan(plan).recipes.values())
    expected = render(load_plan(plan), recipes, read_cells(results, recipes, (1, 2)))
    assert page.read_text() == expected
    assert "- `tiny_lsgan`: seed 1, 2" in expected  # listed, not run: --only tiny

    # One lost cell: only it runs again, and its finished training is not repeated.
    train_log = tmp_path / "runs" / "tiny" / "2.train.log"
    trained = train_log.stat().st_mtime_ns
    (results / "tiny" / "2.json").unlink()
    again = run(command, cwd=tmp_path)
    assert "[1/1] tiny seed 2" in again.stdout
    assert train_log.stat().st_mtime_ns == trained
    assert json.loads((results / "tiny" / "2.json").read_text())["eval"]["fid"] == pytest.approx(
        stored[1]["eval"]["fid"]
    )  # the same checkpoint and seed: the same score
    assert "0 cell(s) measured" in run(command, cwd=tmp_path).stdout


def test_docs_results_md_is_what_genlab_results_generates_from_results() -> None:
    plan = load_plan(config_dir() / "results.yaml")
    recipes = list(plan.recipes.values())
    expected = render(plan, recipes, read_cells(REPO / "results", recipes, plan.seeds))
    assert (REPO / "docs" / "results.md").read_text() == expected


def test_a_cell_is_flagged_only_for_changed_code_not_for_the_page_it_rewrites(
    tmp_path: Path,
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.py").write_text("x = 1\n")
    (tmp_path / "results.md").write_text("old page\n")
    for command in (
        ["init", "-q"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first"],
    ):
        subprocess.run(["git", "-C", str(tmp_path), *command], check=True)  # fmt: skip
    code = tmp_path / "src"
    assert has_uncommitted_changes(code, code) is False
    (tmp_path / "results.md").write_text("new page\n")
    assert has_uncommitted_changes(code, code) is False and has_uncommitted_changes(code)
    (code / "model.py").write_text("x = 2\n")
    assert has_uncommitted_changes(code, code) is True
    assert has_uncommitted_changes(tmp_path.parent / "nowhere") is None
