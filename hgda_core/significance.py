"""Significance of the paired differences between a method and a baseline (paper Table 3).

The paper states that "the HGDA-variants outperform their baselines with a p-value
< 0.05" without giving the test.  Here every adaptation repetition ``r`` uses the same K
sentences for every method at a given corpus and K, so the scores are *paired* by
repetition: for one cell (encoder, K, corpus) and one comparison (method vs baseline)
we test the differences ``d_r = score_method(r) − score_baseline(r)`` with

* the paired t-test (:func:`scipy.stats.ttest_rel`, two-sided), and
* the Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`, two-sided; zero
  differences dropped, scipy's default ``zero_method="wilcox"``),

then correct each test's p-values for multiplicity with Holm–Bonferroni across the
cells (corpus × K) of one comparison (:func:`holm`).  A cell is *significant* when its
Holm-corrected t-test p-value is below α and the mean difference is positive.

Conventions for degenerate cells, which both tests leave undefined:

* all differences zero (identical scores): no evidence of a difference, ``t = 0`` and
  both p-values are 1.0;
* fewer than two pairs: statistic and p-values are NaN, and the cell is left out of
  the Holm family (it is never significant).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

METHODS: tuple[str, ...] = ("hgda", "hgda_nes")
"""The paper's methods, tested against each baseline."""

BASELINES: tuple[str, ...] = ("metaner", "transfer", "scratch", "bert_finetune")
"""The baselines, each compared with each method under the same encoder."""

COLUMNS: tuple[str, ...] = (
    "metric", "encoder", "method", "baseline", "shots", "corpus", "n", "mean_diff",
    "t", "p_t", "p_t_holm", "p_wilcoxon", "p_wilcoxon_holm", "significant",
)  # fmt: skip
"""Columns of :func:`significance_table`, in order."""


@dataclass(frozen=True)
class PairedTest:
    """The tests of one cell: ``n`` pairs, mean of ``method − baseline``, t and p-values."""

    n: int
    mean_diff: float
    t: float
    p_t: float
    p_wilcoxon: float


def paired_tests(method: pd.Series, baseline: pd.Series) -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of ``method`` against ``baseline``.

    Args:
        method: scores indexed by repetition.
        baseline: scores indexed by repetition; only repetitions present (and not NaN)
            in both series are paired.

    Returns:
        The number of pairs, the mean difference and the two-sided test results (see
        the module docstring for all-zero differences and fewer than two pairs).
    """
    pairs = pd.concat({"m": method, "b": baseline}, axis=1, join="inner").dropna()
    a, b = pairs["m"].to_numpy(float), pairs["b"].to_numpy(float)
    n = len(pairs)
    diff = a - b
    mean_diff = float(diff.mean()) if n else float("nan")
    if n < 2:
        return PairedTest(n, mean_diff, float("nan"), float("nan"), float("nan"))
    if not diff.any():
        return PairedTest(n, 0.0, 0.0, 1.0, 1.0)
    t_result = stats.ttest_rel(a, b)
    w_result = stats.wilcoxon(a, b)
    return PairedTest(n, mean_diff, float(t_result.statistic), float(t_result.pvalue), float(w_result.pvalue))


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the order given (Holm, 1979).

    With the m p-values sorted ascending, ``p_(1) ≤ … ≤ p_(m)``, the adjusted value of
    the i-th is ``max_{j ≤ i} min(1, (m − j + 1) · p_(j))``; rejecting where the adjusted
    value is below α controls the family-wise error rate at α.  NaN entries are not
    part of the family (m counts the others) and stay NaN.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for j, index in enumerate(order, start=1):
        running = max(running, min(1.0, (m - j + 1) * p[index]))
        out[index] = running
    return out


def significance_table(
    scores: pd.DataFrame,
    metric: str = "f1",
    methods: Sequence[str] = METHODS,
    baselines: Sequence[str] = BASELINES,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Paired tests of every method against every baseline, per encoder, K and corpus.

    Args:
        scores: rows of ``reports/scores.csv`` (columns ``encoder, method, corpus, shots,
            repetition`` and ``metric``).
        metric: the score column to compare.
        methods: the methods tested.
        baselines: the baselines they are tested against (same encoder, corpus, K).
        alpha: family-wise significance level.

    Returns:
        One row per (encoder, method, baseline, K, corpus) where both were run, with the
        columns of :data:`COLUMNS`; ``p_t_holm`` and ``p_wilcoxon_holm`` are corrected
        across the cells of each (encoder, method, baseline) comparison.
    """
    rows: list[dict] = []
    cells = scores.set_index("repetition").groupby(["encoder", "shots", "corpus"], sort=True)
    for (encoder, shots, corpus), cell in cells:
        by_method = {name: group[metric] for name, group in cell.groupby("method")}
        for method in methods:
            for baseline in baselines:
                if method not in by_method or baseline not in by_method:
                    continue
                test = paired_tests(by_method[method], by_method[baseline])
                rows.append(
                    {"metric": metric, "encoder": encoder, "method": method, "baseline": baseline,
                     "shots": int(shots), "corpus": corpus, **test.__dict__}
                )
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("p_t_holm", "p_wilcoxon_holm", "significant")])
    family = ["encoder", "method", "baseline"]
    table["p_t_holm"] = table.groupby(family)["p_t"].transform(lambda p: holm(p.to_numpy()))
    table["p_wilcoxon_holm"] = table.groupby(family)["p_wilcoxon"].transform(lambda p: holm(p.to_numpy()))
    table["significant"] = (table["p_t_holm"] < alpha) & (table["mean_diff"] > 0)
    rank = {name: i for i, name in enumerate(["bilstm", *methods, *baselines, *scores["corpus"].unique()])}
    table = table.sort_values(
        ["encoder", "method", "baseline", "shots", "corpus"],
        key=lambda s: s if s.name == "shots" else s.map(lambda v: (rank.get(v, len(rank)), v)),
        kind="stable",
    )
    return table[list(COLUMNS)].reset_index(drop=True)
