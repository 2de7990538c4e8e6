"""Summarise a `mutmut run`: killed and surviving mutants per module, and the score.

    make mutation                      # mutmut run, then this report
    .venv/bin/python scripts/mutation_report.py [--survivors]

Reads `mutmut results --all true` (one `<module>.<function>__mutmut_<n>: <status>` line per
mutant), so it works with whatever mutmut stored in `mutants/`. The score counts killed
and timed-out mutants over all mutants that some test ran; `--survivors` also lists the
survivors (`mutmut show <name>` prints a mutant's diff).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

CAUGHT = {"killed", "timeout", "caught by type check"}
NOT_RUN = {"no tests", "skipped", "not checked"}


def mutant_statuses() -> dict[str, str]:
    """Mutant name -> status, as mutmut reports them."""
    mutmut = Path(sys.executable).parent / "mutmut"
    out = subprocess.run(
        [str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    statuses = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            statuses[name] = status
    return statuses


def module_of(mutant: str) -> str:
    """`genlab.losses.x_hinge_d__mutmut_3` -> `genlab.losses`."""
    return mutant.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survivors", action="store_true", help="list every surviving mutant")
    args = parser.parse_args()
    statuses = mutant_statuses()
    if not statuses:
        print("error: no mutation results in mutants/; run `make mutation` first", file=sys.stderr)
        return 2
    per_module: dict[str, Counter] = defaultdict(Counter)
    for name, status in statuses.items():
        per_module[module_of(name)][status] += 1
    table = Table(title="mutation testing (mutmut): mutants per module")
    for column in ("module", "killed", "survived", "not run", "other", "score"):
        table.add_column(column, justify="left" if column == "module" else "right")
    totals: Counter = Counter()
    for module, counts in sorted(per_module.items()):
        totals.update(counts)
        table.add_row(module, *cells(counts))
    table.add_row("all", *cells(totals), style="bold")
    Console().print(table)
    if args.survivors:
        for name, status in sorted(statuses.items()):
            if status not in CAUGHT | NOT_RUN:
                print(f"{status}: {name}")
    return 0


def cells(counts: Counter) -> list[str]:
    """killed, survived, not run, other, score (caught / run) of one row."""
    caught = sum(counts[s] for s in CAUGHT)
    not_run = sum(counts[s] for s in NOT_RUN)
    other = sum(counts.values()) - caught - not_run - counts["survived"]
    run = sum(counts.values()) - not_run
    score = f"{100 * caught / run:.1f}%" if run else "-"
    return [str(caught), str(counts["survived"]), str(not_run), str(other), score]


if __name__ == "__main__":
    raise SystemExit(main())
