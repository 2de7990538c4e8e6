"""`<run dir>/result.yaml`: how every run ended, for reports and sweep summaries.

Written when the run ends, whichever way: completed, failed (with its one-line error)
or interrupted (SIGTERM, Ctrl+C; its last.ckpt resumes it). A run killed with
SIGKILL writes nothing; readers treat a missing file as `unknown`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from genlab.utils.files import write_atomically

log = logging.getLogger("genlab")

RESULT_FILE = "result.yaml"
INTERRUPTED_EXIT_CODE = 143  # 128 + SIGTERM: genlab-train saved its state on SIGTERM/Ctrl+C


@dataclass
class RunResult:
    """status: completed | failed | interrupted; value: the best `metric` (lower is better);
    warnings: what a completed run did that its numbers alone do not show."""

    status: str = "running"
    value: float | None = None
    metric: str | None = None
    error: str = ""
    wall_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def read_result(run_dir: Path) -> dict | None:
    """A run's recorded result, or None when it wrote none (killed, or still running)."""
    path = run_dir / RESULT_FILE
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def write_result(run_dir: Path, result: dict) -> None:
    """Other processes (sweep summaries, reports) may read it meanwhile: never half a file."""
    text = yaml.safe_dump(result, sort_keys=False)
    write_atomically(run_dir / RESULT_FILE, lambda tmp: tmp.write_text(text))


@contextmanager
def result_recorded(cfg: DictConfig) -> Iterator[RunResult]:
    """Time the block and write its outcome to `<cfg.paths.output_dir>/result.yaml`.

    The block sets `.value`; the metric's name is read from `cfg.optimized_metric`
    when the block ends, since training resolves `auto` to a name.
    """
    result, start = RunResult(), time.monotonic()
    try:
        yield result
        result.status = "completed"
    except SystemExit as exit_:
        interrupted = exit_.code == INTERRUPTED_EXIT_CODE
        result.status = "interrupted" if interrupted else "failed"
        result.error = "" if interrupted else f"exit code {exit_.code}"
        raise
    except BaseException as err:
        result.status = "failed"
        result.error = f"{type(err).__name__}: {err}".splitlines()[0]
        raise
    finally:
        result.wall_seconds = round(time.monotonic() - start, 3)
        result.metric = cfg.get("optimized_metric")
        try:
            if rank_zero_only.rank == 0:  # DDP's other ranks share rank 0's run directory
                write_result(Path(cfg.paths.output_dir), asdict(result))
        except OSError as err:  # a full disk: the run's own error says more
            log.warning("could not write %s: %s", RESULT_FILE, err)
