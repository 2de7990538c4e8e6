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

from genlab.config.compose import compose_config
from genlab.config.paths import config_dir
from genlab.errors import ConfigError
from genlab.report.runs import Series, read_metrics
from genlab.results import cells as cells_module
from genlab.results import page
from genlab.results.cells import Cell, fid_curve
from genlab.results.plan import Plan, PostHocEMA, Recipe, load_plan
from genlab.results.table import fid_at, mean_std, render, sampling
from genlab.results.verdicts import compare, paired_differences
from genlab.utils.git import has_uncommitted_changes
from tests.helpers.cli import BIN, run
from tests.helpers.runs import TINY_RUN

REPO = Path(__file__).resolve().parent.parent


def write_plan(path: Path, **plan: object) -> Path:
    path.write_text(yaml.safe_dump(plan))
    return path


def fake_cell(
    recipe: str, seed: int, fid: float | list[float], commit: str = "abcdef0123", **extra: object
) -> dict:
    """A stored cell whose final weights scored `fid` (a list: one value per latent seed)."""
    per_latent = fid if isinstance(fid, list) else [fid]
    mean = sum(per_latent) / len(per_latent)
    final = {
        "fid": mean,
        "precision": 0.5,
        "recall": 0.25,
        "density": 1.0,
        "coverage": 0.75,
        "sampling_images_per_second": 1000.0,
        "repeats": len(per_latent),
    }
    if len(per_latent) > 1:
        final["per_seed"] = {"seed": list(range(len(per_latent))), "fid": per_latent}
    return {
        "recipe": recipe, "seed": seed, "commit": commit, "uncommitted_changes": False,
        "cpus": 2, "load_average_at_start": 1.0,
        "train": {"best_val_fid": mean + 1, "wall_seconds": 60.0, "batches": 500,
                  "batch_size": 64, "train_images": 4000,
                  "curve": {"train_seconds": [30.0, 90.0, 200.0],
                            "fid": [mean + 9, mean + 3, mean + 1]}},
        "final": final,
        "best": {"fid": mean - 1},
        **extra,
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
        ({**good, "budgets_minutes": [2, -1]}, "budgets_minutes must be a list of positive"),
        ({**good, "floor": "experiment=quickstart"}, "floor must be a list of Hydra overrides"),
        ({**good, "posthoc_ema": {"sigma_rels": [0.05]}},
         "posthoc_ema must be null or a mapping of the keys ['choose_on', 'sigma_rels']"),
        ({**good, "posthoc_ema": {"sigma_rels": [0.05, 0.3], "choose_on": []}},
         "posthoc_ema.sigma_rels must be a non-empty list of EMA lengths in (0, 0.2887)"),
        ({**good, "posthoc_ema": {"sigma_rels": [0.05], "choose_on": "repeats=1"}},
         "posthoc_ema.choose_on must be a list of Hydra overrides"),
    ]  # fmt: skip
    for plan, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_plan(write_plan(tmp_path / "bad.yaml", **plan))
    with pytest.raises(ConfigError, match="no recipe c in the results plan; choose from a"):
        load_plan(tmp_path / "ok.yaml").selected(["c"])
    with pytest.raises(ConfigError, match="no results plan at"):
        load_plan(tmp_path / "missing.yaml")


