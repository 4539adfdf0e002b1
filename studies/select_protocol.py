"""The protocol selection: nested leave-one-domain-out (stage ``select_protocol`` of
``studies/dvc.yaml``; issue 31).

For a target domain D — the one whose adaptation protocol is being chosen — every choice
is made without reading D: meta-train on two of the three other domains, adapt to the
corpora of the third (K train sentences drawn from their train splits, scored on a seeded
subset of their *devel* splits), and rotate over the three. With the four domains each
(pair of sources, validation domain) has exactly one target D left out, so the 12 such
combinations give three per target. No test split is read.

The candidates and the measured (meta-training, adaptation) pairs are in
``studies/protocol_grid.yaml``; every run is a cell of the main pipeline's kinds
(:mod:`hgda_core.grid`), kept in the cell store and run on the environment's executor, so
a pair measured once is never measured again, and an interrupted run continues.

Writes ``reports/selection/protocol.csv`` (one row per combination, pair, corpus and draw,
with the meta-training run's iterations and seconds) and ``reports/selection/protocol.md``
(per target, each pair's mean devel F1 over its three combinations, its gain over scratch,
the best pair, seconds per meta-training iteration).

Run from the repository root: ``python -m studies.select_protocol`` (``--only
literal:fresh,fresh:fresh`` measures some pairs; ``--targets Disease`` the combinations of
some targets; the outputs then hold those rows).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hgda_core.cellstore import CellStore
from hgda_core.executor import CellsFailed, ExecutorSettings, run_cells
from hgda_core.grid import ADAPT, META, Cell, compute_adapt, compute_metatrain, describe_adapt, describe_metatrain, draw_blocks, read_json_file, read_rows_file
from hgda_core.io import csv_text, setup_logging, write_text
from stages import adapt as adapt_stage
from stages import metatrain as metatrain_stage
from stages.common import ROOT, cells_root, domain_of, load_params

log = logging.getLogger("studies.select_protocol")

GRID = ROOT / "studies" / "protocol_grid.yaml"
SCRATCH = "scratch"
FIELDS = ("target", "sources", "validation", "meta_setting", "adapt_setting", "method", "shots", "corpus",
          "repetition", "sampling", "f1", "precision", "recall", "sample_entities", "meta_iterations",
          "meta_stopped_by", "meta_seconds", "seconds")


@dataclass(frozen=True)
class Combination:
    """Meta-train on ``sources``, adapt to ``validation``; ``target`` is never read."""

    sources: tuple[str, str]
    validation: str
    target: str


def combinations(domains: list[str]) -> list[Combination]:
    """Every (pair of sources, validation domain) of four domains, with the target left out."""
    if len(domains) != 4:
        raise ValueError(f"the nested design needs four domains with corpora, got {domains}")
    out = []
    for pair in itertools.combinations(sorted(domains), 2):
        rest = [d for d in sorted(domains) if d not in pair]
        out += [Combination(pair, v, next(d for d in rest if d != v)) for v in rest]
    return out


def overridden(params: dict[str, Any], section: str, overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(params)
    out[section].update(overrides)
    return out


def plan(params: dict[str, Any], grid: dict[str, Any], root: Path = ROOT, only: set[tuple[str, str]] | None = None,
         targets: set[str] | None = None) -> tuple[list[Cell], list[tuple[Cell, dict]]]:
    """The meta-training cells and the adaptation cells (each with its row labels) of the
    pairs of ``grid`` (``only``: these pairs; ``targets``: these targets' combinations)."""
    domains_of = domain_of(params["corpora"], params["domains"])
    by_domain: dict[str, list[str]] = {}
    for name, domain in domains_of.items():
        by_domain.setdefault(domain, []).append(name)
    k, method = int(grid["shots"]), grid["method"]
    base = copy.deepcopy(params)
    base["profile"] = "converged"
    base["meta"].update(max_iterations=int(grid["iterations"]), schedule_horizon=0, snapshots=[])
    base["adapt"].update(eval_split="devel", test_sentences=int(grid["devel_sentences"]), sampling=grid["sampling"])
    pairs = [tuple(p) for p in grid["pairs"] if only is None or tuple(p) in only]
    for meta_name, adapt_name in pairs:
        if meta_name != SCRATCH and meta_name not in grid["meta"] or adapt_name not in grid["adapt"]:
            raise ValueError(f"{GRID.name}: pair [{meta_name}, {adapt_name}] names a setting it does not define")
    meta_cells: dict[tuple, Cell] = {}
    adapt_cells: list[tuple[Cell, dict]] = []
    builders: dict[str, Any] = {}
    for combo in combinations(sorted(by_domain)):
        if targets and combo.target not in targets:
            continue
        sources = [c for d in combo.sources for c in by_domain[d]]
        for meta_name, adapt_name in pairs:
            start = None
            if meta_name != SCRATCH:
                key = (combo.sources, meta_name)
                if key not in meta_cells:
                    build = metatrain_stage.cell_builder(overridden(base, "meta", grid["meta"][meta_name]), root, sources)
                    meta_cells[key] = build(None, method, k, f"{'+'.join(combo.sources)} {meta_name} K={k}")
                start = meta_cells[key]
            if adapt_name not in builders:
                builders[adapt_name] = adapt_stage.cell_builder(overridden(base, "adapt", grid["adapt"][adapt_name]), root)
            checkpoint = CellStore(cells_root(root)).path(META, start.key) / "model.pt" if start else None
            for corpus in by_domain[combo.validation]:
                for block in draw_blocks(int(grid["draws"])):
                    cell = builders[adapt_name](SCRATCH if start is None else method, corpus, k, block, start, checkpoint,
                                                f"{corpus} {meta_name}:{adapt_name} ({'+'.join(combo.sources)})")
                    labels = {"target": combo.target, "sources": "+".join(combo.sources), "validation": combo.validation,
                              "meta_setting": meta_name, "adapt_setting": adapt_name, "meta_cell": start.key if start else ""}
                    adapt_cells.append((cell, labels))
    return list(meta_cells.values()), adapt_cells


def rows_of(adapt_cells: list[tuple[Cell, dict]], store: CellStore) -> list[dict]:
    """The rows of finished cells, with their labels and their meta-training run's cost."""
    rows = []
    for cell, labels in adapt_cells:
        meta = read_json_file(store.path(META, labels["meta_cell"]) / "metrics.json") if labels["meta_cell"] else {}
        for row in read_rows_file(store.path(ADAPT, cell.key) / "rows.csv"):
            rows.append({**labels, **row, "meta_iterations": meta.get("iterations", ""),
                         "meta_stopped_by": meta.get("stopped_by", ""), "meta_seconds": meta.get("seconds", "")})
    return [{f: r[f] for f in FIELDS} for r in rows]


def summary(rows: pd.DataFrame) -> str:
    """Per target: each pair's mean devel F1 (corpora averaged within a combination, then
    combinations averaged), its gain over scratch at the same adaptation setting where
    measured, and seconds per meta-training iteration."""
    if rows.empty:
        return "# Protocol selection\n\nNo rows yet.\n"
    rows = rows.assign(f1=rows["f1"].astype(float))
    per_combo = rows.groupby(["target", "sources", "validation", "meta_setting", "adapt_setting", "corpus"])["f1"].mean()
    per_combo = per_combo.groupby(level=[0, 1, 2, 3, 4]).mean().reset_index()
    table = per_combo.groupby(["target", "meta_setting", "adapt_setting"])["f1"].agg(["mean", "count"]).reset_index()
    scratch = table[table["meta_setting"] == SCRATCH].set_index(["target", "adapt_setting"])["mean"]
    starts = {"mean", "best_source", "shared"}  # a decoder start scratch does not have: it starts fresh
    lines = ["# Protocol selection (nested leave-one-domain-out, devel F1)", "",
             "Per target domain D (never read): each (meta-training, adaptation) pair's mean F1 on the devel splits "
             "of the validation domain, over the combinations that leave D out (`combinations`, of 3); "
             "`− scratch`: minus scratch at the same adaptation setting (for a decoder start that scratch has not, "
             "`mean`, `best_source` or `shared`, scratch's fresh start, marked *). Rows: `protocol.csv`; "
             "candidates: `studies/protocol_grid.yaml`.", ""]
    for target, part in table.groupby("target"):
        lines += [f"## Target {target}", "", "| meta-training | adaptation | mean F1 | − scratch | combinations |", "|---|---|---|---|---|"]
        for _, r in part.sort_values("mean", ascending=False).iterrows():
            gain, mark = scratch.get((target, r["adapt_setting"])), ""
            if gain is None and r["adapt_setting"] in starts:
                gain, mark = scratch.get((target, "fresh")), "*"
            gain_text = "" if gain is None or r["meta_setting"] == SCRATCH else f"{r['mean'] - gain:+.3f}{mark}"
            lines.append(f"| {r['meta_setting']} | {r['adapt_setting']} | {r['mean']:.3f} | {gain_text} | {int(r['count'])} |")
        best = part[part["meta_setting"] != SCRATCH].sort_values("mean", ascending=False).head(1)
        if not best.empty:
            lines += ["", f"Best: `{best.iloc[0]['meta_setting']}` meta-training with `{best.iloc[0]['adapt_setting']}` adaptation.", ""]
    cost = rows[rows["meta_setting"] != SCRATCH].drop_duplicates(["sources", "meta_setting"])
    if not cost.empty:
        cost = cost.assign(per_it=cost["meta_seconds"].astype(float) / cost["meta_iterations"].astype(float))
        lines += ["## Cost of meta-training", "", "| meta-training | seconds per iteration (mean over source pairs) |", "|---|---|"]
        for name, value in cost.groupby("meta_setting")["per_it"].mean().items():
            lines.append(f"| {name} | {value:.2f} |")
    return "\n".join(lines) + "\n"


def run(params: dict[str, Any], grid: dict[str, Any], root: Path = ROOT, only=None, targets=None, progress=True) -> pd.DataFrame:
    settings = ExecutorSettings.from_env()
    store = CellStore(cells_root(root))
    meta_cells, adapt_cells = plan(params, grid, root, only, targets)
    todo = [c for c in meta_cells if not store.has(META, c.key)]
    log.info("%d meta-training cells (%d to train), %d adaptation cells", len(meta_cells), len(todo), len(adapt_cells))
    run_cells(compute_metatrain, todo, [c.label for c in todo], settings, int(params["threads"]), describe_metatrain,
              "select_protocol metatrain", progress)
    todo = [c for c, _ in adapt_cells if not store.has(ADAPT, c.key)]
    run_cells(compute_adapt, todo, [c.label for c in todo], settings, int(params["threads"]), describe_adapt,
              "select_protocol adapt", progress)
    rows = rows_of(adapt_cells, store)
    out = root / "reports" / "selection"
    write_text(out / "protocol.csv", csv_text(rows, FIELDS))
    frame = pd.DataFrame(rows, columns=list(FIELDS))
    write_text(out / "protocol.md", summary(frame))
    return frame


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default=str(GRID))
    parser.add_argument("--only", default="", help="comma-separated meta:adapt pairs of the grid (default: all)")
    parser.add_argument("--targets", default="", help="comma-separated target domains (default: all four)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        grid = yaml.safe_load(Path(args.grid).read_text(encoding="utf-8"))
        only = {tuple(p.split(":", 1)) for p in args.only.split(",") if p.strip()} or None
        targets = {t for t in args.targets.split(",") if t.strip()} or None
        run(load_params(), grid, only=only, targets=targets)
    except (ValueError, FileNotFoundError, CellsFailed) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
