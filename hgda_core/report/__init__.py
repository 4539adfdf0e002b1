"""The results report: Tables 1, 3, 4 and 5 of the paper from our runs, the significance
tests, the comparison with the paper's figures, three figures and an index.

:func:`build_report` writes everything under one folder (atomically, file by file) from
the adaptation scores and whatever meta-training logs exist; what is missing is said in
the files, never an error.  The pieces live in :mod:`hgda_core.report.tables` (Tables
3–5), :mod:`hgda_core.report.compare` (significance, the paper's figures),
:mod:`hgda_core.report.logs` (Table 1, hardness, curves) and :mod:`hgda_core.report.plots`;
:mod:`hgda_core.report.selection` renders the selection evidence of ``studies/``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hgda_core.io import atomic_write, write_text
from hgda_core.report.compare import (
    load_paper_results,
    paper_vs_ours,
    render_paper_vs_ours,
    render_paper_vs_ours_latex,
    render_results_at_a_glance,
    render_significance,
    results_at_a_glance,
)
from hgda_core.report.logs import (
    meta_budget_notes,
    SentenceStore,
    find_runs,
    hardness_points,
    log_path,
    read_curves,
    read_tasks,
    render_table1,
)
from hgda_core.report.plots import plot_curves, plot_f1_vs_k, plot_hardness
from hgda_core.report.tables import ENCODER_LABELS, METRICS, model_labels, render_results, results_table
from hgda_core.significance import significance_table

log = logging.getLogger(__name__)

FILES: dict[str, str] = {
    "table3.md": "Table 3: mean F1 per K, method and corpus, best in bold, † / ‡ where HGDA or HGDA-NEs is "
    "significantly better than MetaNER / BERT fine-tuning.",
    "table3.tex": "Table 3 as a booktabs LaTeX table environment.",
    "table4.md": "Table 4: mean precision, same layout.",
    "table4.tex": "Table 4 as a booktabs LaTeX table environment.",
    "table5.md": "Table 5: mean recall, same layout.",
    "table5.tex": "Table 5 as a booktabs LaTeX table environment.",
    "table1.md": "Table 1: the hardest, median and easiest meta-training task of each held-out domain, with "
    "their support sentences.",
    "table1.tex": "Table 1 as a booktabs LaTeX table environment.",
    "significance.md": "Paired t-test and Wilcoxon signed-rank test of HGDA / HGDA-NEs against each baseline per "
    "encoder, K and corpus, Holm-corrected: a summary, then every cell.",
    "significance.tex": "The significance summary (significant cells per comparison and K) in LaTeX.",
    "significance.csv": "Every tested cell: n pairs, mean difference, t, p-values raw and Holm-corrected.",
    "paper_vs_ours.md": "Every cell of the paper's Tables 3–5 that scores.csv has: the paper's value, ours, the "
    "difference, with a summary per method.",
    "paper_vs_ours.tex": "The F1 cells as ours / the paper's per K, method and corpus, and the summary, in LaTeX.",
    "paper_vs_ours.csv": "The same comparison as CSV.",
    "plots/f1_vs_k.png": "F1 against K per corpus, one line per method, error bars = std over repetitions; "
    "the paper's values as hollow diamonds.",
    "plots/hardness_vs_entities.png": "Hardness γ^θ of every logged task against the share of entity tokens in "
    "its sentences, coloured by task domain.",
    "plots/metatrain_curves.png": "Meta-validation loss against iteration per held-out domain and K, one line "
    "per method.",
}
"""Every file :func:`build_report` writes besides the index (relative to its folder)."""

GLANCE = "results_at_a_glance.md"
GLANCE_TEXT = "Results at a glance: Overall F1 per method and K, ours beside the paper's (linked from the top README)."
"""The summary :func:`build_report` writes with ``at_a_glance=True`` (the ``report`` stage does)."""


@dataclass
class ReportConfig:
    """The ``report`` section of params.yaml.

    Args:
        alpha: family-wise level of the Holm-corrected tests.
        show_std: add "± std over repetitions" to the cells of Tables 3–5.
        table1_method: the method whose meta-training logs Table 1 and the hardness plot read.
        table1_encoder: the encoder of those logs and of the meta-training curves
            (``reports/metatrain/<encoder>/``).
    """

    alpha: float = 0.05
    show_std: bool = False
    table1_method: str = "hgda"
    table1_encoder: str = "bilstm"


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    """Write a frame as CSV (no index), atomically."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False, lineterminator="\n")