def test_a_verdict_needs_an_interval_that_excludes_zero() -> None:
    """Synthetic cells whose answer is known. A change 5 lower in every seed helps; one that
    is higher in every seed but by amounts as spread as EMA's (+3.0 +- 2.9 was called
    "hurts") is no detectable difference; one seed decides nothing."""
    base = [fake_cell("b", seed, 80.0) for seed in (1, 2, 3)]
    helps = [fake_cell("r", s, 80.0 + d) for s, d in ((1, -5.1), (2, -4.9), (3, -5.0))]
    comparison = compare(helps, base)
    assert comparison.verdict == "helps" and comparison.high < 0
    assert comparison.mean == pytest.approx(-5.0)
    # t(0.975, 2) = 4.303: the interval's half width is 4.303 * sd / sqrt(3)
    assert comparison.high - comparison.mean == pytest.approx(4.303 * 0.1 / 3**0.5, rel=1e-3)
    hurts = [fake_cell("r", s, 80.0 + d) for s, d in ((1, 8.0), (2, 8.5), (3, 7.5))]
    assert compare(hurts, base).verdict == "hurts"
    noisy = [fake_cell("r", s, 80.0 + d) for s, d in ((1, 0.2), (2, 3.0), (3, 5.8))]
    assert compare(noisy, base).verdict == "no detectable difference at this budget"
    assert compare(noisy[:1], base).verdict == "not enough seeds"
    assert compare([], base).verdict == "not measured"
    # For a score where higher is better, a positive difference is the improvement.
    for cell, precision in zip(helps, (0.7, 0.71, 0.69), strict=True):
        cell["final"]["precision"] = precision
    assert compare(helps, base, key="precision").verdict == "helps"


def test_differences_pair_training_seeds_and_latent_seeds() -> None:
    recipe = [fake_cell("r", 1, [50.0, 60.0]), fake_cell("r", 2, 40.0), fake_cell("r", 3, 30.0)]
    baseline = [fake_cell("b", 1, [55.0, 58.0]), fake_cell("b", 3, 20.0)]  # seed 2: unpaired
    assert paired_differences(recipe, baseline) == [pytest.approx(-1.5), 10.0]
    # latent seed 1 is missing from one side: only latent seed 0 pairs
    baseline[0]["final"]["per_seed"] = {"seed": [0, 7], "fid": [55.0, 58.0]}
    assert paired_differences(recipe, baseline) == [-5.0, 10.0]
    assert mean_std([10.0, 12.0, 14.0], 1) == "12.0 ± 2.0"  # sample std
    assert mean_std([10.0], 1) == "10.0" and mean_std([], 1) == "-"


def test_fid_at_a_budget_is_the_last_value_within_it() -> None:
    cell = fake_cell("r", 1, 50.0)  # curve: 59 at 30 s, 53 at 90 s, 51 at 200 s
    assert fid_at(cell, 60.0) == (59.0, False)
    assert fid_at(cell, 120.0) == (53.0, False)
    assert fid_at(cell, 900.0) == (51.0, True)  # ended before 15 min: its last value, marked
    assert fid_at(cell, 10.0) == (None, False)
    assert fid_at({"train": {}}, 60.0) == (None, False)
    fid = Series(steps=[10, 20, 30], values=[9.0, 8.0, 7.0])
    seconds = Series(steps=[10, 30], values=[1.5, 4.5])  # step 20 logged no time
    assert fid_curve(fid, seconds) == {"train_seconds": [1.5, 4.5], "fid": [9.0, 7.0]}


def test_an_iterative_recipe_names_the_sampler_its_validation_fid_used() -> None:
    flow = fake_cell("flow", 1, 30.0, config={"model": {
        "sampling": {"solver": "heun", "steps": 25, "guidance": None},
        "validation_sampling": {"solver": "euler", "steps": 10},
    }})  # fmt: skip
    assert sampling([flow]) == "solver euler, steps 10"  # the validation budget wins
    assert sampling([fake_cell("gan", 1, 80.0, config={"model": {}})]) == "one pass"


