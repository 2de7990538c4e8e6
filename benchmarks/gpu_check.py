"""`make gpu-check`: the GPU path measured in one bounded run, as one table and one JSON file.

Rows, in this order (each within its share of the total budget; a row that raises
records its one-line error and the next one runs):

- throughput: genlab's Trainer against the plain loop (benchmarks.training), GAN and
  VAE, batch 64 and 256, in 32-true, bf16-mixed and 16-mixed;
- fixed cost: the Trainer's cost per iteration with near-zero networks, Lightning alone
  and genlab (benchmarks.overhead), and genlab's as a share of a real step;
- ddp: `genlab-train trainer=ddp` on every visible GPU (NCCL) for a few hundred
  iterations; its one logged FID against the FID of the same samples on one device;
- fid: 10,000 samples: generation, feature extraction and Frechet distance times
  (benchmarks.evaluation), LeNet features and, when its weights file is present,
  Inception's;
- compile: throughput with `model.channels_last`, `model.compile`, and both.

`--dry-run` runs every row on the CPU with tiny sizes (DDP on two gloo ranks), so that
the script is known to work before a GPU sees it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from benchmarks.evaluation import bench_evaluation
from benchmarks.overhead import bench_overhead
from benchmarks.training import bench_training
from genlab.checkpoints import load_model, run_datamodule
from genlab.config.compose import compose_config
from genlab.metrics.extractors import INCEPTION_WEIGHTS, build_extractor, inception_weights_path
from genlab.metrics.real_features import real_features
from genlab.metrics.suite import MetricSuite

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
MODELS = ("gan", "vae")
SECTIONS = ("throughput", "fixed cost", "ddp", "fid", "compile")

#: a dry run's networks: the default architectures, a few channels wide
TINY_NETS = {
    "gan": ["model.generator.width=8", "model.discriminator.width=8"],
    "vae": [
        "model.encoder.width=4",
        "model.encoder.hidden=16",
        "model.decoder.width=4",
        "model.decoder.hidden=16",
    ],
}


@dataclass(frozen=True)
class Sizes:
    """How much each row measures: a real check's sizes, or a dry run's."""

    batch_sizes: tuple[int, ...]
    warmup: int  # iterations before timing
    window: int  # iterations per timed window
    windows: int  # timed windows per row
    breakdown_window: int  # iterations per window of the near-zero rows
    ddp_iterations: int  # training iterations of the DDP run (at least)
    fid_samples: int  # generated images of the FID rows and of the DDP run's FID
    nets: dict[str, list[str]] = field(default_factory=lambda: {"gan": [], "vae": []})
    overrides: tuple[str, ...] = ()  # for every row that trains in this process
    shares: dict[str, float] = field(  # the most seconds one row of a section may take
        default_factory=lambda: {
            "throughput": 45.0,
            "fixed cost": 60.0,
            "ddp": 180.0,
            "fid": 90.0,
            "compile": 150.0,
        }
    )


GPU = Sizes((64, 256), warmup=10, window=20, windows=5, breakdown_window=50,
            ddp_iterations=300, fid_samples=10_000)  # fmt: skip
DRY_RUN = Sizes((8, 16), warmup=1, window=2, windows=2, breakdown_window=2,
                ddp_iterations=2, fid_samples=500, nets=TINY_NETS,
                # a timed run ends with a validation: one batch of it, not the whole split
                overrides=("+trainer.limit_val_batches=1",))  # fmt: skip


class Skipped(Exception):
    """A row that cannot run here, for a reason that is not an error (a missing file)."""


class RowTimeout(Exception):
    """A row ran past its share of the budget."""


@dataclass(frozen=True)
class Check:
    """One row: what it measures, and the most seconds it may take."""

    section: str
    name: str
    measure: Callable[[], dict[str, Any]]
    share_s: float


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise RowTimeout in the main thread once `seconds` have passed."""

    def expire(signum: int, frame: object) -> None:
        raise RowTimeout(f"ran past its share of the budget ({seconds:.0f} s)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def one_line(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def peak_gpu_mib() -> float | None:
    """The most GPU memory allocated since the last reset, in MiB (None without CUDA)."""
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def run_checks(
    checks: list[Check], budget_s: float, clock: Callable[[], float] = time.monotonic
) -> list[dict[str, Any]]:
    """Run each check within its share of what is left of `budget_s`; one row each.

    A row's status is `ok`, `error` (with its one-line error), or `skipped` (with why:
    a missing file, or the budget spent). No row's failure stops the others.
    """
    start = clock()
    rows = []
    for check in checks:
        row: dict[str, Any] = {"section": check.section, "check": check.name}
        left = budget_s - (clock() - start)
        if left < 1.0:
            rows.append(row | {"status": "skipped", "note": f"budget of {budget_s:.0f} s spent"})
            continue
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        began = clock()
        try:
            with time_limit(min(check.share_s, left)):
                row |= check.measure()
            row["status"] = "ok"
        except Skipped as why:
            row |= {"status": "skipped", "note": str(why)}
        except Exception as err:  # one row's failure must not end the check
            row |= {"status": "error", "error": one_line(err)}
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # what the failed row held goes back to the next one
        row["seconds"] = clock() - began
        row.setdefault("peak_gpu_mib", peak_gpu_mib())
        rows.append(row)
    return rows


# --- the rows' measurements -------------------------------------------------------------


def throughput(
    model: str, batch: int, precision: str, sizes: Sizes, workdir: Path, overrides: list[str]
) -> dict[str, Any]:
    """Images/s of the Trainer and of the plain loop, their ratio and the time between."""
    row = bench_training(
        model, precision, batch, sizes.warmup, sizes.window, sizes.windows,
        workdir, [*sizes.nets[model], *overrides],
    )  # fmt: skip
    keep = ("framework_img_s", "plain_img_s", "ratio", "framework_step_ms", "plain_step_ms",
            "overhead_ms", "overhead_cpu_ms")  # fmt: skip
    row = {key: row[key] for key in keep}
    row["result"] = (
        f"Trainer {row['framework_img_s']:,.0f} / plain {row['plain_img_s']:,.0f} img/s = "
        f"{row['ratio']:.3f}; {row['overhead_ms']:+.2f} ms/it"
    )
    return row


#: the breakdown's settings that the fixed-cost rows measure: the two ends, and the parts
#: that read values from the device on every step on a GPU (NanGuard; a progress bar)
FIXED_COST_SETTINGS = ["lightning", "logging", "callbacks.nan_guard", "callbacks.progress_bar",
                       "genlab"]  # fmt: skip


def fixed_cost(
    model: str, sizes: Sizes, workdir: Path, overrides: list[str], real_step: Callable[[], Any]
) -> dict[str, Any]:
    """The Trainer's cost per iteration over the plain loop, with near-zero networks.

    `real_step()` is the throughput row of the same model at the first batch size in
    32-true (None when it did not run): genlab's cost is given as a share of its step.
    """
    batch = sizes.batch_sizes[0]
    breakdown = bench_overhead(
        model, batch, sizes.warmup, sizes.breakdown_window, sizes.windows, workdir, overrides,
        keys=FIXED_COST_SETTINGS,
    )  # fmt: skip
    rows = {row["key"]: row for row in breakdown["rows"]}
    row = {
        "batch_size": batch,
        "lightning_ms": rows["lightning"]["overhead_ms"],
        "genlab_ms": rows["genlab"]["overhead_ms"],
        "added_ms": {key: rows[key]["added_ms"] for key in FIXED_COST_SETTINGS},
    }
    added = row["added_ms"]
    row["result"] = (
        f"Lightning alone {row['lightning_ms']:.2f}, genlab {row['genlab_ms']:.2f} ms/it "
        f"(logging {added['logging']:+.2f}, nan_guard {added['callbacks.nan_guard']:+.2f}, "
        f"progress bar {added['callbacks.progress_bar']:+.2f})"
    )
    real = real_step()
    if real is not None:
        row["real_step_ms"] = real["framework_step_ms"]
        row["share_of_step"] = row["genlab_ms"] / real["framework_step_ms"]
        row["result"] += f" = {row['share_of_step']:.0%} of a real 32-true step"
    return row


def genlab_train() -> list[str]:
    """The `genlab-train` command of this interpreter's environment."""
    script = Path(sys.executable).with_name("genlab-train")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "genlab.train"]


