"""The report's figures (PNG), each written atomically.

Figures are plain :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas:
no pyplot, no global backend switch, nothing left open.  A figure with no data is still
written, as a panel that says what is missing, so that the files a DVC stage declares
always exist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from hgda_core.io import atomic_write
from hgda_core.report.tables import method_label, row_key

DPI = 110
METHOD_COLOURS = {
    "metaner": "tab:blue", "transfer": "tab:orange", "scratch": "tab:gray",
    "bert_finetune": "tab:green", "hgda": "tab:red", "hgda_nes": "tab:purple",
    "hgda_uniform": "tab:pink", "hgda_grl": "tab:olive",
}  # fmt: skip
"""One colour per method in every figure; BERT-encoder lines are dashed."""


def colour(method: str) -> str:
    return METHOD_COLOURS.get(method, "tab:brown")


def style(encoder: str) -> str:
    return "--" if encoder == "bert" else "-"


def save(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` as PNG through the Agg canvas, atomically."""
    FigureCanvasAgg(fig)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=DPI, bbox_inches="tight")


def placeholder(path: str | Path, title: str, message: str) -> None:
    """A figure that only says why there is nothing to plot."""
    fig = Figure(figsize=(6, 2.5), layout="constrained")
    ax = fig.subplots()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    save(fig, path)