def test_the_page_holds_the_floor_every_recipe_its_ablation_and_the_missing_cells(
    tmp_path: Path,
) -> None:
    plan = Plan(tmp_path / "results.yaml", (1, 2), tmp_path, (), {
        "base": Recipe("base", ("model=gan",)),
        "change": Recipe("change", ("model=gan",), "base", "a new loss"),
    }, budgets_minutes=(1.0, 5.0), floor=("experiment=quickstart",))  # fmt: skip
    cells = {
        "base": [fake_cell("base", 1, 60.0), fake_cell("base", 2, 70.0)],
        "change": [fake_cell("change", 1, 50.0, commit="1234567890")],
    }
    for cell, (length, fid) in zip(cells["base"], ((0.05, 55.0), (0.1, 61.0)), strict=True):
        cell["posthoc_ema"] = {"sigma_rel": length, "scores": {"fid": fid}}
    floor = {"train_images": 4000, "scores": {"fid": 1.234, "fid_seeds_std": 0.05}}
    page_text = render(plan, list(plan.recipes.values()), cells, floor, "p.png")
    assert "| real training images (floor, 4,000) | - | 1.2 ± 0.1 | - | - |" in page_text
    # final, best-on-validation and post-hoc EMA test FID (with each seed's length), KID
    # (absent: -), precision, ...
    row = "| `base` | 2/2 | 65.0 ± 7.1 | 64.0 ± 7.1 | 58.0 ± 4.2 (σ_rel 0.05/0.1) | - | 0.500 ± 0"
    assert row in page_text
    assert "| `change` | 1/2 | 50.0 | 49.0 | - |" in page_text  # no post-hoc EMA: -
    assert "| 500 ± 0 | 1 min 00 s |" in page_text  # batches and the mean wall time
    assert "| 500 | 1 min 00 s |" in page_text  # one seed: its value
    # at 1 min: 69 and 79 (their values at 30 s); at 5 min: their last, the runs ended at 200 s
    assert "| `base` | one pass | 74.0 ± 7.1 | 66.0 ± 7.1 † |" in page_text
    assert "![validation FID against training time](p.png)" in page_text
    assert (
        "| `change` vs `base` | a new loss | 500 batches of 64 on 4,000 images, 1 min 00 s"
        in page_text
    )
    assert "| -10.0 | - | 1 | not enough seeds |" in page_text
    assert "Commits: 12345678, abcdef01; CPUs: 2." in page_text
    assert page_text.endswith("- `change`: seed 2\n")  # what `make results` runs next

    cells["base"][1]["load_average_at_start"] = 2.9  # its own work on 2 CPUs
    assert "1 min 00 s* |" not in render(plan, list(plan.recipes.values()), cells)
    cells["base"][1]["load_average_at_start"] = 3.1  # another job beside it
    loaded = render(plan, list(plan.recipes.values()), cells)
    assert "| 1 min 00 s* |" in loaded and "- `base` seed 2 (load average 3.1 on 2 CPUs)" in loaded
    cells["change"].append(fake_cell("change", 2, 61.0))
    assert "| 1 (1 under load left out) | not enough seeds |" in render(
        plan, list(plan.recipes.values()), cells
    )  # the cell under load enters no verdict

    old = {"recipe": "base", "seed": 1, "commit": None, "cpus": 2, "train": {}, "final": {}}
    assert "| `base` | 1/2 | - | - | - | - |" in render(
        plan, list(plan.recipes.values()), {"base": [old], "change": []}
    )  # a cell stored before these keys existed shows -


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
    snapshots = ("callbacks=[default,posthoc_ema]",)  # the plan's post-hoc EMA, on resume too
    assert cells_module.train(cell, run_dir, snapshots) is True
    assert commands[-1][-1] == f"ckpt_path={run_dir}" and "seed=3" in commands[-1]
    assert snapshots[0] in commands[-1]
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == b"saved"

    (run_dir / "result.yaml").write_text("status: completed\n")
    assert cells_module.train(cell, run_dir) is False and len(commands) == 1

    (run_dir / "checkpoints" / "last.ckpt").unlink()  # a start that died before its first save
    (run_dir / "result.yaml").write_text("status: failed\n")
    assert cells_module.train(cell, run_dir) is False
    assert not run_dir.exists() and not any(c.startswith("ckpt_path") for c in commands[-1])


