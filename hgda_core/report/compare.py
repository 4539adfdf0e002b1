"""Comparisons for the report: the significance tests rendered, our figures beside the
paper's Tables 3–5 (transcribed in ``resources/paper_results.csv``), and the one-table
summary *results at a glance* (Overall F1 per method and K beside the paper's).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hgda_core.report.tables import METRICS, method_label, row_key, tex_words
from hgda_core.tables import to_latex, to_markdown

PAPER_RESULTS_PATH = Path(__file__).resolve().parents[1] / "resources" / "paper_results.csv"
"""The paper's Tables 3 (F1, with Overall), 4 (precision) and 5 (recall), in long form."""

PAPER_VS_OURS_COLUMNS = ("metric", "shots", "method", "encoder", "corpus", "paper", "ours", "diff", "note")
"""Columns of :func:`paper_vs_ours`, in order."""


# --------------------------------------------------------------------------- significance


def format_p(p: float) -> str:
    """A p-value for a table: 4 decimals, or 2 significant digits below 0.001."""
    if pd.isna(p):
        return "—"
    return f"{p:.2g}" if p < 1e-3 else f"{p:.4f}"


def comparison_label(method: str, baseline: str, encoder: str) -> str:
    return f"{method_label(method, encoder)} vs {method_label(baseline, encoder)}"


