"""genlab-results with bad stored files and plans, and from another directory: one line
each; a cell that cannot be read is never counted as measured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import genlab.results as results_module
from genlab.config.paths import config_dir
from genlab.errors import ConfigError
from genlab.results import cells as cells_module
from genlab.results import main, parse_args
from genlab.results.cells import Cell, CellFailed, missing_cells, read_cells
from genlab.results.children import CHILDREN, STOP_SIGNALS, CellBusy
from genlab.results.plan import Recipe, load_plan

GOOD_CELL = {"recipe": "a", "seed": 1, "train": {}, "final": {"fid": 50.0}, "best": None}
# What a cell file can be instead of a cell: (its text, what the line says is wrong)
BROKEN = [
    ('{"seed": 2, "final": {"fid": 5', "not readable JSON"),  # truncated mid-write
    ("", "not readable JSON"),  # empty
    ("{}", "its 'seed' is missing or of the wrong type"),
    ("[1, 2]", "it holds a JSON list, not an object"),
    ('{"seed": 2, "train": {}, "final": 61.0}', "its 'final' is missing or of the wrong type"),
    ("\x00\xff\xfe", "not readable JSON"),  # not text at all
    ('{"seed": 2, "train": {}, "final": {"fid": "61"}}', "its 'final.fid' is missing or of the"),
    (
        '{"seed": 2, "final": {}, "train": {"curve": {"train_seconds": [1, 2], "fid": [3]}}}',
        "its 'train.curve' is missing or of the wrong type",
    ),  # the page reads them in pairs
    (
        '{"seed": 2, "train": {}, "final": {}, "posthoc_ema": {"scores": {"fid": 60.0}}}',
        "its 'posthoc_ema.sigma_rel' is missing or of the wrong type",
    ),  # the page names each seed's chosen length
]


def results_with(tmp_path: Path, broken: str) -> tuple[Path, Path]:
    """(plan, results dir) of recipe `a` x seeds 1, 2: seed 1 stored, seed 2 `broken`."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"seeds": [1, 2], "recipes": {"a": {"train": []}}}))
    results = tmp_path / "results"
    (results / "a").mkdir(parents=True)
    (results / "a" / "1.json").write_text(json.dumps(GOOD_CELL))
    (results / "a" / "2.json").write_text(broken, encoding="latin-1")
    return plan, results


@pytest.mark.parametrize(("text", "why"), BROKEN)
def test_an_unreadable_cell_is_named_and_never_counted_as_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, why: str
) -> None:
    plan_file, results = results_with(tmp_path, text)
    docs = tmp_path / "docs" / "results.md"
    main(["--plan", str(plan_file), "--results", str(results), "--docs", str(docs),
          "--render-only"])  # fmt: skip
    line = f"{results / 'a' / '2.json'} cannot be used ({why}"
    assert line in " ".join(capsys.readouterr().out.split())
    assert "| `a` | 1/2 | 50.0 |" in docs.read_text()  # the page from the readable cell

    plan = load_plan(plan_file)
    assert missing_cells(list(plan.recipes.values()), plan.seeds, results) == [
        Cell(plan.recipes["a"], 2)
    ]  # a normal run measures it again
    assert [
        c["seed"] for c in read_cells(results, list(plan.recipes.values()), plan.seeds)["a"]
    ] == [1]
    main(["--plan", str(plan_file), "--results", str(results), "--list"])
    assert capsys.readouterr().out.strip().endswith("a seed 2")


def test_an_unreadable_floor_row_is_named_and_measured_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_file, results = results_with(tmp_path, json.dumps({**GOOD_CELL, "seed": 2}))
    (results / "floor.json").write_text('{"scores": ')
    main(["--plan", str(plan_file), "--results", str(results), "--docs",
          str(tmp_path / "r.md"), "--render-only"])  # fmt: skip
    assert f"{results / 'floor.json'} cannot be used (not readable JSON" in " ".join(
        capsys.readouterr().out.split()
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seeds: [1, 2\nrecipes: {}\n", r"plan\.yaml is not valid YAML at line 2, column 8: "),
        ("- seeds\n- recipes\n", r"plan\.yaml holds a YAML list, not a mapping of the keys"),
    ],
)
def test_a_plan_that_is_not_a_yaml_mapping_is_one_line(
    tmp_path: Path, text: str, message: str
) -> None:
    """Once a 50-line traceback (a syntax error) and an AttributeError (a list)."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_plan(plan)
    assert "\n" not in str(info.value)


def test_the_default_paths_are_the_projects_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from another directory, genlab-results once wrote ./docs/results.md there, with
    every recipe at 0/3 (its cells were looked for in ./results)."""
    monkeypatch.chdir(tmp_path)
    project = config_dir().parent
    args = parse_args([])
    assert (args.plan, args.results, args.docs) == (
        project / "conf" / "results.yaml", project / "results", project / "docs" / "results.md"
    )  # fmt: skip
    assert load_plan(args.plan).runs_dir == project / "outputs" / "results"
    assert parse_args(["--results", "mine"]).results == Path("mine")  # given: as the user means