def test_a_cell_adds_posthoc_ema_snapshots_to_its_recipes_own_callbacks(tmp_path: Path) -> None:
    cases = {
        ("experiment=quickstart",): ("callbacks=[default,posthoc_ema]",),
        ("experiment=ema_gan_mnist",): ("callbacks=[ema,posthoc_ema]",),
        ("experiment=quickstart", "callbacks=posthoc_ema"): (),  # it keeps them already
    }
    for train, expected in cases.items():
        extra = cells_module.with_snapshots(Recipe("r", train), tmp_path)
        assert extra == expected
        config = compose_config("train", [*train, *extra])
        assert config.callbacks.posthoc_ema is not None and config.callbacks.model_checkpoint
        if train == ("experiment=ema_gan_mnist",):
            assert config.callbacks.ema.decay == 0.999  # the recipe's own EMA settings stay
    with pytest.raises(ConfigError, match="sets a list of callbacks without posthoc_ema"):
        cells_module.with_snapshots(Recipe("r", ("callbacks=[default,ema]",)), tmp_path)


def test_the_posthoc_ema_length_is_chosen_on_its_own_scores_and_scored_as_the_final_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []

    def child(command: list[str], log: Path) -> None:
        commands.append(command)
        value = dict(c.split("=", 1) for c in command[3:])
        if command[2] == "genlab.posthoc_ema_cli":  # its table: the live weights score best
            choice = Path(value["hydra.run.dir"])
            choice.mkdir(parents=True)
            (choice / "posthoc_ema.csv").write_text(
                "weights,sigma_rel,fid,precision,recall,profile_error\n"
                "live,,40.0,0.5,0.5,\nposthoc 0.05,0.05,52.0,0.5,0.5,0.01\n"
                "posthoc 0.1,0.1,47.0,0.5,0.5,0.002\n"
            )
        else:
            Path(value["out_file"]).parent.mkdir(parents=True)
            Path(value["out_file"]).write_text(json.dumps({"fid": 45.5, "from": value}))

    monkeypatch.setattr(cells_module, "run_logged", child)
    run_dir = tmp_path / "r" / "1"
    posthoc = PostHocEMA((0.05, 0.1), ("metrics.real_split=val", "repeats=1"))
    plan_eval = ("metrics.n_samples=100", "repeats=2")
    chosen = cells_module.score_posthoc_ema(Cell(Recipe("r", ()), 1), run_dir, posthoc, plan_eval)

    rebuild, scoring = commands
    assert f"run_dir={run_dir}" in rebuild and "sigma_rels=[0.05,0.1]" in rebuild
    eval_args = next(c for c in rebuild if c.startswith("eval_args=")).removeprefix("eval_args=")
    assert json.loads(eval_args) == [*plan_eval, *posthoc.choose_on]  # chosen on validation
    assert chosen["sigma_rel"] == 0.1  # the best length, not the live weights' lower FID
    live = {"weights": "live", "sigma_rel": None, "fid": 40.0, "precision": 0.5, "recall": 0.5}
    assert chosen["choice"][0] == {**live, "profile_error": None}
    assert f"ckpt_path={run_dir / 'checkpoints' / 'posthoc_ema-0.1.ckpt'}" in scoring
    assert [c for c in scoring if c in plan_eval or c in posthoc.choose_on] == list(plan_eval)
    assert chosen["scores"]["fid"] == 45.5 and chosen["chosen_on"] == list(posthoc.choose_on)


