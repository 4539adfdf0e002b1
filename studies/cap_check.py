"""The cap check: are the runs that stop at the cap of ``meta.max_iterations`` stopped short?
(stage ``cap_check`` of ``studies/dvc.yaml``)

docs/reproducing.md, "Runs that stop at the cap": four K = 10 meta-training runs (two that
end at the cap of 1,500 iterations, two that end by patience) are trained again with the
cap — and with it the linear schedule's horizon — at 1,500 and at 3,000, everything else
as in ``params.yaml``, and each checkpoint is adapted with the protocol's budget
(``adapt.steps`` steps at ``adapt.default_lr``) on the same 20 draws per corpus, scored

* on 300 sentences of each *source* corpus's devel split (:mod:`studies.select_lr`: the
  selection data; ``split`` ``source_devel``), and
* on the held-out domain's devel splits (:mod:`studies.budget_study`, factor ``steps``: an
  analysis that chooses nothing; ``split`` ``target_devel_analysis``).

Two subcommands, run from the repository root:

``measure --cap N``
    runs the documented commands in "a checkout with that param": for each run a scratch
    checkout ``models/cap_check/cap<N>/<held_out>-<method>/`` (a copy of ``stages/`` and
    ``studies/``, a link to ``data/`` and a ``params.yaml`` with ``meta.max_iterations: N``
    that names this run only — ``meta.held_out``, ``meta.methods``, ``shots`` — because the
    metatrain stage trains every run its params name), so that the workspace's own
    checkpoints and ``reports/metatrain/`` are never touched::

        python -m stages.metatrain
        python -m studies.select_lr --method transfer --held-out Gene --k 10 --head-lrs 0.03 \\
            --steps 100 --repeats 20 --devel 300 --out cap<N>-source.csv
        python -m studies.budget_study --held-out Gene --shots 10 --methods transfer --draws 20 \\
            --factors steps --steps 100 --out cap<N>-target.csv

``assemble``
    writes ``reports/cap_horizon.csv`` from those two CSVs and the ``metrics.json`` of each
    run and cap (:func:`assemble`): per cap, per run, its source-devel rows, then its
    target-devel rows, each beside the run's stop, iterations, best iteration, best
    meta-validation loss and seconds.

``python -m studies.cap_check measure --cap 1500 && python -m studies.cap_check measure --cap 3000
&& python -m studies.cap_check assemble`` re-makes the committed table.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hgda_core.io import csv_text, setup_logging, write_text
from stages.common import ROOT, load_params

log = logging.getLogger("studies.cap_check")
OUT = ROOT / "reports" / "cap_horizon.csv"
WORK = ROOT / "models" / "cap_check"
RUNS = ("Gene-transfer", "Species-hgda_nes", "Disease-hgda", "Drug-transfer")
CAPS = (1500, 3000)
FIELDS = ("held_out", "method", "shots", "max_iterations", "schedule_horizon", "stopped_by", "iterations",
          "best_iteration", "best_val_loss", "seconds", "split", "corpus", "repetition", "adapt_steps",
          "adapt_default_lr", "precision", "recall", "f1")  # fmt: skip
RUN_FIELDS = ("stopped_by", "iterations", "best_iteration", "best_val_loss", "seconds")
SOURCE, TARGET = "source_devel", "target_devel_analysis"


@dataclass
class Part:
    """What one cap measured: its params and the rows and metrics of its runs."""

    max_iterations: int
    schedule_horizon: int
    adapt_default_lr: float
    source_rows: list[dict[str, str]] = field(default_factory=list)  # select_lr's CSV rows
    target_rows: list[dict[str, str]] = field(default_factory=list)  # budget_study's CSV rows
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # "<held_out>-<method>" → metrics.json


def split_run(run: str) -> tuple[str, str]:
    """``"Species-hgda_nes"`` → ``("Species", "hgda_nes")`` (domains hold no ``-``)."""
    held_out, sep, method = run.partition("-")
    if not (sep and held_out and method):
        raise ValueError(f"run {run!r}: expected <held_out>-<method>, e.g. Gene-transfer")
    return held_out, method


def number(value: Any) -> str:
    """A CSV cell: whole numbers without a decimal point (``1.0`` → ``1``), other numbers
    in their shortest form (``0.117886``, ``1e-05``), text as it is."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if x != x or x in (float("inf"), float("-inf")):
        return str(value)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def _key(row: Mapping[str, str]) -> tuple[str, str, int]:
    return row["held_out"], row["method"], int(row["shots"])