# --- Measuring: signals, the cell lock, the training log, the phases on the console ---------

# A stand-in for genlab-train and genlab-eval: it notes its start, and how a stop signal
# reached it (FAKE_CHILD=traps: it exits at once, as a training that saved; ignores: it
# never exits until killed); an evaluation writes an empty metrics.json.
FAKE_CHILD = """
import os, pathlib, signal, sys, time
marks = pathlib.Path(os.environ["FAKE_MARKS"])
def stopped(signum, frame):
    (marks / f"{os.getpid()}.signal").write_text(signal.Signals(signum).name)
    sys.exit(0)
handler = signal.SIG_IGN if os.environ.get("FAKE_CHILD") == "ignores" else stopped
for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, handler)
(marks / f"{os.getpid()}.started").write_text(sys.argv[1])
out = [a.split("=", 1)[1] for a in sys.argv if a.startswith("out_file=")]
if out:
    pathlib.Path(out[0]).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(out[0]).write_text("{}")
elif os.environ.get("FAKE_CHILD") != "quick":
    time.sleep(60)
print("attempt of", sys.argv[1])
"""
# genlab-results in a process of its own, its children the fake (a stop signal is sent to it)
DRIVER = """
import os, sys
from genlab.results import cells, children, main
cells.genlab_command = lambda module, overrides: [sys.executable, os.environ["FAKE"], module,
                                                  *overrides]
children.STOP_GRACE_S = float(os.environ["GRACE_S"])
main(sys.argv[1:])
"""


def fake_children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, behaviour: str) -> Path:
    """genlab_command runs FAKE_CHILD; returns the folder of its marks."""
    (tmp_path / "fake.py").write_text(FAKE_CHILD)
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("FAKE", str(tmp_path / "fake.py"))
    monkeypatch.setenv("FAKE_MARKS", str(marks))
    monkeypatch.setenv("FAKE_CHILD", behaviour)
    monkeypatch.setattr(
        cells_module, "genlab_command",
        lambda module, overrides: [sys.executable, str(tmp_path / "fake.py"), module, *overrides],
    )  # fmt: skip
    return marks


def two_cell_args(tmp_path: Path) -> list[str]:
    """genlab-results arguments of recipe `a` x seeds 1, 2, nothing stored, no floor."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(
        {"seeds": [1, 2], "runs_dir": str(tmp_path / "runs"), "recipes": {"a": {"train": []}}}
    ))  # fmt: skip
    return ["--plan", str(plan), "--results", str(tmp_path / "results"), "--docs",
            str(tmp_path / "r.md")]  # fmt: skip


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def started_pids(marks: Path, timeout_s: float = 60.0) -> list[int]:
    """The children started so far, once the first one has started."""
    deadline = time.monotonic() + timeout_s
    while not list(marks.glob("*.started")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [int(p.name.split(".")[0]) for p in marks.glob("*.started")]


@pytest.mark.slow  # genlab-results and its children as processes
@pytest.mark.parametrize(
    ("behaviour", "signum", "status", "line"),
    [
        ("traps", signal.SIGTERM, 143, "interrupted (SIGTERM): a seed 1 stopped and is not stored"),
        ("traps", signal.SIGINT, 130, "interrupted (SIGINT): a seed 1 stopped and is not stored"),
        ("ignores", signal.SIGTERM, 143,
         "interrupted (SIGTERM): a seed 1 did not exit in time and was killed"),
    ],
)  # fmt: skip
def test_a_stop_signal_stops_the_whole_command_once_the_child_has_stopped(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    behaviour: str,
    signum: int,
    status: int,
    line: str,
) -> None:
    """Once, Ctrl+C marked the cell failed and went on with the next one (a Ctrl+C per cell),
    and a SIGTERM left the training running."""
    marks = fake_children(tmp_path, monkeypatch, behaviour)
    monkeypatch.setenv("GRACE_S", "1")
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *two_cell_args(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    pids = started_pids(marks)
    try:
        assert len(pids) == 1, driver.communicate(timeout=5)
        driver.send_signal(signum)
        out, _ = driver.communicate(timeout=30)
        assert driver.returncode == status, out
        if behaviour == "traps":  # it got the signal genlab-results got
            assert (marks / f"{pids[0]}.signal").read_text() == signum.name
        assert not alive(pids[0])  # no orphan: it stopped, or it was killed
        assert len(list(marks.glob("*.started"))) == 1  # the next cell never started
        assert line in out and "Traceback" not in out, out
        assert "| `a` | 0/2 |" in (tmp_path / "r.md").read_text()  # the page, written
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        driver.kill()


def test_the_stop_handlers_are_genlab_results_own_and_restored_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_children(tmp_path, monkeypatch, "quick")
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    with pytest.raises(SystemExit):  # the fake writes no run: the cells fail
        main(two_cell_args(tmp_path))
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before


def test_a_cell_another_genlab_results_measures_is_skipped_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once, a second genlab-results (or a rerun while an orphaned training ran) resumed
    into the same run directory as the training already there."""
    marks = fake_children(tmp_path, monkeypatch, "quick")
    args = two_cell_args(tmp_path)
    cell = Cell(Recipe("a", ()), 1)
    lock = cell.lock(tmp_path / "runs")
    with CHILDREN.holding(lock, "the other one"):  # what another genlab-results holds
        lock.write_text("4242\n")
        busy = r"a seed 1: being measured by another genlab-results \(pid 4242; lock .*1\.lock\)"
        with pytest.raises(CellBusy, match=busy), CHILDREN.holding(lock, cell.label):
            pass
        plan_file = Path(args[1])
        plan_file.write_text(plan_file.read_text().replace("- 2\n", ""))  # seed 1 only
        main(args)
    out = capsys.readouterr().out
    assert "a seed 1: being measured by another genlab-results (pid 4242" in out
    assert "0 cell(s) measured, 0 failed, 1 skipped (another genlab-results measures them)" in out
    assert not list(marks.glob("*.started")) and not (tmp_path / "results" / "a").exists()
    with CHILDREN.holding(lock, cell.label):  # released: the next run measures it
        assert lock.read_text() == f"{os.getpid()}\n"