@pytest.mark.slow
def test_make_results_runs_only_the_missing_cells_and_writes_the_page_from_them(
    tmp_path: Path,
) -> None:
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    tiny = ["experiment=quickstart", *TINY_RUN, "trainer.max_epochs=2", cache]
    plan = write_plan(
        tmp_path / "plan.yaml", seeds=[2], runs_dir=str(tmp_path / "runs"),
        eval=["metrics.n_samples=100", "repeats=2", "memorization.enabled=false", cache],
        budgets_minutes=[2], floor=["experiment=quickstart", cache],
        posthoc_ema={"sigma_rels": [0.05, 0.1], "choose_on": ["metrics.real_split=val"]},
        recipes={"tiny": {"train": tiny},
                 "tiny_lsgan": {"train": [*tiny, "model.loss=lsgan"], "baseline": "tiny"}},
    )  # fmt: skip
    results, docs = tmp_path / "results", tmp_path / "results.md"
    command = [str(BIN / "genlab-results"), "--plan", str(plan), "--results", str(results),
               "--docs", str(docs), "--only", "tiny"]  # fmt: skip
    first = run(command, cwd=tmp_path)
    assert "[1/1] tiny seed 2" in first.stdout

    floor = json.loads((results / "floor.json").read_text())
    assert floor["train_images"] == 4000 and floor["scores"]["source_kind"] != "checkpoint"
    assert floor["scores"]["real_split"] == "test" and floor["scores"]["repeats"] == 2
    stored = [json.loads((results / "tiny" / "2.json").read_text())]
    for seed, cell in zip((2,), stored, strict=True):
        run_dir = tmp_path / "runs" / "tiny" / str(seed)
        assert cell["seed"] == cell["config"]["seed"] == seed != 42  # it reached the run
        assert cell["config"]["trainer"]["max_epochs"] == 2  # the resolved config it ran
        assert len(cell["commit"]) == 40
        logged = read_metrics(run_dir / "csv" / "metrics.csv")
        fids = logged["val/fid_lenet"].values
        assert cell["train"]["best_val_fid"] == min(fids)
        assert cell["train"]["curve"]["fid"] == fids  # with the seconds logged beside each
        assert cell["train"]["curve"]["train_seconds"] == logged["val/train_seconds"].values
        assert cell["train"]["batches"] == 2 * 3 and cell["train"]["train_images"] == 4000
        for which, ckpt in (("final", "last.ckpt"), ("best", "best.ckpt")):
            scores = json.loads((run_dir / f"eval_{which}" / "metrics.json").read_text())
            assert cell[which] == scores  # the whole metrics.json
            assert scores["checkpoint"].endswith(ckpt) and scores["real_split"] == "test"
            assert scores["n_samples"] == 100 and scores["per_seed"]["seed"] == [0, 1]
        # the post-hoc EMA: trained with snapshots, chosen on validation, scored as above
        posthoc = cell["posthoc_ema"]
        choice = json.loads((run_dir / "posthoc_ema_choice" / "posthoc_ema_eval" /
                             "metrics.json").read_text())  # fmt: skip
        assert [row["weights"] for row in posthoc["choice"]] == ["live", "posthoc 0.05",
                                                                 "posthoc 0.1"]  # fmt: skip
        assert {s["real_split"] for s in choice["sources"]} == {"val"}
        lengths = [row for row in posthoc["choice"] if row["sigma_rel"] is not None]
        assert posthoc["sigma_rel"] == min(lengths, key=lambda row: row["fid"])["sigma_rel"]
        scores = json.loads((run_dir / "eval_posthoc_ema" / "metrics.json").read_text())
        assert posthoc["scores"] == scores and scores["real_split"] == "test"
        assert scores["checkpoint"].endswith(f"posthoc_ema-{posthoc['sigma_rel']:g}.ckpt")

    expected, _ = page(load_plan(plan), list(load_plan(plan).recipes.values()), results, docs)
    assert docs.read_text() == expected
    assert "- `tiny_lsgan`: seed 2" in expected  # listed, not run: --only tiny
    assert (tmp_path / "results_time_to_fid.png").stat().st_size > 10_000

    # One lost cell: only it runs again, and its finished training is not repeated.
    train_log = tmp_path / "runs" / "tiny" / "2.train.log"
    trained = train_log.stat().st_mtime_ns
    (results / "tiny" / "2.json").unlink()
    again = run(command, cwd=tmp_path)
    assert "[1/1] tiny seed 2" in again.stdout and "floor" not in again.stdout
    assert train_log.stat().st_mtime_ns == trained
    assert json.loads((results / "tiny" / "2.json").read_text())["final"]["fid"] == pytest.approx(
        stored[0]["final"]["fid"]
    )  # the same checkpoint and latent seeds: the same score
    assert "0 cell(s) measured" in run(command, cwd=tmp_path).stdout


def test_docs_results_md_is_what_genlab_results_generates_from_results() -> None:
    plan = load_plan(config_dir() / "results.yaml")
    docs = REPO / "docs" / "results.md"
    expected, _ = page(plan, list(plan.recipes.values()), REPO / "results", docs)
    assert docs.read_text() == expected


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
