"""The budget study's pieces: random vectors of the same shape, rows replaced per factor."""

from __future__ import annotations

import csv

import numpy as np

from hgda_core.embeddings import WordVectors
from stages.budget_study import FIELDS, random_like, write_rows


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


def test_rows_of_a_factor_replace_only_that_factors_rows(tmp_path) -> None:
    out = tmp_path / "study.csv"
    row = {f: "" for f in FIELDS}
    first = [{**row, "factor": "steps", "held_out": "Disease", "shots": 10, "f1": 0.1},
             {**row, "factor": "oracle", "held_out": "Disease", "shots": 10, "f1": 0.2},
             {**row, "factor": "steps", "held_out": "Gene", "shots": 10, "f1": 0.3}]
    write_rows(first, set(), out)
    write_rows([{**row, "factor": "steps", "held_out": "Disease", "shots": 10, "f1": 0.9}], {("steps", "Disease", "10")}, out)
    with open(out, newline="") as fh:
        got = [(r["factor"], r["held_out"], r["f1"]) for r in csv.DictReader(fh)]
    assert got == [("oracle", "Disease", "0.2"), ("steps", "Gene", "0.3"), ("steps", "Disease", "0.9")]


def test_the_report_table_averages_draws_per_corpus_then_corpora_and_orders_levels() -> None:
    import pandas as pd

    from stages.budget_report import factor_table, level_order

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