def test_a_resumed_training_appends_to_its_log_and_each_phase_is_one_plain_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once, a resumed cell's train.log was overwritten: the first attempt's output was lost.
    A cell's phases run for minutes; each one is a line (no colour codes in a log file)."""
    fake_children(tmp_path, monkeypatch, "quick")
    cell, run_dir = Cell(Recipe("r", ()), 3), tmp_path / "r" / "3"
    cells_module.train(cell, run_dir)  # the first attempt
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"saved")
    (run_dir / "result.yaml").write_text("status: interrupted\n")
    assert cells_module.train(cell, run_dir) is True  # resumed
    log = (tmp_path / "r" / "3.train.log").read_text()
    assert log.count("==== ") == 2 and log.count("attempt of genlab.train") == 2, log

    (run_dir / "checkpoints" / "best.ckpt").write_bytes(b"best")
    assert cells_module.score_checkpoints(cell, run_dir, ()) == ({}, {})
    out = capsys.readouterr().out
    assert [line.split(": log ")[0] for line in out.splitlines()] == [
        "  train", "  train, resuming its last.ckpt", "  eval final (last.ckpt)",
        "  eval best (best.ckpt)",
    ]  # fmt: skip
    assert f"  eval best (best.ckpt): log {tmp_path / 'r' / '3.eval_best.log'}" in out
    assert "\x1b" not in out


def test_a_failed_child_names_its_own_last_line_not_an_earlier_attempts(
    tmp_path: Path,
) -> None:
    log = tmp_path / "1.train.log"
    log.write_text("an earlier attempt's last line\n")
    with pytest.raises(CellFailed, match=r"exited with 3: no output \(log: "):
        cells_module.run_logged([sys.executable, "-c", "raise SystemExit(3)"], log)


def test_an_unreadable_floor_row_is_measured_again_by_a_normal_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_file, results = results_with(tmp_path, json.dumps({**GOOD_CELL, "seed": 2}))
    plan_file.write_text(plan_file.read_text() + "floor: [experiment=quickstart]\n")
    (results / "floor.json").write_text("{}")
    measured: list[Path] = []
    monkeypatch.setattr(results_module, "measure_floor", lambda plan, at: measured.append(at))
    main(["--plan", str(plan_file), "--results", str(results), "--docs", str(tmp_path / "r.md")])
    assert measured == [results]


def test_a_render_from_another_directory_reads_the_paths_given_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default plan, with --results and --docs relative to the current directory."""
    (tmp_path / "mine" / "quickstart_gan").mkdir(parents=True)
    cell = {**GOOD_CELL, "recipe": "quickstart_gan"}
    (tmp_path / "mine" / "quickstart_gan" / "1.json").write_text(json.dumps(cell))
    monkeypatch.chdir(tmp_path)
    main(["--render-only", "--results", "mine", "--docs", "out/page.md"])
    assert "| `quickstart_gan` | 1/3 | 50.0 |" in (tmp_path / "out" / "page.md").read_text()