def significance_summary(significance: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per comparison (encoder, method vs baseline) and K: ``significant cells/cells tested``,
    followed by ``(n worse)`` where the *baseline* is significantly better in n cells (its
    Holm-corrected t-test p < ``alpha`` with a negative mean difference), so that a
    comparison a method loses is not read as a tie."""
    rows = []
    for (encoder, method, baseline), group in significance.groupby(["encoder", "method", "baseline"], sort=False):
        row = {"Comparison": comparison_label(method, baseline, encoder)}
        for k, cells in group.groupby("shots"):
            worse = int(((cells["p_t_holm"] < alpha) & (cells["mean_diff"] < 0)).sum())
            row[f"K = {k}"] = f"{int(cells['significant'].sum())}/{len(cells)}" + (f" ({worse} worse)" if worse else "")
        rows.append(row)
    return pd.DataFrame(rows).fillna("—")


def render_significance(significance: pd.DataFrame, alpha: float) -> tuple[str, str]:
    """(Markdown: the summary and every cell, LaTeX: the summary) of :func:`significance_table`."""
    how = (
        "Paired over repetitions (the same adaptation sentences for both methods): paired t-test (t) and "
        "Wilcoxon signed-rank test (W), two-sided; p-values Holm-corrected across the (corpus, K) cells of each "
        f"comparison; significant: Holm-corrected t-test p < {alpha:g} and mean difference (method − baseline) > 0."
    )
    if significance.empty:
        message = "No comparison could be tested: scores.csv lacks HGDA / HGDA-NEs or their baselines."
        return f"# Significance (F1)\n\n{message}\n", f"% {message}\n"
    sig = significance
    cells = pd.DataFrame({
        "Comparison": [comparison_label(r.method, r.baseline, r.encoder) for r in sig.itertuples()],
        "K": sig["shots"].astype(int), "Corpus": sig["corpus"], "n": sig["n"].astype(int),
        "Mean diff.": sig["mean_diff"], "t": sig["t"],
        "p (t)": sig["p_t"].map(format_p), "p (t, Holm)": sig["p_t_holm"].map(format_p),
        "p (W)": sig["p_wilcoxon"].map(format_p), "p (W, Holm)": sig["p_wilcoxon_holm"].map(format_p),
        "Significant": [
            "yes" if r.significant else "baseline better" if r.p_t_holm < alpha and r.mean_diff < 0 else ""
            for r in sig.itertuples()
        ],
    })  # fmt: skip
    caption = (
        "Significant cells (F1) per comparison and K: significant/tested; (n worse): n cells where the "
        "baseline is significantly better (Holm-corrected t-test p < " + f"{alpha:g}" + ", mean difference < 0). "
        + how
    )
    summary = significance_summary(sig, alpha)
    md = "# Significance (F1)\n\n" + to_markdown(summary, caption=caption)
    md += "\n## Every cell\n\n" + to_markdown(cells, decimals={"Mean diff.": 4, "t": 2})
    return md, to_latex(summary, caption=tex_words(caption), label="tab:significance")


# --------------------------------------------------------------------------- paper vs ours


def load_paper_results(path: str | Path = PAPER_RESULTS_PATH) -> pd.DataFrame:
    """The paper's Tables 3–5: ``metric, shots, method, encoder, corpus, value``."""
    return pd.read_csv(path, dtype={"metric": str, "method": str, "encoder": str, "corpus": str})


def _overall_rows(ours: pd.DataFrame, paper: pd.DataFrame, corpora: Sequence[str]) -> list[dict]:
    """Overall rows where our run has every one of ``corpora`` (see :func:`paper_vs_ours`)."""
    paper_corpora = list(paper.loc[paper["corpus"] != "Overall", "corpus"].unique())
    lacking = [c for c in paper_corpora if c not in corpora]
    rows = []
    keys = ["metric", "shots", "method", "encoder"]
    for key, theirs in paper.groupby(keys):
        mine = ours[(ours[keys] == pd.Series(key, index=keys)).all(axis=1)].set_index("corpus")["ours"]
        if "Overall" not in set(theirs["corpus"]) or not set(corpora) <= set(mine.index):
            continue
        base = dict(zip(keys, key), ours=mine.loc[list(corpora)].mean())
        note = f"ours over {len(corpora)} of the paper's {len(paper_corpora)} corpora (no {', '.join(lacking)})"
        overall = theirs.set_index("corpus")["value"]
        rows.append({**base, "corpus": "Overall", "paper": overall["Overall"], "note": note if lacking else ""})
        if lacking:
            rows.append({**base, "corpus": "Overall (same corpora)", "paper": overall.loc[list(corpora)].mean(),
                         "note": f"the paper's values averaged over the same {len(corpora)} corpora"})  # fmt: skip
    return rows


def paper_vs_ours(scores: pd.DataFrame, paper: pd.DataFrame, corpora: Sequence[str] = ()) -> pd.DataFrame:
    """Every cell of the paper's Tables 3–5 that ``scores`` has: the paper's value, ours, ours − paper.

    Cells match on metric, K, method, encoder and corpus.  An ``Overall`` row (the paper
    has one for F1) is added where our run has every corpus of ``corpora`` that the paper
    has (default: all paper corpora in ``scores``); when those are fewer than the
    paper's, its note says so and a row ``Overall (same corpora)`` sets ours beside the
    paper's mean over the same corpora.

    Returns:
        The columns of :data:`PAPER_VS_OURS_COLUMNS`, in the paper's row order.
    """
    if scores.empty:
        return pd.DataFrame(columns=list(PAPER_VS_OURS_COLUMNS))
    keys = ["shots", "method", "encoder", "corpus"]
    ours = scores.groupby(keys)[list(METRICS)].mean().rename_axis(columns="metric").stack().rename("ours")
    ours = ours.reset_index()
    rows = ours.merge(paper.rename(columns={"value": "paper"}), on=["metric", *keys], how="inner").assign(note="")
    paper_corpora = set(paper["corpus"])
    wanted = [c for c in (corpora or dict.fromkeys(scores["corpus"])) if c in paper_corpora]
    extra = _overall_rows(ours, paper, wanted) if wanted else []
    rows = pd.concat([rows, pd.DataFrame(extra)], ignore_index=True) if extra else rows
    rows["diff"] = rows["ours"] - rows["paper"]
    columns = [*wanted, *sorted(paper_corpora - set(wanted)), "Overall", "Overall (same corpora)"]
    order = sorted(
        rows.index,
        key=lambda i: (list(METRICS).index(rows.at[i, "metric"]), rows.at[i, "shots"],
                       row_key(rows.at[i, "method"], rows.at[i, "encoder"]), columns.index(rows.at[i, "corpus"])),
    )  # fmt: skip
    return rows.loc[order, list(PAPER_VS_OURS_COLUMNS)].reset_index(drop=True)


def _paper_summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per metric and method over the per-corpus cells: their number, the mean ours − paper
    and how many cells are ours higher."""
    cells = comparison[~comparison["corpus"].str.startswith("Overall")]
    summary = cells.groupby(["metric", "method", "encoder"], sort=False)["diff"].agg(
        cells="size", mean_diff="mean", ours_higher=lambda d: int((d > 0).sum())
    ).reset_index()  # fmt: skip
    return pd.DataFrame({
        "Metric": summary["metric"].map(lambda m: METRICS[m][1]),
        "Method": [method_label(m, e) for m, e in zip(summary["method"], summary["encoder"])],
        "Cells": summary["cells"], "Mean diff.": summary["mean_diff"], "Ours higher": summary["ours_higher"],
    })  # fmt: skip


def render_paper_vs_ours_latex(comparison: pd.DataFrame) -> str:
    """LaTeX (booktabs): the F1 cells as "ours / paper" per K, method and corpus (the
    Overall over the same corpora last), then the summary of :func:`render_paper_vs_ours`."""
    if comparison.empty:
        return "% No cell in common: scores.csv has no rows matching the paper's tables.\n"
    f1 = comparison[comparison["metric"] == "f1"]
    same = "Overall (same corpora)" if (f1["corpus"] == "Overall (same corpora)").any() else "Overall"
    columns = [c for c in dict.fromkeys(f1["corpus"]) if not c.startswith("Overall")]
    columns += [same] if (f1["corpus"] == same).any() else []
    rows, rules, last_k = [], [], None
    for (k, method, encoder), group in f1.groupby(["shots", "method", "encoder"], sort=False):
        if last_k is not None and k != last_k:
            rules.append(len(rows))
        by_corpus = group.set_index("corpus")
        row = {"K": str(int(k)) if k != last_k else "", "Method": method_label(method, encoder)}
        for corpus in columns:
            row["Overall" if corpus == same else corpus] = (
                f"{by_corpus.at[corpus, 'ours']:.3f} / {by_corpus.at[corpus, 'paper']:.3f}"
                if corpus in by_corpus.index else "--")
        rows.append(row)
        last_k = k
    caption = ("F1, ours / the paper's, per K, method and corpus (the cells of the paper's Table 3 that our "
               "scores.csv has). Overall: the mean over the corpora shown" + (
                   ", the paper's values averaged over the same corpora." if same != "Overall" else "."))
    table = to_latex(pd.DataFrame(rows), caption=tex_words(caption), label="tab:paper-vs-ours-f1",
                     rules_before=rules)
    summary = to_latex(_paper_summary(comparison), caption=tex_words(
        "The paper's Tables 3-5 against ours: per metric and method, the per-corpus cells compared, the mean "
        "difference ours - paper and the cells where ours is higher."), label="tab:paper-vs-ours", decimals=4)
    return table + "\n" + summary


def render_paper_vs_ours(comparison: pd.DataFrame) -> str:
    """Markdown: a summary per metric and method, then every compared cell, per metric."""
    lines = [
        "# The paper's Tables 3–5 against ours",
        "",
        "Cells of the paper's tables that scores.csv has (same metric, K, method, encoder and corpus); "
        "diff = ours − paper. Starred rows use the BERT encoder: the paper's is BioBERT-based, ours is the "
        "model named in table3.md.",
    ]
    if comparison.empty:
        return "\n".join([*lines, "", "No cell in common: scores.csv has no rows matching the paper's tables."]) + "\n"
    summary = _paper_summary(comparison)
    lines += ["", to_markdown(summary, caption="## Summary over the per-corpus cells", decimals=4)]
    for metric, group in comparison.groupby("metric", sort=False):
        frame = pd.DataFrame({
            "K": group["shots"].astype(int),
            "Method": [method_label(m, e) for m, e in zip(group["method"], group["encoder"])],
            "Corpus": group["corpus"], "Paper": group["paper"], "Ours": group["ours"], "Diff.": group["diff"],
            "Note": group["note"],
        })  # fmt: skip
        if not frame["Note"].astype(bool).any():
            frame = frame.drop(columns="Note")
        caption = f"## {METRICS[metric][1]} (the paper's {METRICS[metric][0]})"
        lines.append(to_markdown(frame, caption=caption, decimals=4))
    return "\n".join(lines)


# --------------------------------------------------------------------------- results at a glance

GLANCE_COLUMNS = ("shots", "method", "encoder", "ours", "paper", "paper_overall")
"""Columns of :func:`results_at_a_glance`, in order."""


def results_at_a_glance(scores: pd.DataFrame, paper: pd.DataFrame, corpora: Sequence[str]) -> pd.DataFrame:
    """Overall F1 per (K, method, encoder): ours beside the paper's, over the same corpora.

    ``ours`` is the Overall of Table 3: the mean over ``corpora`` of the mean F1 over the
    repetitions, present only where ``scores`` has every one of ``corpora`` for that
    (K, method, encoder). ``paper`` is the mean of the paper's per-corpus F1 over the same
    corpora (NaN where the paper lacks one of them or the row); ``paper_overall`` is the
    Overall printed in the paper (over all of its corpora).

    Returns:
        The columns of :data:`GLANCE_COLUMNS`, one row per (K, method, encoder) of
        ``scores``, in the paper's row order within each K.
    """
    if scores.empty or not corpora:
        return pd.DataFrame(columns=list(GLANCE_COLUMNS))
    corpora = list(corpora)
    means = scores.groupby(["shots", "method", "encoder", "corpus"])["f1"].mean()
    f1 = paper[paper["metric"] == "f1"].set_index(["shots", "method", "encoder", "corpus"])["value"].sort_index()
    rows = []
    for (k, method, encoder), cells in means.groupby(level=["shots", "method", "encoder"]):
        mine = cells.droplevel(["shots", "method", "encoder"])
        try:
            theirs = f1.loc[(k, method, encoder)]
        except KeyError:
            theirs = pd.Series(dtype=float)
        rows.append({
            "shots": int(k), "method": method, "encoder": encoder,
            "ours": mine.loc[corpora].mean() if set(corpora) <= set(mine.index) else float("nan"),
            "paper": theirs.loc[corpora].mean() if set(corpora) <= set(theirs.index) else float("nan"),
            "paper_overall": theirs.get("Overall", float("nan")),
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=list(GLANCE_COLUMNS))
    order = sorted(
        frame.index, key=lambda i: (frame.at[i, "shots"], row_key(frame.at[i, "method"], frame.at[i, "encoder"]))
    )
    return frame.loc[order].reset_index(drop=True)


def render_results_at_a_glance(glance: pd.DataFrame, corpora: Sequence[str], models: dict[str, str]) -> str:
    """Markdown: one row per method, for each K our Overall F1 beside the paper's."""
    title = "# Results at a glance: Overall F1, ours beside the paper's"
    if glance.empty:
        return f"{title}\n\nNo results: scores.csv has no rows.\n"
    shots = sorted(glance["shots"].unique())
    keys = list(dict.fromkeys(zip(glance["method"], glance["encoder"])))
    keys.sort(key=lambda key: row_key(*key))
    indexed = glance.set_index(["method", "encoder", "shots"])
    frame = pd.DataFrame({"Method": [method_label(m, e) for m, e in keys]})
    for k in shots:
        frame[f"K = {k}, ours"] = [indexed["ours"].get((m, e, k), float("nan")) for m, e in keys]
        frame[f"K = {k}, paper"] = [indexed["paper"].get((m, e, k), float("nan")) for m, e in keys]
    names = ", ".join(f"{enc}: {label}" for enc, label in models.items())
    caption = (
        f"Overall F1 (the mean over {len(corpora)} corpora: {', '.join(corpora)}) of the sequence-encoder "
        "adaptation, each corpus's F1 the mean over the repetitions; the Overall column of table3.md. "
        "Paper: the mean of the paper's Table 3 F1 over the same corpora (the paper's printed Overall, over all "
        "of its corpora, is in paper_vs_ours.md). Rows marked * use the BERT encoder (the paper's: BioBERT)"
        + (f"; models: {names}" if names else "") + "; their protocol is stated in table3.md. "
        "—: not run, or not in the paper. Every cell and the significance tests: table3.md, significance.md."
    )
    return f"{title}\n\n" + to_markdown(frame, caption=caption, decimals=4) + "\n"
