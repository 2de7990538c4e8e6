"""FID against the post-hoc EMA length (`genlab-ema score=true`): the run's last weights and
every rebuilt average scored by one genlab-eval on the same latents and reference, as a
table (`posthoc_ema.md`, `.csv`) and a picture (`posthoc_ema.png`), the best length named.

`last.ckpt` holds the live weights, or, in a run with `callbacks=ema` as well, the
fixed-decay average, whose live weights it keeps beside it (`current_model_state`): those
are then written as `live.ckpt` and scored too, so that one table compares the live
weights, the fixed decay and every post-hoc length.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from genlab.checkpoints import save_into_file, weights_only_checkpoint
from genlab.errors import GenlabError
from genlab.utils.figures import new_axes, save_png
from genlab.utils.files import write_atomically

COLUMNS = ("weights", "sigma_rel", "fid", "precision", "recall", "profile_error")


def reference_points(
    last: Path, checkpoint: dict[str, Any], out_dir: Path
) -> list[tuple[str, Path]]:
    """(label, checkpoint file) of the weights the post-hoc lengths are compared with:
    `last` (whose contents are `checkpoint`), and its live weights where it holds both."""
    live = checkpoint.get("current_model_state")
    if live is None:
        return [("live", last)]
    path = out_dir / "live.ckpt"
    kept = weights_only_checkpoint(checkpoint, live, "the live weights of a run with an EMA")
    write_atomically(path, lambda tmp: save_into_file(kept, tmp))
    decay = checkpoint["genlab_config"]["callbacks"]["ema"]["decay"]
    return [("live", path), (f"ema {decay:g}", last)]


def scored(points: list[tuple[str, Path]], out_dir: Path, eval_args: list[str]) -> list[dict]:
    """genlab-eval of every checkpoint in one command; its results in the points' order."""
    eval_dir = out_dir / "posthoc_ema_eval"
    command = [
        sys.executable, "-m", "genlab.eval",
        f"samples=[{','.join(str(path) for _, path in points)}]",
        f"names=[{','.join(label.replace(' ', '_') for label, _ in points)}]",
        f"hydra.run.dir={eval_dir}", f"out_file={eval_dir / 'metrics.json'}", *eval_args,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).strip().splitlines() or ["(no output)"]
        raise GenlabError(f"genlab-ema score=true: genlab-eval failed: {lines[-1]}")
    return json.loads((eval_dir / "metrics.json").read_text())["sources"]


def rows_of(points: list[dict[str, Any]], results: list[dict]) -> list[dict[str, Any]]:
    """The table's rows: each point (weights, sigma_rel, profile_error) with its scores."""
    return [
        {**point, "fid": r.get("fid"), "precision": r.get("precision"), "recall": r.get("recall")}
        for point, r in zip(points, results, strict=True)
    ]


def best_length(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rebuilt length with the lowest FID (the live and fixed-decay rows do not compete:
    they are what the lengths are compared with)."""
    return min((r for r in rows if r["sigma_rel"] is not None), key=lambda r: r["fid"])


def markdown(rows: list[dict[str, Any]]) -> str:
    best = best_length(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
    for r in rows:
        cells = [r["weights"], *(f"{r[c]:.4g}" if r[c] is not None else "-" for c in COLUMNS[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\nbest post-hoc EMA: sigma_rel {best['sigma_rel']:.4g}, FID {best['fid']:.4g}")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """FID against sigma_rel (log x); the other weights as horizontal lines."""
    figure, axes = new_axes(7, 4.5)
    curve = sorted((r["sigma_rel"], r["fid"]) for r in rows if r["sigma_rel"] is not None)
    axes.plot(*zip(*curve, strict=True), marker="o", label="post-hoc EMA")
    for r in rows:
        if r["sigma_rel"] is None:
            axes.axhline(r["fid"], linestyle="--", color="gray" if r["weights"] == "live" else "C1",
                         label=f"{r['weights']} weights")  # fmt: skip
    axes.set_xscale("log")
    axes.set_xlabel("EMA length sigma_rel (profile std / training iterations)")
    axes.set_ylabel("FID")
    save_png(figure, axes, path, dpi=110, fontsize=8)


def write_sweep(rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """`posthoc_ema.md`, `.csv` and `.png` in `out_dir`, each written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files = [out_dir / f"posthoc_ema.{ext}" for ext in ("md", "csv", "png")]
    write_atomically(files[0], lambda tmp: tmp.write_text(markdown(rows)))
    write_atomically(files[1], lambda tmp: tmp.write_text(buffer.getvalue()))
    plot(rows, files[2])
    return files