class PeakGpuMemory(pl.Callback):
    """Writes each rank's peak GPU memory (MiB) to `<out>/<rank>.json` when fitting ends."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"{trainer.global_rank}.json").write_text(json.dumps(peak_gpu_mib()))


def run_subprocess(command: list[str], log: Path) -> None:
    """Run `command` in a process group of its own, and end what is left of that group (the
    DDP ranks it started) however this returns, a row's timeout included. A non-zero exit
    raises with the last line of the output."""
    # The child builds this folder's callbacks from its config: it must import `benchmarks`.
    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        try:
            code = process.wait()
        finally:
            with suppress(ProcessLookupError):  # the group has ended: nothing left to stop
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if code != 0:
        tail = [line for line in log.read_text().splitlines() if line.strip()][-1:]
        raise RuntimeError(f"{' '.join(command[:2])} exited with {code}: {''.join(tail)}")


def ddp_epochs(overrides: list[str], run_dir: Path, world: int, batch: int, iterations: int) -> int:
    """Epochs that hold at least `iterations` iterations per rank under DDP."""
    cfg = compose_config("train", overrides, run_dir)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    per_rank = math.ceil(len(datamodule.train_dataloader().dataset) / world)
    return math.ceil(iterations / math.ceil(per_rank / batch))


def logged_fid(run_dir: Path) -> tuple[float, int]:
    """The one `val/fid_lenet` the run logged, and the epoch it was logged at."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if row.get("val/fid_lenet")]
    if len(rows) != 1:
        raise RuntimeError(f"expected one logged val/fid_lenet, found {len(rows)}")
    return float(rows[0]["val/fid_lenet"]), int(rows[0]["epoch"])


