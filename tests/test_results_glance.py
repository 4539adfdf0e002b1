"""Results at a glance: Overall F1 per method and K beside the paper's, written by the
``report`` stage into ``reports/results_at_a_glance.md`` and linked from the top README.

The expected numbers are computed here by hand from a small scores fixture (two corpora,
two repetitions) and a small transcription of the paper, not by the code under test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from hgda_core.report import GLANCE, build_report
from hgda_core.report.compare import (
    GLANCE_COLUMNS,
    load_paper_results,
    render_results_at_a_glance,
    results_at_a_glance,
)

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ["NCBI-disease", "s800"]
DOMAINS = {"Disease": ["NCBI-disease"], "Species": ["s800"]}

# (encoder, method, corpus, K, repetition, f1)
ROWS = [
    ("bilstm", "hgda", "NCBI-disease", 5, 0, 0.10), ("bilstm", "hgda", "NCBI-disease", 5, 1, 0.30),
    ("bilstm", "hgda", "s800", 5, 0, 0.05), ("bilstm", "hgda", "s800", 5, 1, 0.15),
    ("bilstm", "metaner", "NCBI-disease", 5, 0, 0.20), ("bilstm", "metaner", "NCBI-disease", 5, 1, 0.40),
    ("bilstm", "metaner", "s800", 5, 0, 0.00), ("bilstm", "metaner", "s800", 5, 1, 0.10),
    ("bilstm", "hgda", "NCBI-disease", 10, 0, 0.50), ("bilstm", "hgda", "NCBI-disease", 10, 1, 0.70),
    ("bilstm", "hgda", "s800", 10, 0, 0.25), ("bilstm", "hgda", "s800", 10, 1, 0.35),
    ("bilstm", "scratch", "NCBI-disease", 10, 0, 0.12), ("bilstm", "scratch", "NCBI-disease", 10, 1, 0.18),
    ("bilstm", "scratch", "s800", 10, 0, 0.02), ("bilstm", "scratch", "s800", 10, 1, 0.04),
    # metaner at K = 10 lacks s800: no Overall for it.
    ("bilstm", "metaner", "NCBI-disease", 10, 0, 0.45),
]  # fmt: skip

# Hand-computed: the mean over the two corpora of the mean over the two repetitions.
OURS = {
    (5, "hgda"): ((0.10 + 0.30) / 2 + (0.05 + 0.15) / 2) / 2,  # 0.15
    (5, "metaner"): ((0.20 + 0.40) / 2 + (0.00 + 0.10) / 2) / 2,  # 0.175
    (10, "hgda"): ((0.50 + 0.70) / 2 + (0.25 + 0.35) / 2) / 2,  # 0.45
    (10, "scratch"): ((0.12 + 0.18) / 2 + (0.02 + 0.04) / 2) / 2,  # 0.09
}

PAPER = pd.DataFrame(
    [
        ("f1", 5, "hgda", "bilstm", "NCBI-disease", 0.40), ("f1", 5, "hgda", "bilstm", "s800", 0.20),
        ("f1", 5, "hgda", "bilstm", "BC2GM", 0.90), ("f1", 5, "hgda", "bilstm", "Overall", 0.50),
        ("f1", 5, "metaner", "bilstm", "NCBI-disease", 0.30), ("f1", 5, "metaner", "bilstm", "s800", 0.10),
        ("f1", 10, "hgda", "bilstm", "NCBI-disease", 0.60),  # no s800: no paper mean
        ("precision", 5, "hgda", "bilstm", "NCBI-disease", 0.99), ("precision", 5, "hgda", "bilstm", "s800", 0.99),
    ],
    columns=["metric", "shots", "method", "encoder", "corpus", "value"],
)  # fmt: skip


@pytest.fixture()
def scores() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS, columns=["encoder", "method", "corpus", "shots", "repetition", "f1"])
    frame["model"] = "BiLSTM-CRF (test)"
    frame["domain"] = frame["corpus"].map({c: d for d, cs in DOMAINS.items() for c in cs})
    frame["precision"] = frame["recall"] = frame["f1"]
    return frame


def test_ours_is_the_mean_over_corpora_of_the_mean_over_repetitions(scores: pd.DataFrame) -> None:
    glance = results_at_a_glance(scores, PAPER, CORPORA)
    assert tuple(glance.columns) == GLANCE_COLUMNS
    got = {(int(r.shots), r.method): r.ours for r in glance.itertuples() if not pd.isna(r.ours)}
    assert got == pytest.approx(OURS)
    missing = glance[(glance["shots"] == 10) & (glance["method"] == "metaner")]
    assert len(missing) == 1 and pd.isna(missing["ours"].iloc[0])
    # The paper's row order within each K: baselines, then ours.
    assert list(zip(glance["shots"], glance["method"])) == [
        (5, "metaner"), (5, "hgda"), (10, "metaner"), (10, "scratch"), (10, "hgda")
    ]  # fmt: skip


def test_paper_is_its_mean_over_the_same_corpora(scores: pd.DataFrame) -> None:
    glance = results_at_a_glance(scores, PAPER, CORPORA).set_index(["shots", "method"])
    assert glance.at[(5, "hgda"), "paper"] == pytest.approx((0.40 + 0.20) / 2)  # not BC2GM, not Overall
    assert glance.at[(5, "hgda"), "paper_overall"] == pytest.approx(0.50)
    assert glance.at[(5, "metaner"), "paper"] == pytest.approx((0.30 + 0.10) / 2)
    assert pd.isna(glance.at[(10, "hgda"), "paper"])  # the paper lacks s800 at K = 10
    assert pd.isna(glance.at[(10, "scratch"), "paper"])  # not in the paper at all


def test_rendered_table_shows_the_computed_numbers(scores: pd.DataFrame) -> None:
    md = render_results_at_a_glance(results_at_a_glance(scores, PAPER, CORPORA), CORPORA, {"bilstm": "BiLSTM"})
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in md.splitlines() if line.startswith("| ") and not line.startswith("| Method")}  # fmt: skip
    assert rows["HGDA"] == ["0.1500", "0.3000", "0.4500", "—"]
    assert rows["MetaNER"] == ["0.1750", "0.2000", "—", "—"]
    assert rows["Scratch"] == ["—", "—", "0.0900", "—"]
    assert "| Method | K = 5, ours | K = 5, paper | K = 10, ours | K = 10, paper |" in md
    assert "mean over 2 corpora: NCBI-disease, s800" in md


def test_empty_scores_give_a_message() -> None:
    empty = pd.DataFrame(columns=["encoder", "method", "corpus", "shots", "repetition", "f1"])
    md = render_results_at_a_glance(results_at_a_glance(empty, PAPER, CORPORA), CORPORA, {})
    assert "No results" in md


def test_build_report_writes_it_and_the_index_links_it_and_the_top_readme(tmp_path: Path, scores: pd.DataFrame) -> None:
    out = tmp_path / "reports"
    written = build_report(scores, out, tmp_path / "none", tmp_path / "none", CORPORA, DOMAINS, [5, 10],
                           at_a_glance=True)  # fmt: skip
    assert out / GLANCE in written
    md = (out / GLANCE).read_text(encoding="utf-8")
    assert "| HGDA | 0.1500 |" in md
    index = (out / "README.md").read_text(encoding="utf-8")
    assert f"]({GLANCE})" in index
    assert "](../README.md)" in index
    # Without the option, build_report writes what it always did.
    other = tmp_path / "plain"
    assert other / GLANCE not in build_report(scores, other, tmp_path / "none", tmp_path / "none", CORPORA, DOMAINS,
                                              [5, 10])  # fmt: skip
    assert not (other / GLANCE).exists()


def test_committed_glance_matches_the_committed_scores() -> None:
    """reports/results_at_a_glance.md is what the report stage makes of reports/scores.csv."""
    from hgda_core.report import corpus_order
    from hgda_core.report.tables import model_labels, read_scores
    from stages.common import load_params

    committed = ROOT / "reports" / GLANCE
    if not committed.is_file():
        pytest.fail(f"{committed.relative_to(ROOT)} is missing: run `python -m stages.report`")
    params = load_params()
    scores = read_scores(ROOT / "reports" / "scores.csv")
    shown = [c for c in corpus_order(params["corpora"], params["domains"]) if c in set(scores["corpus"])]
    expected = render_results_at_a_glance(results_at_a_glance(scores, load_paper_results(), shown), shown,
                                          model_labels(scores))  # fmt: skip
    assert committed.read_text(encoding="utf-8") == expected
    # And the top README links it.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"\]\(reports/{re.escape(GLANCE)}\)", readme), "README.md does not link the glance table"
