"""The selection report: how the protocol's budgets were chosen on source-domain devel data.

Two kinds of evidence, both from the *source* domains of a held-out domain (never the
held-out domain, never a test split):

* meta-training curves (``reports/selection/meta_curves.csv``, :mod:`studies.select_meta`):
  the meta-validation loss against iterations under each candidate step size;
* fine-tuning budgets (``reports/selection/adapt_budget.csv``, :mod:`studies.select_lr`):
  the devel F1 of a meta-trained checkpoint adapted to the source corpora, per K, number
  of steps and rate.

:func:`meta_summary` and :func:`budget_summary` reduce them to one row per candidate,
:func:`choose_budget` applies the selection rule, and the ``plot_*`` functions draw them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hgda_core.report.plots import _grid, placeholder, save


def meta_summary(curves: pd.DataFrame, within: float = 0.05) -> pd.DataFrame:
    """One row per (held-out, method, K, setting): the first and best meta-validation loss,
    the iteration of the best, and the first iteration within ``within`` (relative) of
    the best loss any setting of the same run reached — "the fewest iterations to the
    best validation loss", robust to the last noisy evaluation."""
    keys = ["held_out", "method", "shots"]
    rows = []
    for run, group in curves.groupby(keys, sort=False):
        target = group["val_loss"].min() * (1 + within)
        for setting, points in group.groupby("setting", sort=False):
            points = points.sort_values("iteration")
            best = points.loc[points["val_loss"].idxmin()]
            reached = points[points["val_loss"] <= target]["iteration"]
            rows.append({**dict(zip(keys, run)), "setting": setting,
                         "iterations": int(points["iteration"].max()),
                         "initial_val_loss": round(float(points["val_loss"].iloc[0]), 3),
                         "best_val_loss": round(float(best["val_loss"]), 3), "best_iteration": int(best["iteration"]),
                         f"iteration_within_{round(within * 100)}pct": int(reached.iloc[0]) if len(reached) else None})  # fmt: skip
    out = pd.DataFrame(rows)
    if not out.empty:
        column = f"iteration_within_{round(within * 100)}pct"
        out[column] = out[column].astype("Int64")
    return out


def budget_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean devel F1 per (K, steps, rate) over the source corpora and draws: first the
    mean over draws per corpus, then over corpora (each corpus counts once)."""
    per_corpus = rows.groupby(["shots", "steps", "head_default_lr", "corpus"])["f1"].mean().reset_index()
    out = per_corpus.groupby(["shots", "steps", "head_default_lr"]).agg(
        devel_f1=("f1", "mean"), corpora=("corpus", "nunique")).reset_index()
    counts = rows.groupby(["shots", "steps", "head_default_lr"])["repetition"].nunique().rename("draws")
    out = out.merge(counts.reset_index(), on=["shots", "steps", "head_default_lr"])
    out["devel_f1"] = out["devel_f1"].round(4)
    return out


def choose_budget(summary: pd.DataFrame, tolerance: float = 0.005) -> pd.DataFrame:
    """Per K, the (steps, rate) of the highest mean devel F1; among candidates within
    ``tolerance`` of it, the fewest steps (the cheaper budget), then the lower rate."""
    chosen = []
    for _, group in summary.groupby("shots"):
        best = group["devel_f1"].max()
        near = group[group["devel_f1"] >= best - tolerance].sort_values(["steps", "head_default_lr"])
        chosen.append(near.iloc[0])
    return pd.DataFrame(chosen).reset_index(drop=True)


def plot_meta_curves(curves: pd.DataFrame, path: str | Path) -> None:
    """Meta-validation loss against iterations, a panel per run, a line per setting."""
    if curves.empty:
        placeholder(path, "Meta-training step size", "No selection curves yet: run python -m studies.select_meta.")
        return
    runs = list(curves.groupby(["held_out", "method", "shots"], sort=False))
    fig, axes = _grid(len(runs), 2, (5.0, 3.4))
    for ax, ((held_out, method, k), group) in zip(axes, runs):
        for setting, points in group.groupby("setting", sort=False):
            points = points.sort_values("iteration")
            ax.plot(points["iteration"], points["val_loss"], marker=".", label=setting)
        ax.set_title(f"{method}, {held_out} held out, K = {k}")
        ax.set_xlabel("meta-training iteration")
        ax.set_ylabel("meta-validation loss (source devel)")
        ax.set_yscale("log")
        ax.legend(fontsize=7, title="reduction-rate-horizon", title_fontsize=7)
    save(fig, path)


def plot_budget(rows: pd.DataFrame, path: str | Path) -> None:
    """Mean source-devel F1 against fine-tuning steps, a panel per K, a line per rate."""
    if rows.empty:
        placeholder(path, "Fine-tuning budget", "No budget rows yet: run python -m studies.select_lr --steps ...")
        return
    summary = budget_summary(rows)
    ks = sorted(summary["shots"].unique())
    fig, axes = _grid(len(ks), 2, (4.6, 3.2))
    for ax, k in zip(axes, ks):
        group = summary[summary["shots"] == k]
        for rate, points in group.groupby("head_default_lr"):
            points = points.sort_values("steps")
            ax.plot(points["steps"], points["devel_f1"], marker="o", label=f"{rate:g}")
        ax.set_title(f"K = {k}")
        ax.set_xscale("log")
        ticks = sorted(group["steps"].unique())
        ax.set_xticks(ticks, [str(int(t)) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("fine-tuning steps")
        ax.set_ylabel("mean F1, source devel")
        ax.legend(fontsize=7, title="default rate", title_fontsize=7)
    save(fig, path)