def assemble(runs: Sequence[str], parts: Sequence[Part], shots: int) -> list[dict[str, str]]:
    """The rows of ``reports/cap_horizon.csv``: per part (cap), per run of ``runs``, the
    run's source-devel rows (select_lr's rows of that held-out domain, method and K, in
    their order; ``adapt_default_lr`` is their ``head_default_lr``), then its target-devel
    rows (budget_study's ``steps`` rows of the same; ``adapt_default_lr`` the part's
    ``adapt.default_lr``), each with the run's ``K<shots>`` entry of its ``metrics.json``.

    Raises:
        ValueError: a run without a ``metrics.json`` entry for K, or without rows.
    """
    out = []
    for part in parts:
        for run in runs:
            held_out, method = split_run(run)
            entry = (part.metrics.get(run) or {}).get(f"K{shots}")
            if not entry:
                raise ValueError(f"cap {part.max_iterations}: {run} has no K{shots} entry in its metrics.json")
            base = {"held_out": held_out, "method": method, "shots": shots, "max_iterations": part.max_iterations,
                    "schedule_horizon": part.schedule_horizon, **{k: entry[k] for k in RUN_FIELDS}}  # fmt: skip
            source = [r for r in part.source_rows if _key(r) == (held_out, method, shots)]
            target = [r for r in part.target_rows if _key(r) == (held_out, method, shots) and r["factor"] == "steps"]
            if not source or not target:
                raise ValueError(f"cap {part.max_iterations}: {run} K = {shots} has {len(source)} source-devel "
                                 f"and {len(target)} target-devel rows; both must have some")  # fmt: skip
            for split, rows in ((SOURCE, source), (TARGET, target)):
                for r in rows:
                    lr = r["head_default_lr"] if split == SOURCE else part.adapt_default_lr
                    row = {**base, "split": split, "corpus": r["corpus"], "repetition": r["repetition"],
                           "adapt_steps": r["steps"], "adapt_default_lr": lr,
                           **{m: r[m] for m in ("precision", "recall", "f1")}}  # fmt: skip
                    out.append({k: number(row[k]) for k in FIELDS})
    return out


# -- the scratch checkouts ----------------------------------------------------------------


