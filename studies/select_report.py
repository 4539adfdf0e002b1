"""Render the selection evidence: ``reports/selection/README.md`` and its two plots
(stage ``select_report`` of ``studies/dvc.yaml``).

Reads ``reports/selection/meta_curves.csv`` (:mod:`studies.select_meta`) and
``reports/selection/adapt_budget.csv`` (:mod:`studies.select_lr` with ``--steps``), both
measured on SOURCE-domain devel data only, and writes the summary tables, the budget the
selection rule picks per K (:func:`hgda_core.report.selection.choose_budget`) and the
plots ``meta_curves.png`` and ``adapt_budget.png`` beside them.

Run from the repository root: ``python -m studies.select_report``.
"""

from __future__ import annotations

import logging

import pandas as pd

from hgda_core.io import setup_logging, write_text
from hgda_core.report.selection import budget_summary, choose_budget, meta_summary, plot_budget, plot_meta_curves
from hgda_core.tables import to_markdown
from stages.common import ROOT

log = logging.getLogger("studies.select_report")
FOLDER = ROOT / "reports" / "selection"


def _read(name: str) -> pd.DataFrame:
    path = FOLDER / name
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()


def main() -> None:
    setup_logging()
    curves, budget, settings = _read("meta_curves.csv"), _read("adapt_budget.csv"), _read("adapt_meta_settings.csv")
    parts = ["# How the protocol's budgets were chosen (source-domain devel data only)", "",
             "Every number here comes from the *source* domains of the held-out domain named in each "
             "row: meta-validation tasks from their devel splits, fine-tuning draws from their train "
             "splits scored on their devel splits. The held-out domain and every test split are never "
             "read. Back to the [reports index](../README.md).", ""]  # fmt: skip
    if not curves.empty:
        summary = meta_summary(curves)
        parts += ["## Meta-training step size", "",
                  to_markdown(summary, caption="Meta-validation loss (mean L^lab on the query sets of fixed "
                              "source-devel tasks after the inner step) per candidate setting "
                              "(loss reduction - base rate of eq. 3 - schedule horizon), each run for the "
                              "same iterations without early stopping. iteration_within_5pct: the first "
                              "evaluation within 5 % of the best loss any setting of the run reached.",
                              decimals=3),
                  "", "![meta-validation curves](meta_curves.png)", ""]  # fmt: skip
    if not settings.empty:
        settings["setting"] = settings["checkpoint"].str.extract(r"K\d+-(.+)\.pt$", expand=False)
        per_corpus = settings.groupby(["setting", "shots", "steps", "head_default_lr", "corpus"])["f1"].mean()
        table = per_corpus.unstack("corpus").round(4)
        table["mean"] = per_corpus.groupby(level=[0, 1, 2, 3]).mean().round(4)
        parts += [to_markdown(table.reset_index(), caption="The adapted F1 of the candidates' checkpoints (the best "
                              "weights of each curve above): source-corpus devel F1, mean over draws, after "
                              "fine-tuning with the budget chosen below.", decimals=4), ""]  # fmt: skip
    plot_meta_curves(curves, FOLDER / "meta_curves.png")
    if not budget.empty:
        summary = budget_summary(budget)
        chosen = choose_budget(summary)
        parts += ["## Fine-tuning budget", "",
                  to_markdown(summary, caption="Mean devel F1 of the source corpora (the mean over draws per "
                              "corpus, then over corpora) after adapting the meta-trained checkpoint with a "
                              "fresh decoder: per K, steps and default rate (eq. 3 scales it by sqrt(K/32)).", decimals=4),
                  "", to_markdown(chosen, caption="The rule's choice per K: the highest mean devel F1; among "
                                  "candidates within 0.005 of it, the fewest steps, then the lower rate.", decimals=4),
                  "", "![devel F1 against steps](adapt_budget.png)", ""]  # fmt: skip
    plot_budget(budget, FOLDER / "adapt_budget.png")
    write_text(FOLDER / "README.md", "\n".join(parts))
    log.info("wrote %s and its plots", (FOLDER / "README.md").relative_to(ROOT))


if __name__ == "__main__":
    main()