def corpus_order(corpora: Sequence[str], domains: Mapping[str, Sequence[str]]) -> list[str]:
    """The run corpora in the order of the ``domains`` map (corpora in no domain last)."""
    ordered = [c for members in domains.values() for c in members if c in corpora]
    return ordered + [c for c in corpora if c not in ordered]


def render_index(scores: pd.DataFrame, notes: Sequence[str], at_a_glance: bool = False) -> str:
    """``README.md`` of the report folder: every generated file with what it shows."""
    lines = ["# Results report", "", "Written by `python -m stages.report` (DVC stage `report`); do not edit. "
             "How to run the pipeline and what each part does: the [project README](../README.md).", ""]  # fmt: skip
    files = {GLANCE: GLANCE_TEXT, **FILES} if at_a_glance else FILES
    lines += [f"- [`{name}`]({name}): {text}" for name, text in files.items()]
    lines += ["", "Not written by this stage but by the studies pipeline ([`studies/README.md`](../studies/README.md)): "
              "[`selection/README.md`](selection/README.md), how the "
              "protocol's budgets were chosen on source-domain devel data (`python -m studies.select_report`); "
              "[`budget_study.md`](budget_study.md), what longer training, longer adaptation and better "
              "word vectors are worth on the target devel splits (`python -m studies.budget_study`, then `python -m studies.budget_report`); "
              "[`cap_horizon.csv`](cap_horizon.csv), four K = 10 meta-training runs (two of them capped) under a cap and "
              "schedule of 1,500 and of 3,000, adapted on source devel (the selection data) and target devel (analysis only; `python -m studies.cap_check`), read in "
              "[docs/reproducing.md](../docs/reproducing.md#runs-that-stop-at-the-cap)."]  # fmt: skip
    lines += ["", "## Inputs", ""]
    if len(scores):
        shots = ", ".join(map(str, sorted(scores["shots"].unique())))
        lines.append(f"scores.csv: {len(scores):,} rows; {scores['method'].nunique()} methods, "
                     f"{scores['corpus'].nunique()} corpora, K = {shots}.")  # fmt: skip
    else:
        lines.append("scores.csv has no rows: the result tables are empty.")
    lines += [""] + [f"- {note}" for note in notes] if notes else []
    return "\n".join(lines) + "\n"


def read_logs(
    metatrain_dir: Path, held_outs: Sequence[str], method: str, shots: Sequence[int]
) -> dict[tuple[str, int], pd.DataFrame]:
    """The tasks of every ``<held_out>-<method>/logs/K<k>.jsonl.gz`` present, by (held-out, K)."""
    return {
        (held_out, k): read_tasks(log_path(metatrain_dir, held_out, method, k), held_out, method, k)
        for held_out in held_outs
        for k in shots
        if log_path(metatrain_dir, held_out, method, k).is_file()
    }