def single_device_fid(checkpoint: Path, world: int, epoch: int, cache_dir: Path) -> float:
    """The FID of the DDP run's samples, computed again in this one process.

    Each rank of GenerativeMetrics draws its share of the samples from a generator
    seeded with `seed + 7919 * epoch + rank`, in batches of `metrics.batch_size`; the
    same draws here, on one device, must give the FID that the ranks synced.
    """
    model, config = load_model(checkpoint)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    metrics = config.metrics
    extractor = build_extractor(metrics.extractor).to(device)
    datamodule = run_datamodule(config)
    datamodule.setup("fit")
    real = real_features(
        datamodule, metrics.real_split, extractor, cache_dir, metrics.batch_size, device
    )
    per_rank = math.ceil(metrics.n_samples / world)
    suite = MetricSuite(extractor, real, compute_is=False).to(device)
    for rank in range(world):
        generator = torch.Generator().manual_seed(metrics.seed + 7919 * epoch + rank)
        for start in range(0, per_rank, metrics.batch_size):
            suite.update(
                model.generate(min(metrics.batch_size, per_rank - start), generator=generator)
            )
    return float(suite.fid.compute())


def ddp(sizes: Sizes, workdir: Path, dry_run: bool) -> dict[str, Any]:
    """`genlab-train` under DDP on every visible GPU (two gloo ranks in a dry run), with
    FID measured once at its end; that FID against one device's on the same samples."""
    world = 2 if dry_run else torch.cuda.device_count()
    batch = sizes.batch_sizes[0]
    run_dir = workdir / "ddp"
    overrides = [
        "trainer=ddp_sim" if dry_run else "trainer=ddp",
        f"trainer.devices={world}",
        "model=gan",
        *sizes.nets["gan"],
        "logger=csv",
        "metrics=fid_lenet",
        f"metrics.n_samples={sizes.fid_samples}",
        f"data.batch_size={batch}",
        "trainer.enable_model_summary=false",
        "callbacks.model_summary=null",
        "callbacks.progress_bar.refresh_rate=0",
        f"paths.cache_dir={workdir / 'cache'}",
    ]
    if dry_run:
        overrides += ["+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1"]
        epochs = 1
    else:
        epochs = ddp_epochs(overrides, run_dir, world, batch, sizes.ddp_iterations)
    # validation, and so FID, only at the end of the last epoch
    overrides += [f"trainer.max_epochs={epochs}", f"trainer.check_val_every_n_epoch={epochs}"]
    memory_dir = run_dir / "peak_gpu_mib"
    overrides += [
        f"hydra.run.dir={run_dir}",
        f"+callbacks.peak_memory._target_={__name__}.PeakGpuMemory",
        f"+callbacks.peak_memory.out={memory_dir}",
    ]
    began = time.monotonic()
    run_subprocess([*genlab_train(), *overrides], workdir / "ddp.log")
    train_s = time.monotonic() - began
    fid, epoch = logged_fid(run_dir)
    single = single_device_fid(
        run_dir / "checkpoints" / "last.ckpt", world, epoch, workdir / "cache"
    )
    # the same samples: on CPU ranks the same arithmetic, on GPUs kernels that may differ
    # between processes (cuDNN's choice, TF32); two different sets of samples differ by more
    tolerance = 1e-6 if dry_run else 1e-4
    relative = abs(fid - single) / max(abs(single), 1e-12)
    peaks = [json.loads(path.read_text()) for path in sorted(memory_dir.glob("*.json"))]
    row = {
        "ranks": world,
        "backend": "gloo" if dry_run else "nccl",
        "epochs": epochs,
        "train_s": train_s,
        "fid_ddp": fid,
        "fid_single_device": single,
        "fid_relative_difference": relative,
        "fid_equal": relative <= tolerance,
        "peak_gpu_mib": max(peaks) if peaks and None not in peaks else None,
        "result": f"{world} ranks, {epochs} epochs in {train_s:.0f} s; FID {fid:.4f} logged "
        f"once, one device {single:.4f} (relative difference {relative:.1e})",
    }
    if not row["fid_equal"]:
        raise RuntimeError(
            f"the DDP run's FID {fid:.6f} differs from one device's {single:.6f} on the same "
            f"samples by {relative:.1e} (more than {tolerance:.0e})"
        )
    return row


