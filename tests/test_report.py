"""genlab-report on a real sweep: the table says what each job's metrics.csv says, and plots."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from genlab.report import main
from genlab.report.table import duration
from tests.helpers.cli import BIN, run, sweep

pytestmark = pytest.mark.slow  # sweeps as subprocesses, then the report

PLOTS = ("losses.png", "fid.png", "samples.png")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny GAN jobs that differ only in their seed, two epochs each (two FID values)."""
    sweep_dir, _ = sweep(tmp_path_factory.mktemp("sweep"), "model=gan", "seed=1,2",
                         "trainer.max_epochs=2", "logger=csv")  # fmt: skip
    return sweep_dir


@dataclass
class Report:
    console: str
    markdown: str


@pytest.fixture(scope="module")
def report(sweep_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """`genlab-report <sweep dir>` as a user runs it, from another directory."""
    proc = run([str(BIN / "genlab-report"), str(sweep_dir)], cwd=tmp_path_factory.mktemp("cwd"))
    return Report(proc.stdout, (sweep_dir / "report" / "report.md").read_text())


def markdown_rows(text: str) -> list[dict[str, str]]:
    """The report's table as dicts, by header (the separator line dropped)."""
    lines = [line.strip("| ").split(" | ") for line in text.splitlines() if line.startswith("|")]
    header, _, *rows = lines
    return [dict(zip(header, row, strict=True)) for row in rows]


def logged(metrics_csv: Path) -> dict[str, list[float]]:
    """Each column's filled cells, in file order, read independently of genlab.report."""
    columns: dict[str, list[float]] = {}
    with metrics_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            for key, cell in row.items():
                if cell:
                    columns.setdefault(key, []).append(float(cell))
    return columns


def test_table_has_one_row_per_job_with_the_values_its_metrics_csv_holds(
    sweep_dir: Path, report: Report
) -> None:
    rows = markdown_rows(report.markdown)
    assert [(row["job"], row["overrides"], row["status"]) for row in rows] == [
        ("0", "seed=1", "completed"),
        ("1", "seed=2", "completed"),
    ]
    for row in rows:
        columns = logged(sweep_dir / row["job"] / "csv" / "metrics.csv")
        (fid,) = [values for key, values in columns.items() if key.startswith("val/fid")]
        assert len(fid) == 2
        assert row["best FID"] == f"{min(fid):.4g}"
        assert row["last FID"] == f"{fid[-1]:.4g}"
        losses = {k: v for k, v in columns.items() if k.startswith("train/") and "loss" in k}
        assert set(losses) == {"train/d_loss", "train/g_loss"}
        for key, values in losses.items():
            assert row[key] == f"{values[-1]:.4g}"
        assert row["wall"].endswith(" s") and row["error"] == "-"
    assert "seed=2" in report.console and "train/" in report.console


def test_report_embeds_readable_plots(sweep_dir: Path, report: Report) -> None:
    for name in PLOTS:
        assert f"]({name})" in report.markdown
        with Image.open(sweep_dir / "report" / name) as image:
            image.verify()
        with Image.open(sweep_dir / "report" / name) as image:
            width, height = image.size
        assert 400 <= width <= 4000 and 250 <= height <= 3000, (name, image.size)


def test_a_job_without_metrics_or_result_is_a_row_of_dashes(
    sweep_dir: Path, tmp_path: Path
) -> None:
    killed = tmp_path / "sweep"
    shutil.copytree(sweep_dir, killed, ignore=shutil.ignore_patterns("report", "checkpoints"))
    (killed / "1" / "csv" / "metrics.csv").unlink()
    (killed / "1" / "result.yaml").unlink()
    main([str(killed), "--out", str(tmp_path / "elsewhere")])
    _, job1 = markdown_rows((tmp_path / "elsewhere" / "report.md").read_text())
    assert (job1["status"], job1["wall"], job1["error"]) == ("unknown", "-", "no csv/metrics.csv")
    assert job1["best FID"] == job1["last FID"] == job1["train/d_loss"] == "-"
    assert all((tmp_path / "elsewhere" / name).is_file() for name in PLOTS)


def test_an_unreadable_metrics_csv_is_reported_not_raised(sweep_dir: Path, tmp_path: Path) -> None:
    mangled = tmp_path / "run"
    shutil.copytree(sweep_dir / "0", mangled, ignore=shutil.ignore_patterns("checkpoints"))
    (mangled / "csv" / "metrics.csv").write_text("epoch,step,train/d_loss\n0,1,oops\n")
    main([str(mangled)])
    text = (mangled / "report" / "report.md").read_text()
    (row,) = markdown_rows(text)
    assert row["status"] == "completed" and "metrics.csv unreadable" in row["error"]
    assert row["best FID"] == "-"
    assert "Not plotted: no run logged a training loss." in text
    assert "![Final samples](samples.png)" in text  # the sample grids are still there


@pytest.mark.parametrize("target", ["missing", "empty"])
def test_a_directory_without_runs_is_one_error_line_and_exit_2(tmp_path: Path, target: str) -> None:
    (tmp_path / "empty" / "0").mkdir(parents=True)
    proc = run([str(BIN / "genlab-report"), str(tmp_path / target)], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / target / "report").exists()


def test_wall_time_reads_as_minutes_and_hours() -> None:
    assert [duration(s) for s in (None, 4.4, 185, 7620)] == ["-", "4 s", "3 min 05 s", "2 h 07 min"]
