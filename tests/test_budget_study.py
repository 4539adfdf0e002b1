"""The budget study's pieces: random vectors of the same shape, rows replaced per factor."""

from __future__ import annotations

import csv

import numpy as np

from hgda_core.embeddings import WordVectors
from studies.budget_study import FIELDS, random_like, write_rows


def test_random_vectors_keep_vocabulary_shape_and_moments_and_zero_pad_unk() -> None:
    rng = np.random.default_rng(0)
    table = np.vstack([np.zeros((2, 8)), rng.normal(0.3, 2.0, (500, 8))]).astype(np.float32)
    vectors = WordVectors(["<pad>", "<unk>", *[f"w{i}" for i in range(500)]], table)
    noise = random_like(vectors, seed=4)
    assert noise.words == vectors.words and noise.vectors.shape == table.shape
    assert not noise.vectors[:2].any()
    assert abs(noise.vectors[2:].mean() - 0.3) < 0.1 and abs(noise.vectors[2:].std() - 2.0) < 0.1
    assert abs(np.corrcoef(noise.vectors[2:].ravel(), table[2:].ravel())[0, 1]) < 0.05  # no information kept
    assert np.array_equal(random_like(vectors, seed=4).vectors, noise.vectors)


def test_rows_of_a_factor_replace_only_that_factors_rows_of_the_methods_run(tmp_path) -> None:
    out = tmp_path / "study.csv"
    row = {f: "" for f in FIELDS}
    first = [{**row, "factor": "steps", "held_out": "Disease", "shots": 10, "method": "hgda", "f1": 0.1},
             {**row, "factor": "steps", "held_out": "Disease", "shots": 10, "method": "transfer", "f1": 0.4},
             {**row, "factor": "oracle", "held_out": "Disease", "shots": 10, "method": "hgda", "f1": 0.2},
             {**row, "factor": "steps", "held_out": "Gene", "shots": 10, "method": "hgda", "f1": 0.3}]
    write_rows(first, set(), out)
    write_rows([{**row, "factor": "steps", "held_out": "Disease", "shots": 10, "method": "hgda", "f1": 0.9}],
               {("steps", "Disease", "10", "hgda")}, out)
    with open(out, newline="") as fh:
        got = [(r["factor"], r["held_out"], r["method"], r["f1"]) for r in csv.DictReader(fh)]
    assert got == [("steps", "Disease", "transfer", "0.4"), ("oracle", "Disease", "hgda", "0.2"),
                   ("steps", "Gene", "hgda", "0.3"), ("steps", "Disease", "hgda", "0.9")]


def test_the_report_table_averages_draws_per_corpus_then_corpora_and_orders_levels() -> None:
    import pandas as pd

    from studies.budget_report import factor_table, level_order

    rows = pd.DataFrame([
        {"held_out": "Disease", "shots": 10, "method": "hgda", "level": level, "corpus": corpus, "repetition": r, "f1": f1}
        for level, values in (("final", (0.2, 0.4, 0.6)), ("it100", (0.1, 0.1, 0.3)), ("it0", (0.0, 0.0, 0.0)))
        for corpus, r, f1 in zip(("a", "a", "b"), (0, 1, 0), values)
    ])  # fmt: skip
    table = factor_table(rows)
    assert list(table.columns) == ["held_out", "shots", "method", "draws", "it0", "it100", "final"]
    assert table.loc[0, "final"] == 0.45  # a: (0.2 + 0.4) / 2 = 0.3, b: 0.6 → 0.45
    assert table.loc[0, "method"] == "HGDA" and table.loc[0, "draws"] == 2
    assert level_order(pd.Series(["200", "50", "100"])) == ["50", "100", "200"]


def test_the_summary_gives_each_factors_contrast_per_method_and_its_mean() -> None:
    import pandas as pd

    from studies.budget_report import factor_summary

    table = pd.DataFrame({"held_out": ["Drug", "Drug"], "shots": [10, 10], "method": ["HGDA", "Transfer"],
                          "draws": [5, 5], "it0": [0.25, 0.24], "it100": [0.28, 0.25], "final": [0.33, 0.28]})
    assert factor_summary("meta_iterations", table, 100) == [
        "Difference final − it0 (mean over methods; per method):",
        "- Drug K = 10: +0.060 (HGDA +0.080, Transfer +0.040)"]
    steps = table.rename(columns={"it0": "50", "it100": "100", "final": "200"})
    assert factor_summary("steps", steps, 100)[1] == "- Drug K = 10: +0.040 (HGDA +0.050, Transfer +0.030)"
    assert factor_summary("steps", steps, 30) == []  # the protocol's level is missing: no contrast


def test_the_report_names_each_part_of_the_design_with_too_few_domains() -> None:
    import pandas as pd

    from studies.budget_report import missing

    rows = pd.DataFrame({"factor": ["meta_iterations", "meta_iterations", "steps", "sampling", "vectors", "oracle"],
                         "held_out": ["Disease", "Drug", "Disease", "Drug", "Drug", "Gene"],
                         "shots": [10, 10, 10, 5, 10, 10]})
    gaps = missing(rows)
    assert "meta_iterations at K = 10 (2 of 2 held-out domains)" not in gaps
    assert gaps[:3] == ["meta_iterations at K = 50 (0 of 2 held-out domains)",
                        "steps at K = 10 (1 of 2 held-out domains)", "steps at K = 50 (0 of 2 held-out domains)"]
    assert "vectors at K = 10 (1 of 2 held-out domains)" in gaps and len(gaps) == 7
    # A domain with only some of the factor's methods does not count, and is named.
    rows = pd.DataFrame({"factor": ["meta_iterations"] * 5, "held_out": ["Disease", "Disease", "Drug", "Drug", "Gene"],
                         "shots": [50, 50, 50, 50, 50], "method": ["hgda", "metaner", "hgda", "metaner", "hgda"]})
    assert missing(rows)[1] == "meta_iterations at K = 50 (2 of 2 held-out domains; Gene: 1 of 2 methods)"
    assert missing(rows.iloc[:3])[1] == "meta_iterations at K = 50 (1 of 2 held-out domains; Drug: 1 of 2 methods)"


def test_the_covered_list_marks_a_domain_with_only_some_of_the_factors_methods() -> None:
    import pandas as pd

    from studies.budget_report import coverage

    rows = pd.DataFrame({"held_out": ["Disease", "Disease", "Drug", "Drug", "Gene"], "shots": [10, 10, 50, 10, 50],
                         "method": ["hgda", "metaner", "hgda", "metaner", "metaner"]})
    assert coverage(rows) == ["Disease K = 10", "Drug K = 10 (1 of 2 methods)", "Drug K = 50 (1 of 2 methods)",
                              "Gene K = 50 (1 of 2 methods)"]
