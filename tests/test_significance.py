"""Paired tests against scipy and hand computations; Holm's correction on a worked example."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hgda_core.report.tables import read_scores
from hgda_core.significance import COLUMNS, holm, paired_tests, significance_table

SCORES = Path(__file__).parent / "resources" / "report" / "scores.csv"


def series(values, index=None) -> pd.Series:
    return pd.Series(values, index=range(len(values)) if index is None else index, dtype=float)


def test_paired_tests_equal_scipy_on_known_samples() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.2, 0.8, 12), rng.uniform(0.2, 0.8, 12)
    test = paired_tests(series(a), series(b))
    t_ref, w_ref = stats.ttest_rel(a, b), stats.wilcoxon(a, b)
    assert test.n == 12
    assert test.mean_diff == pytest.approx(np.mean(a - b))
    assert test.t == pytest.approx(t_ref.statistic)
    assert test.p_t == pytest.approx(t_ref.pvalue)
    assert test.p_wilcoxon == pytest.approx(w_ref.pvalue)


def test_paired_t_test_by_hand() -> None:
    # d = (2, 6, 2, 4, 5) / 100: mean 0.038, sample variance 3.2e-4, standard error
    # sqrt(3.2e-4 / 5) = 0.008, so t = 0.038 / 0.008 = 4.75 on 4 degrees of freedom.
    method = series([0.52, 0.61, 0.49, 0.58, 0.55])
    baseline = series([0.50, 0.55, 0.47, 0.54, 0.50])
    test = paired_tests(method, baseline)
    assert test.mean_diff == pytest.approx(0.038)
    assert test.t == pytest.approx(4.75)
    assert test.p_t == pytest.approx(2 * stats.t.sf(4.75, df=4))


def test_wilcoxon_by_hand() -> None:
    # Five positive differences of distinct sizes: W- = 0, and under H0 each of the
    # 2^5 sign patterns is equally likely, so the two-sided exact p is 2 / 32.
    method = series([0.11, 0.22, 0.33, 0.44, 0.55])
    baseline = series([0.10, 0.20, 0.30, 0.40, 0.50])
    assert paired_tests(method, baseline).p_wilcoxon == pytest.approx(2 / 32)


def test_wilcoxon_with_zero_and_tied_differences_by_hand() -> None:
    # d = (0, 0, .25, -.25, .5, .5, .75), as when both methods score F1 = 0 on some draws:
    # the zeros are dropped (zero_method "wilcox"), |d| ranks 1.5, 1.5, 3.5, 3.5, 5 and
    # W- = 1.5.  Of the 2^5 equally likely sign patterns, W- <= 1.5 in 3 (no negative
    # sign, or one of the two 0.25s negative), so the two-sided exact p is 2 * 3 / 32.
    method = series([0.25, 0.25, 0.5, 0.25, 0.75, 0.75, 1.0])
    baseline = series([0.25, 0.25, 0.25, 0.5, 0.25, 0.25, 0.25])
    test = paired_tests(method, baseline)
    assert test.n == 7 and test.mean_diff == pytest.approx(1.75 / 7)
    assert test.p_wilcoxon == pytest.approx(6 / 32)


def test_all_zero_differences_give_p_one() -> None:
    test = paired_tests(series([0.0, 0.0, 0.3]), series([0.0, 0.0, 0.3]))
    assert (test.n, test.mean_diff, test.t, test.p_t, test.p_wilcoxon) == (3, 0.0, 0.0, 1.0, 1.0)


def test_pairs_by_repetition_index_not_by_position() -> None:
    method = series([0.5, 0.7, 0.6, 0.9], index=[3, 1, 2, 7])
    baseline = series([0.4, 0.5, 0.6, 0.1], index=[1, 2, 3, 4])
    test = paired_tests(method, baseline)
    # Common repetitions 1, 2, 3: differences 0.7-0.4, 0.6-0.5, 0.5-0.6.
    diffs = np.array([0.3, 0.1, -0.1])
    assert test.n == 3
    assert test.mean_diff == pytest.approx(diffs.mean())
    assert test.p_t == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue)


def test_all_zero_differences_give_p_one() -> None:
    same = series([0.3, 0.4, 0.5, 0.45])
    test = paired_tests(same, same.copy())
    assert (test.n, test.mean_diff, test.t, test.p_t, test.p_wilcoxon) == (4, 0.0, 0.0, 1.0, 1.0)


def test_fewer_than_two_pairs_is_undefined() -> None:
    test = paired_tests(series([0.5], index=[0]), series([0.4, 0.2], index=[0, 1]))
    assert test.n == 1
    assert math.isnan(test.p_t) and math.isnan(test.p_wilcoxon)


def test_holm_worked_example() -> None:
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → max(0.06, 0.04).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_nan() -> None:
    adjusted = holm([0.5, float("nan"), 0.2])
    assert adjusted[0] == pytest.approx(0.5)
    assert math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.4)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert holm([]).shape == (0,)


def test_significance_table_on_fixture() -> None:
    scores = read_scores(SCORES)
    table = significance_table(scores, alpha=0.05)
    assert list(table.columns) == list(COLUMNS)
    comparisons = set(zip(table["encoder"], table["method"], table["baseline"]))
    # Baselines are compared under the same encoder only; scratch was not run.
    assert comparisons == {
        ("bilstm", "hgda", "metaner"), ("bilstm", "hgda", "transfer"),
        ("bilstm", "hgda_nes", "metaner"), ("bilstm", "hgda_nes", "transfer"),
        ("bert", "hgda", "bert_finetune"),
    }  # fmt: skip
    assert (table["n"] == 5).all()
    for _, family in table.groupby(["encoder", "method", "baseline"]):
        assert len(family) == 6  # 3 corpora × 2 K
        assert family["p_t_holm"].to_numpy() == pytest.approx(holm(family["p_t"].to_numpy()))
        assert family["p_wilcoxon_holm"].to_numpy() == pytest.approx(holm(family["p_wilcoxon"].to_numpy()))
    expected = (table["p_t_holm"] < 0.05) & (table["mean_diff"] > 0)
    assert table["significant"].equals(expected)
    cell = table[(table["method"] == "hgda") & (table["baseline"] == "metaner") & (table["shots"] == 5)]
    tie = cell[cell["corpus"] == "s800"].iloc[0]  # identical scores in the fixture
    assert (tie["mean_diff"], tie["p_t"], tie["significant"]) == (0.0, 1.0, False)
    one = cell[cell["corpus"] == "NCBI-disease"].iloc[0]
    rows = scores[(scores["shots"] == 5) & (scores["corpus"] == "NCBI-disease") & (scores["encoder"] == "bilstm")]
    a = rows[rows["method"] == "hgda"].sort_values("repetition")["f1"]
    b = rows[rows["method"] == "metaner"].sort_values("repetition")["f1"]
    assert one["p_t"] == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_significance_table_of_empty_scores() -> None:
    empty = pd.DataFrame(columns=["encoder", "method", "corpus", "shots", "repetition", "f1"])
    assert significance_table(empty).empty


# --- details found by the mutation run (tests/MUTATION.md) ----------------------------


def test_two_pairs_are_tested_and_one_or_none_are_not() -> None:
    a, b = [0.5, 0.7], [0.4, 0.3]
    two = paired_tests(series(a), series(b))
    assert two.n == 2 and two.t == pytest.approx(stats.ttest_rel(a, b).statistic)
    assert two.p_t == pytest.approx(stats.ttest_rel(a, b).pvalue)
    one = paired_tests(series([0.5]), series([0.2]))
    assert (one.n, one.mean_diff) == (1, pytest.approx(0.3)) and math.isnan(one.t)
    none = paired_tests(series([0.5], index=[0]), series([0.2], index=[1]))
    assert none.n == 0 and all(math.isnan(v) for v in (none.mean_diff, none.t, none.p_t, none.p_wilcoxon))


def test_significant_means_strictly_below_alpha() -> None:
    table = significance_table(read_scores(SCORES), alpha=0.05)
    assert (table["metric"] == "f1").all()
    hit = table[table["significant"]].iloc[0]
    exact = significance_table(read_scores(SCORES), alpha=float(hit["p_t_holm"]))
    same = (exact["encoder"] == hit["encoder"]) & (exact["method"] == hit["method"]) & (
        exact["baseline"] == hit["baseline"]) & (exact["shots"] == hit["shots"]) & (exact["corpus"] == hit["corpus"])
    assert not exact.loc[same, "significant"].item()  # p = α is not below α


def test_rows_follow_the_papers_order_whatever_the_input_order() -> None:
    rng = np.random.default_rng(5)
    rows = [{"encoder": e, "method": m, "corpus": c, "shots": k, "repetition": r, "f1": rng.uniform()}
            for e, ms in (("bert", ("hgda", "bert_finetune")), ("bilstm", ("hgda_nes", "hgda", "transfer", "metaner")))
            for m in ms for c in ("s800", "NCBI-disease") for k in (10, 5) for r in range(3)]  # fmt: skip
    table = significance_table(pd.DataFrame(rows))
    keys = list(zip(table["encoder"], table["method"], table["baseline"], table["shots"], table["corpus"]))
    expected = [(e, m, b, k, c) for e, m, b in (("bilstm", "hgda", "metaner"), ("bilstm", "hgda", "transfer"),
                                                  ("bilstm", "hgda_nes", "metaner"), ("bilstm", "hgda_nes", "transfer"),
                                                  ("bert", "hgda", "bert_finetune"))
                for k in (5, 10) for c in ("s800", "NCBI-disease")]  # corpora in the order the scores list them
    assert keys == expected