def build_report(
    scores: pd.DataFrame,
    out_dir: str | Path,
    metatrain_dir: str | Path,
    processed_dir: str | Path,
    corpora: Sequence[str],
    domains: Mapping[str, Sequence[str]],
    shots: Sequence[int],
    config: ReportConfig = ReportConfig(),
    at_a_glance: bool = False,
) -> list[Path]:
    """Write every report file under ``out_dir``; return their paths.

    Args:
        scores: rows of ``reports/scores.csv`` (:func:`hgda_core.report.tables.read_scores`).
        out_dir: the report folder (``reports``).
        metatrain_dir: the meta-training runs (``reports/metatrain``).
        processed_dir: the processed corpora that resolve logged sentences.
        corpora: the corpora configured (params ``corpora``).
        domains: domain → corpora (params ``domains``); its keys are the held-out domains.
        shots: the K values configured (params ``shots``).
        config: the ``report`` params.
        at_a_glance: also write :data:`GLANCE` (Overall F1 per method and K beside the
            paper's) and list it first in the index.
    """
    out, metatrain_dir = Path(out_dir), Path(metatrain_dir)
    order = corpus_order(corpora, domains)
    written: list[Path] = []

    def put(name: str, text: str) -> None:
        write_text(out / name, text)
        written.append(out / name)

    # Tables 3-5, significance, the paper's figures.
    significance = significance_table(scores, "f1", alpha=config.alpha)
    models = model_labels(scores)
    runs = find_runs(metatrain_dir, domains)
    budget = meta_budget_notes(metatrain_dir, runs, ENCODER_LABELS.get(metatrain_dir.name, metatrain_dir.name))
    for metric, (paper_table, _) in METRICS.items():
        table = results_table(scores, metric, order, shots)
        table.notes += budget
        md, tex = render_results(table, models, significance, config.alpha, config.show_std)
        stem = paper_table.lower().replace(" ", "")
        put(f"{stem}.md", md)
        put(f"{stem}.tex", tex)
    md, tex = render_significance(significance, config.alpha)
    put("significance.md", md)
    put("significance.tex", tex)
    write_csv(out / "significance.csv", significance)
    comparison = paper_vs_ours(scores, load_paper_results(), order)
    put("paper_vs_ours.md", render_paper_vs_ours(comparison))
    put("paper_vs_ours.tex", render_paper_vs_ours_latex(comparison))
    write_csv(out / "paper_vs_ours.csv", comparison)
    written += [out / "significance.csv", out / "paper_vs_ours.csv"]
    if at_a_glance:
        shown = [c for c in order if c in set(scores["corpus"])]
        glance = results_at_a_glance(scores, load_paper_results(), shown)
        put(GLANCE, render_results_at_a_glance(glance, shown, models))

    # Table 1 and the hardness plot from the logs of one method; the curves of every run.
    method, store = config.table1_method, SentenceStore(processed_dir)
    logs = read_logs(metatrain_dir, list(domains), method, shots)
    first: dict[str, pd.DataFrame] = {}
    for held_out, k in logs:  # in shots order: keep the first K of each held-out domain
        first.setdefault(held_out, logs[(held_out, k)])
    notes = [f"No {method} meta-training log for held-out domain {h}." for h in domains if h not in first]
    md, tex = render_table1(pd.concat(first.values(), ignore_index=True) if first else pd.DataFrame(), store, method)
    put("table1.md", md)
    put("table1.tex", tex)
    points = [hardness_points(tasks, store) for tasks in logs.values()]
    present = list(dict.fromkeys(scores["corpus"]))
    plots = out / "plots"
    panels = [c for c in order if c in present] + [c for c in present if c not in order]
    plot_f1_vs_k(scores, plots / "f1_vs_k.png", panels, paper=load_paper_results())
    plot_hardness(pd.concat(points, ignore_index=True) if points else pd.DataFrame(columns=["entity_share"]),
                  plots / "hardness_vs_entities.png", method)  # fmt: skip
    curves = read_curves(metatrain_dir, runs)
    notes.append(f"Meta-training runs found: {len(runs)} (held-out domain × method), {len(curves):,} curve points.")
    notes += budget
    plot_curves(curves, plots / "metatrain_curves.png")
    written += [plots / n for n in ("f1_vs_k.png", "hardness_vs_entities.png", "metatrain_curves.png")]
    put("README.md", render_index(scores, notes, at_a_glance))
    log.info("wrote %d report files under %s", len(written), out)
    return written