def fid(extractor: str, sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """Generation, feature extraction and Frechet distance times of `fid_samples` images."""
    if extractor == "inception" and not inception_weights_path().is_file():
        path = inception_weights_path()
        raise Skipped(f"to time Inception, place {INCEPTION_WEIGHTS} in {path.parent}")
    result = bench_evaluation(sizes.fid_samples, 500, extractor, workdir, [])
    row = {
        "generate_s": sizes.fid_samples / result["generate_gan_img_s"],
        "features_s": result["features_s"],
        "frechet_s": result["frechet_s"],
        "kid_is_s": result["kid_is_s"],
        "real_features_s": result["real_features_s"],
    }
    row["result"] = (
        f"generate {row['generate_s']:.2f} s, features {row['features_s']:.2f} s, "
        f"Frechet {row['frechet_s']:.3f} s"
    )
    return row


@contextmanager
def eager_compile() -> Iterator[None]:
    """torch.compile with its graphs run eagerly: a dry run's compile rows trace what
    `model.compile=true` compiles, without minutes of C++ code generation on a CPU."""
    import torch._dynamo

    try:
        with torch._dynamo.config.patch(debug_backend_override=">=0:eager"):
            yield
    finally:
        torch._dynamo.reset()  # no compiled graph outlives the row


def compiled(
    model: str, channels_last: bool, compile_: bool, sizes: Sizes, workdir: Path,
    overrides: list[str], dry_run: bool,
) -> dict[str, Any]:  # fmt: skip
    """Throughput in bf16-mixed with `model.channels_last` and `model.compile` as given."""
    options = [f"model.channels_last={channels_last}", f"model.compile={compile_}"]
    with eager_compile() if dry_run and compile_ else nullcontext():
        return throughput(
            model, sizes.batch_sizes[0], "bf16-mixed", sizes, workdir, [*overrides, *options]
        )


def plan(sizes: Sizes, workdir: Path, dry_run: bool, sections: list[str]) -> list[Check]:
    """Every row of the check, in order, as closures over where and how big."""
    overrides = [*sizes.overrides, *([] if dry_run else ["trainer=gpu"])]
    checks: list[Check] = []
    done: dict[str, Any] = {}  # throughput rows by name, for the fixed-cost share

    def add(section: str, name: str, measure: Callable[[], dict[str, Any]]) -> None:
        if section in sections:
            checks.append(Check(section, name, measure, sizes.shares[section]))

    def remembered(name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        done[name] = measure()
        return done[name]

    for model in MODELS:
        for batch in sizes.batch_sizes:
            for precision in PRECISIONS:
                name = f"{model}, batch {batch}, {precision}"
                where = workdir / f"{model}_{batch}_{precision}"
                measure = partial(throughput, model, batch, precision, sizes, where, overrides)
                add("throughput", name, partial(remembered, name, measure))
    for model in MODELS:
        real = partial(done.get, f"{model}, batch {sizes.batch_sizes[0]}, 32-true")
        where = workdir / f"fixed_{model}"
        add("fixed cost", f"{model}, near-zero networks",
            partial(fixed_cost, model, sizes, where, overrides, real))  # fmt: skip
    ranks = "2 CPU ranks over gloo" if dry_run else f"{torch.cuda.device_count()} GPUs over NCCL"
    add("ddp", f"gan, {ranks}", partial(ddp, sizes, workdir, dry_run))
    for extractor in ("lenet", "inception"):
        add("fid", f"{sizes.fid_samples:,} samples, {extractor}",
            partial(fid, extractor, sizes, workdir / f"fid_{extractor}"))  # fmt: skip
    for model in MODELS:
        for channels_last, compile_ in ((True, False), (False, True), (True, True)):
            options = " + ".join(n for n, on in (("channels_last", channels_last),
                                                 ("compile", compile_)) if on)  # fmt: skip
            name = f"{model}, batch {sizes.batch_sizes[0]}, bf16-mixed, {options}"
            where = workdir / f"compile_{model}_{channels_last}_{compile_}"
            add("compile", name, partial(compiled, model, channels_last, compile_, sizes,
                                         where, overrides, dry_run))  # fmt: skip
    return checks