def _grid(n: int, ncols: int, size: tuple[float, float]) -> tuple[Figure, list]:
    """A constrained-layout grid of ``n`` panels, ``ncols`` wide (empty cells hidden)."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _metric_title(metric: str) -> str:
    return metric.upper() if metric == "f1" else metric.capitalize()


PAPER_MARKER = "D"
"""The paper's values in :func:`f1_vs_k_figure`: hollow diamonds in the method's colour."""


def f1_vs_k_figure(scores: pd.DataFrame, corpora: Sequence[str], metric: str = "f1",
                   paper: pd.DataFrame | None = None) -> Figure:
    """One panel per corpus: mean ``metric`` against K, one line per method (± std over
    repetitions); with ``paper`` (:func:`hgda_core.report.compare.load_paper_results`),
    the paper's value of each shown method, encoder, corpus and K as a hollow diamond
    beside ours (same colour), a reference marker without a line."""
    cells = scores.groupby(["corpus", "method", "encoder", "shots"])[metric].agg(["mean", "std"]).reset_index()
    lines = sorted({(m, e) for m, e in zip(cells["method"], cells["encoder"])}, key=lambda x: row_key(*x))
    shots = sorted(cells["shots"].unique())
    reference = paper[paper["metric"] == metric] if paper is not None else None
    fig, axes = _grid(len(corpora), 4, (4.0, 3.2))
    drawn_paper = False
    for ax, corpus in zip(axes, corpora):
        for i, (method, encoder) in enumerate(lines):
            line = cells[(cells["corpus"] == corpus) & (cells["method"] == method) & (cells["encoder"] == encoder)]
            if line.empty:
                continue
            dodge = 1 + 0.025 * (i - (len(lines) - 1) / 2)  # keeps the error bars of one K apart
            ax.errorbar(line["shots"] * dodge, line["mean"], yerr=line["std"].fillna(0), marker="o", markersize=4,
                        capsize=2, color=colour(method), linestyle=style(encoder))  # fmt: skip
            if reference is None:
                continue
            ref = reference[(reference["corpus"] == corpus) & (reference["method"] == method)
                            & (reference["encoder"] == encoder) & reference["shots"].isin(line["shots"])]
            if not ref.empty:
                ax.plot(ref["shots"] * dodge, ref["value"], linestyle="none", marker=PAPER_MARKER, markersize=5,
                        markerfacecolor="none", color=colour(method), gid=f"paper:{method}:{encoder}")
                drawn_paper = True
        ax.set_xscale("log")
        ax.set_xticks(shots, [str(k) for k in shots])
        ax.minorticks_off()
        ax.set_title(corpus)
        ax.set_xlabel("K (adaptation sentences)")
        ax.set_ylabel(f"mean {metric.upper() if metric == 'f1' else metric}")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colour(m), marker="o", linestyle=style(e)) for m, e in lines]
    labels = [method_label(*x) for x in lines]
    if drawn_paper:
        handles.append(Line2D([], [], color="black", marker=PAPER_MARKER, markerfacecolor="none", linestyle="none"))
        labels.append("the paper's value")
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(handles), 9))
    title = f"{_metric_title(metric)} against K"
    paper_note = "; hollow diamonds: the paper's values" if drawn_paper else ""
    fig.suptitle(f"{title} per corpus (error bars: std over repetitions; * and dashed: BERT encoder{paper_note})")
    return fig


def plot_f1_vs_k(scores: pd.DataFrame, path: str | Path, corpora: Sequence[str], metric: str = "f1",
                 paper: pd.DataFrame | None = None) -> None:
    """Write :func:`f1_vs_k_figure` (a placeholder when ``scores`` is empty)."""
    if scores.empty:
        placeholder(path, f"{_metric_title(metric)} against K", "No rows in scores.csv.")
        return
    save(f1_vs_k_figure(scores, corpora, metric, paper), path)


def plot_hardness(points: pd.DataFrame, path: str | Path, method: str = "hgda") -> None:
    """γ^θ of each logged task against the share of entity tokens in its sentences, by task domain."""
    title = f"Task hardness against entity share ({method_label(method, 'bilstm')})"
    points = points.dropna(subset=["entity_share"])
    if points.empty:
        placeholder(path, title, f"No {method} meta-training log (or its corpora) found.")
        return
    shots = sorted(points["shots"].unique())
    domains = sorted(points["domain"].unique())
    colours = {d: matplotlib.colormaps["tab10"](i % 10) for i, d in enumerate(domains)}
    fig, axes = _grid(len(shots), 2, (5.0, 3.8))
    for ax, k in zip(axes, shots):
        for domain in domains:
            sub = points[(points["shots"] == k) & (points["domain"] == domain)]
            ax.scatter(sub["entity_share"], sub["gamma_theta"], s=8, alpha=0.4, color=colours[domain], label=domain)
        ax.set_title(f"K = {k}")
        ax.set_xlabel("share of entity tokens (support + query)")
        ax.set_ylabel(r"hardness $\gamma^\theta$ (eq. 2)")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colours[d], marker="o", linestyle="") for d in domains]
    fig.legend(handles, domains, title="task domain", loc="outside right center")
    fig.suptitle(f"{title}: every task of every iteration, all held-out domains")
    save(fig, path)


def plot_curves(curves: pd.DataFrame, path: str | Path) -> None:
    """Meta-validation loss against iteration: a panel per K × held-out domain, a line per method."""
    title = "Meta-validation loss"
    curves = curves.dropna(subset=["val_loss"])
    if curves.empty:
        placeholder(path, title, "No meta-training curve.csv found.")
        return
    held_outs = list(dict.fromkeys(curves["held_out"]))
    shots = sorted(curves["shots"].unique())
    methods = sorted(curves["method"].unique(), key=lambda m: row_key(m, "bilstm"))
    fig, axes = _grid(len(shots) * len(held_outs), len(held_outs), (4.0, 3.0))
    for ax, (k, held_out) in zip(axes, [(k, h) for k in shots for h in held_outs]):
        for method in methods:
            sub = curves[(curves["shots"] == k) & (curves["held_out"] == held_out) & (curves["method"] == method)]
            if not sub.empty:
                ax.plot(sub["iteration"], sub["val_loss"], marker="o", markersize=3, color=colour(method))
        ax.set_title(f"held out: {held_out}, K = {k}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("iteration")
        ax.set_ylabel("meta-validation loss")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colour(m), marker="o") for m in methods]
    fig.legend(handles, [method_label(m, "bilstm") for m in methods], loc="outside lower center", ncol=len(methods))
    fig.suptitle(f"{title} on the fixed source-domain devel tasks, per held-out domain (columns) and K (rows)")
    save(fig, path)
