"""Render ``reports/budget_study.md`` and its plot from ``reports/budget_study.csv``
(stage ``budget_report`` of ``studies/dvc.yaml``).

Each factor of :mod:`studies.budget_study` becomes one table: the mean F1 (the mean over
draws per corpus, then over the held-out domain's corpora) per held-out domain, K and
method, one column per level of the factor.  The plot draws mean F1 against meta-training
iterations and against fine-tuning steps.  The ``oracle`` table reads *test* labels and is
marked as such: it sizes how much picking the step on the test split inflates F1, and is
never a result.

Run from the repository root: ``python -m studies.budget_report``.
"""

from __future__ import annotations

import logging

import pandas as pd

from hgda_core.io import setup_logging, write_text
from hgda_core.report.plots import _grid, colour, placeholder, save
from hgda_core.report.tables import method_label
from hgda_core.tables import to_markdown
from stages.common import ROOT, effective_params, load_params

log = logging.getLogger("studies.budget_report")
CSV, MD, PNG = ROOT / "reports" / "budget_study.csv", ROOT / "reports" / "budget_study.md", ROOT / "reports" / "plots" / "budget_study.png"
CAPTIONS = {
    "meta_iterations": "F1 on the target devel splits against meta-training iterations: the snapshots "
                       "it<n> of each run (meta.snapshots) and final, its early-stopped checkpoint (the best "
                       "weights), each adapted with the protocol's budget.",
    "steps": "F1 on the target devel splits against fine-tuning steps (the final checkpoints; the rate "
             "of the protocol).",
    "sampling": "F1 on the target devel splits with draws of any K train sentences (uniform) against "
                "draws of K sentences with an entity (with_entity).",
    "vectors": "F1 on the target devel splits with the fastText vectors against random vectors of the "
               "same shape (transfer and hgda meta-trained on each; scratch trained on each).",
    "oracle": "ORACLE — reads the TEST labels, never a result: test F1 at the protocol's last step "
              "against the test F1 of the best step of the same fine-tuning run (scored every few steps).",
}  # fmt: skip
# The K values each factor is designed for (the study's plan), to say what the rows lack.
DESIGN = {"meta_iterations": (10, 50), "steps": (10, 50), "sampling": (5, 10), "vectors": (10,), "oracle": (10,)}


def missing(rows: pd.DataFrame, min_domains: int = 2) -> list[str]:
    """The parts of :data:`DESIGN` the rows lack: a (factor, K) with fewer than
    ``min_domains`` held-out domains that have every method of the factor (the methods
    its rows hold anywhere), naming the domains that have only some of them."""
    gaps = []
    for factor, shots in DESIGN.items():
        expected, found = methods_by_domain(rows[rows["factor"] == factor])
        for k in shots:
            at_k = {d: methods for (d, shot), methods in found.items() if shot == k}
            complete = [d for d, methods in at_k.items() if methods >= expected]
            partial = [f"{d}: {len(methods)} of {len(expected)} methods"
                       for d, methods in at_k.items() if not methods >= expected]  # fmt: skip
            if len(complete) < min_domains or partial:
                gaps.append(f"{factor} at K = {k} ({len(complete)} of {min_domains} held-out domains"
                            + "".join(f"; {p}" for p in partial) + ")")  # fmt: skip
    return gaps


def coverage(group: pd.DataFrame) -> list[str]:
    """The (held-out domain, K) pairs of one factor's rows, each marked with the share of the
    factor's methods it has when it lacks some: ``Drug K = 50 (2 of 4 methods)``."""
    expected, found = methods_by_domain(group)
    return sorted(f"{d} K = {k}" + ("" if methods >= expected else f" ({len(methods)} of {len(expected)} methods)")
                  for (d, k), methods in found.items())  # fmt: skip


def methods_by_domain(of_factor: pd.DataFrame) -> tuple[set[str], dict[tuple[str, int], set[str]]]:
    """One factor's methods (those its rows hold anywhere) and, per (held-out domain, K) in
    domain order, the methods it has rows of."""
    has_method = "method" in of_factor
    expected = set(of_factor["method"]) if has_method else set()
    found = {(d, int(k)): set(g["method"]) if has_method else set()
             for (d, k), g in of_factor.groupby(["held_out", of_factor["shots"].astype(int)])}  # fmt: skip
    return expected, found


def level_order(levels: pd.Series) -> list[str]:
    """Levels in a readable order: numeric ones by value, ``it<n>`` by n, ``final`` last."""
    def key(level: str) -> tuple[int, float, str]:
        text = str(level)
        if text.startswith("it") and text[2:].isdigit():
            return (0, float(text[2:]), text)
        if text.replace(".", "", 1).isdigit():
            return (0, float(text), text)
        return (1, 0.0, text) if text != "final" else (2, 0.0, text)
    return sorted(levels.astype(str).unique(), key=key)