def checkout(cap: int, run: str, shots: int, work: Path = WORK, root: Path = ROOT) -> Path:
    """``work/cap<cap>/<run>``: the stage and study scripts of ``root``, a link to its
    ``data/`` and its params with ``meta.max_iterations: cap`` naming only ``run`` at K =
    ``shots`` (created or refreshed)."""
    held_out, method = split_run(run)
    folder = work / f"cap{cap}" / run
    folder.mkdir(parents=True, exist_ok=True)
    for package in ("stages", "studies"):
        shutil.rmtree(folder / package, ignore_errors=True)
        shutil.copytree(root / package, folder / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.yaml", "*.lock", "*.md"))  # fmt: skip
    params = load_params(root)
    params["shots"] = [shots]
    params["meta"].update(max_iterations=cap, held_out=[held_out], methods=[method])
    write_text(folder / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    data = folder / "data"
    if not data.is_symlink():
        shutil.rmtree(data, ignore_errors=True)
        data.symlink_to(os.path.relpath(root / "data", folder), target_is_directory=True)
    return folder


def commands(cap: int, run: str, shots: int, draws: int, devel: int, adapt: Mapping[str, Any]) -> list[list[str]]:
    """The documented commands of one run, in the order they run (in its checkout)."""
    held_out, method = split_run(run)
    steps, lr = str(adapt["steps"]), number(adapt["default_lr"])
    return [["-m", "stages.metatrain"],
            ["-m", "studies.select_lr", "--method", method, "--held-out", held_out, "--k", str(shots), "--head-lrs", lr,
             "--steps", steps, "--repeats", str(draws), "--devel", str(devel), "--out", f"cap{cap}-source.csv"],
            ["-m", "studies.budget_study", "--held-out", held_out, "--shots", str(shots), "--methods", method,
             "--draws", str(draws), "--factors", "steps", "--steps", steps, "--out", f"cap{cap}-target.csv"]]  # fmt: skip


def measure(cap: int, runs: Sequence[str], shots: int, draws: int, devel: int, work: Path = WORK) -> None:
    for run in runs:
        folder = checkout(cap, run, shots, work)
        for name in (f"cap{cap}-source.csv", f"cap{cap}-target.csv"):
            (folder / name).unlink(missing_ok=True)  # select_lr appends: start each measurement empty
        for argv in commands(cap, run, shots, draws, devel, load_params(folder)["adapt"]):
            log.info("cap %d, in %s: python %s", cap, folder.relative_to(work), " ".join(argv))
            subprocess.run([sys.executable, *argv], cwd=folder, check=True)


def read_part(cap: int, runs: Sequence[str], work: Path = WORK) -> Part:
    """The measurement of ``cap``: the rows and metrics of each run's checkout."""
    part = None
    for run in runs:
        folder = work / f"cap{cap}" / run
        params = load_params(folder)
        meta = params["meta"]
        horizon = int(meta.get("schedule_horizon") or 0) or int(meta["max_iterations"])
        if part is None:
            part = Part(int(meta["max_iterations"]), horizon, float(params["adapt"]["default_lr"]))
        elif (part.max_iterations, part.schedule_horizon, part.adapt_default_lr) != (
                int(meta["max_iterations"]), horizon, float(params["adapt"]["default_lr"])):  # fmt: skip
            raise ValueError(f"{folder}: params differ from the other runs of cap {cap}")
        for name, rows in ((f"cap{cap}-source.csv", part.source_rows), (f"cap{cap}-target.csv", part.target_rows)):
            with open(folder / name, newline="", encoding="utf-8") as fh:
                rows.extend(csv.DictReader(fh))
        metrics = folder / "reports" / "metatrain" / params["model"]["encoder"] / run / "metrics.json"
        part.metrics[run] = json.loads(metrics.read_text(encoding="utf-8"))
    if part is None:
        raise ValueError("no runs")
    return part


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("measure", help="train and score the runs with one cap, in models/cap_check/cap<N>/")
    run_p.add_argument("--cap", type=int, required=True, help="meta.max_iterations of this measurement")
    run_p.add_argument("--draws", type=int, default=20)
    run_p.add_argument("--devel", type=int, default=300, help="source devel sentences per corpus (select_lr)")
    asm_p = sub.add_parser("assemble", help="write reports/cap_horizon.csv from the measurements")
    asm_p.add_argument("--caps", default=",".join(map(str, CAPS)))
    asm_p.add_argument("--out", default=str(OUT.relative_to(ROOT)))
    for p in (run_p, asm_p):
        p.add_argument("--runs", default=",".join(RUNS), help="comma-separated <held_out>-<method>")
        p.add_argument("--shots", type=int, default=10)
        p.add_argument("--work", default=str(WORK.relative_to(ROOT)), help="folder of the scratch checkouts")
    args = parser.parse_args(argv)
    setup_logging()
    runs = [r for r in args.runs.split(",") if r]
    work = ROOT / args.work
    if args.command == "measure":
        measure(args.cap, runs, args.shots, args.draws, args.devel, work)
        return
    parts = [read_part(int(cap), runs, work) for cap in args.caps.split(",") if cap]
    rows = assemble(runs, parts, args.shots)
    write_text(ROOT / args.out, csv_text(rows, FIELDS))
    log.info("wrote %d rows to %s", len(rows), args.out)


if __name__ == "__main__":
    main()