def factor_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean F1 per (held-out, K, method) × level: over draws per corpus, then over corpora."""
    per_corpus = rows.groupby(["held_out", "shots", "method", "level", "corpus"])["f1"].mean()
    mean = per_corpus.groupby(level=[0, 1, 2, 3]).mean().unstack("level")
    mean = mean[level_order(rows["level"])].round(4).reset_index()
    mean["method"] = [method_label(m, "bilstm") for m in mean["method"]]
    draws = rows.groupby(["held_out", "shots", "method"])["repetition"].nunique().max()
    mean.insert(3, "draws", int(draws))
    return mean


def contrast(factor: str, levels: list[str], protocol_steps: int) -> tuple[str, str] | None:
    """The (higher, lower) levels whose difference summarises a factor: final − it0,
    the longest fine-tuning − the protocol's, with_entity − uniform, fastText − random,
    ORACLE − the protocol's step; None when a level is missing."""
    if factor == "steps":
        pair = (levels[-1], str(protocol_steps))
    else:
        pair = {"meta_iterations": ("final", "it0"), "sampling": ("with_entity", "uniform"),
                "vectors": ("fastText", "random"),
                "oracle": ("ORACLE: best step on test", "protocol (last step)")}[factor]  # fmt: skip
    return pair if pair[0] != pair[1] and all(level in levels for level in pair) else None


def factor_summary(factor: str, table: pd.DataFrame, protocol_steps: int) -> list[str]:
    """One line per (held-out, K) of a :func:`factor_table`: the contrast's difference,
    mean over methods, then per method."""
    levels = [c for c in table.columns if c not in ("held_out", "shots", "method", "draws")]
    pair = contrast(factor, levels, protocol_steps)
    if pair is None:
        return []
    high, low = pair
    lines = [f"Difference {high} − {low} (mean over methods; per method):"]
    for (held_out, k), group in table.groupby(["held_out", "shots"], sort=False):
        diff = group[high] - group[low]
        per_method = ", ".join(f"{m} {d:+.3f}" for m, d in zip(group["method"], diff))
        lines.append(f"- {held_out} K = {k}: {diff.mean():+.3f} ({per_method})")
    return lines


def plot(rows: pd.DataFrame) -> None:
    panels = [(f, key, group) for f in ("meta_iterations", "steps") for key, group in
              rows[rows["factor"] == f].groupby(["held_out", "shots"])]  # fmt: skip
    if not panels:
        placeholder(PNG, "Budget study", "No meta_iterations or steps rows yet: run python -m studies.budget_study.")
        return
    fig, axes = _grid(len(panels), 2, (4.8, 3.3))
    for ax, (factor, (held_out, k), group) in zip(axes, panels):
        for method, points in group.groupby("method"):
            if factor == "meta_iterations":
                x = pd.to_numeric(points["meta_iterations"], errors="coerce")
            else:
                x = points["steps"].astype(float)
            f1 = points.assign(x=x).groupby(["x", "corpus"])["f1"].mean().groupby(level=0).mean()
            ax.plot(f1.index, f1.values, marker="o", color=colour(method), label=method_label(method, "bilstm"))
        ax.set_title(f"{held_out} held out, K = {k}")
        ax.set_xlabel("meta-training iterations" if factor == "meta_iterations" else "fine-tuning steps")
        ax.set_ylabel("mean F1, target devel")
        ax.legend(fontsize=7)
    save(fig, PNG)


def main() -> None:
    setup_logging()
    rows = pd.read_csv(CSV, dtype={"level": str}) if CSV.is_file() else pd.DataFrame(columns=["factor"])
    protocol_steps = int(effective_params(load_params())["adapt"]["steps"])
    parts = ["# Budget study: what longer training, longer adaptation and other protocols are worth", "",
             "An analysis of the protocol, never a selection: the defaults were fixed beforehand on "
             "source-domain devel data ([selection/README.md](selection/README.md)). Unless marked "
             "ORACLE, every number is F1 on the **devel splits of the held-out domain's corpora**, which "
             "no stage reads, over the grid's first draws (the same sentences for every method); each "
             "cell is the mean over draws per corpus, then over the domain's corpora. Written by "
             "`python -m studies.budget_report` from `budget_study.csv` (`python -m studies.budget_study`). "
             "Back to the [reports index](README.md).", ""]  # fmt: skip
    gaps = missing(rows) if len(rows) else []
    if gaps:
        design = "; ".join(f"{factor} at K = {', '.join(map(str, shots))}" for factor, shots in DESIGN.items())
        parts += [f"The design ({design}), each for two or more held-out domains and 5 draws. "
                  f"Not covered yet: {'; '.join(gaps)}.", ""]
    covered = {factor: coverage(group) for factor, group in rows.groupby("factor")} if len(rows) else {}
    for factor in CAPTIONS:
        group = rows[rows["factor"] == factor]
        if group.empty:
            parts += [f"## {factor}", "", "Not run yet.", ""]
            continue
        table = factor_table(group)
        parts += [f"## {factor}", "", to_markdown(table, caption=CAPTIONS[factor]
                  + f" Covered: {', '.join(covered[factor])}.", decimals=4), ""]  # fmt: skip
        summary = factor_summary(factor, table, protocol_steps)
        parts += [*summary, ""] if summary else []
    parts += ["![F1 against meta-training iterations and fine-tuning steps](plots/budget_study.png)", ""]
    plot(rows)
    write_text(MD, "\n".join(parts))
    log.info("wrote %s and %s", MD.relative_to(ROOT), PNG.relative_to(ROOT))


if __name__ == "__main__":
    main()
