"""Corpus statistics against hand counts, and the rendering of Table 2."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hgda_core.data import Corpus, read_corpus
from hgda_core.stats import compute_stats, stats_to_dict
from hgda_core.tables import (
    latex_escape,
    load_paper_table2,
    max_mask,
    render_table2,
    table2,
    to_latex,
    to_markdown,
)

MIRROR = Path(__file__).parent / "resources" / "mirror"

# Counted by hand from tests/resources/mirror (see the files; 33 + 18 tokens in all).
# sentences, tokens, unique tokens, mentions, mean mention length, % with NE, repairs
TOY_DISEASE = {
    "train": (3, 17, 14, 3, 4 / 3, 200 / 3, 0),
    "devel": (2, 9, 8, 2, 1.0, 100.0, 1),  # "No cancer/I" → B: one repair
    "test": (1, 7, 7, 2, 2.0, 100.0, 0),
    "total": (6, 33, 24, 7, 10 / 7, 500 / 6, 1),
}
TOY_SPECIES = {
    "train": (2, 10, 9, 3, 4 / 3, 100.0, 0),
    "devel": (1, 4, 4, 0, 0.0, 0.0, 0),
    "test": (1, 4, 4, 2, 1.0, 100.0, 1),  # I-Species at the sentence start → B
    "total": (4, 18, 12, 5, 1.2, 75.0, 1),  # "mice" and "Mice" are two tokens
}
POOLED_TOTAL = (10, 51, 33, 12, 16 / 12, 80.0, 2)  # shared tokens: "and", "were", "."
METRIC_ORDER = (
    "sentences", "tokens", "unique_tokens", "mentions",
    "mean_mention_length", "pct_with_entity", "repairs",
)  # fmt: skip


def toy_corpora(disease: str = "Disease", species: str = "Species") -> dict[str, Corpus]:
    return {
        "toy-disease": read_corpus(MIRROR / "toy-disease", disease),
        "toy_species": read_corpus(MIRROR / "toy_species", species),
    }


def row(stats: pd.DataFrame, scope: str, name: str, split: str) -> tuple:
    return tuple(stats.loc[(scope, name, split), list(METRIC_ORDER)])


@pytest.mark.parametrize("split", ["train", "devel", "test", "total"])
def test_corpus_stats_equal_hand_counts(split: str) -> None:
    stats = compute_stats(toy_corpora())
    assert row(stats, "corpus", "toy-disease", split) == pytest.approx(TOY_DISEASE[split])
    assert row(stats, "corpus", "toy_species", split) == pytest.approx(TOY_SPECIES[split])


def test_domain_pools_its_corpora() -> None:
    stats = compute_stats(toy_corpora(disease="Pooled", species="Pooled"))
    assert row(stats, "domain", "Pooled", "total") == pytest.approx(POOLED_TOTAL)
    assert list(stats.xs("domain").index.unique("name")) == ["Pooled"]


def test_one_domain_per_corpus_domain_in_order() -> None:
    stats = compute_stats(toy_corpora())
    assert list(stats.xs("domain").index.unique("name")) == ["Disease", "Species"]
    assert row(stats, "domain", "Species", "total") == pytest.approx(TOY_SPECIES["total"])


def test_stats_to_dict_is_plain_json() -> None:
    out = stats_to_dict(compute_stats(toy_corpora()))
    total = out["corpora"]["toy-disease"]["total"]
    assert total == {
        "sentences": 6, "tokens": 33, "unique_tokens": 24, "mentions": 7,
        "mean_mention_length": 1.43, "pct_with_entity": 83.33, "repairs": 1,
    }  # fmt: skip
    assert type(total["sentences"]) is int and type(total["pct_with_entity"]) is float
    assert set(out["domains"]) == {"Disease", "Species"}
    assert set(out["corpora"]["toy_species"]) == {"train", "devel", "test", "total"}


# --------------------------------------------------------------------------- tables


def toy_paper() -> pd.DataFrame:
    """A paper table that knows toy-disease (and BC4CHEMD), not toy_species."""
    return pd.DataFrame(
        {
            "corpus": ["toy-disease", "BC4CHEMD"],
            "entity_type": ["Disease", "Drug"],
            "unique_tokens": [25, 114837],
            "pct_sentences_with_nes": [80, 48],
            "note": ["", ""],
        }
    ).astype({"unique_tokens": "Int64", "pct_sentences_with_nes": "Int64"})


def test_table2_frame_has_ours_beside_paper() -> None:
    df = table2(compute_stats(toy_corpora()), toy_paper())
    assert list(df["Corpus"]) == ["toy-disease", "toy_species"]
    first = df.iloc[0]
    assert first["No. unique tokens (ours)"] == 24 and first["No. unique tokens (paper)"] == 25
    assert first["% sentences with NEs (ours)"] == pytest.approx(83.333, abs=1e-3)
    assert first["% sentences with NEs (paper)"] == 80
    assert pd.isna(df.iloc[1]["No. unique tokens (paper)"])


def test_table2_markdown_rows_and_not_run_note() -> None:
    markdown, _ = render_table2(compute_stats(toy_corpora()), toy_paper())
    assert "| toy-disease | Disease | 6 | 7 | 24 | 25 | 83.3 | 80 |" in markdown
    assert "| toy_species | Species | 4 | 5 | 12 | — | 75.0 | — |" in markdown
    assert "| :--- | :--- | ---: | ---: | ---: | ---: | ---: | ---: |" in markdown
    assert "Not run: BC4CHEMD (paper: 114,837 unique tokens, 48 % sentences with NEs)." in markdown


def test_table2_latex_escapes_and_booktabs() -> None:
    _, latex = render_table2(compute_stats(toy_corpora()), toy_paper())
    assert r"\begin{tabular}{llrrrrrr}" in latex
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert r"toy\_species & Species & 4 & 5 & 12 & -- & 75.0 & -- \\" in latex
    assert r"\% sentences with NEs (ours)" in latex
    assert r"48 \% sentences with NEs" in latex
    assert "toy_species" not in latex  # every underscore escaped


def test_bc4chemd_row_only_when_run() -> None:
    corpora = {"BC4CHEMD": read_corpus(MIRROR / "toy-disease", "Drug", "BC4CHEMD")}
    markdown, _ = render_table2(compute_stats(corpora), load_paper_table2())
    assert "| BC4CHEMD | Drug | 6 | 7 | 24 | 114,837 | 83.3 | 48 |" in markdown
    assert "Not run: NCBI-disease" in markdown and "BC4CHEMD (paper" not in markdown


def test_paper_table2_transcription() -> None:
    paper = load_paper_table2().set_index("corpus")
    assert list(paper.index) == [
        "NCBI-disease", "BC5CDR-disease", "BC5CDR-chem", "BC4CHEMD",
        "JNLPBA", "BC2GM", "linnaeus", "s800",
    ]  # fmt: skip
    assert paper.loc["s800", "unique_tokens"] == 20526  # printed "205, 26"
    assert paper.loc["NCBI-disease", "pct_sentences_with_nes"] == 55


def test_latex_escape_special_characters() -> None:
    assert latex_escape(r"a_b 50% R&D #1 $x$ {y} ~ ^ \ ") == (
        r"a\_b 50\% R\&D \#1 \$x\$ \{y\} \textasciitilde{} \textasciicircum{} \textbackslash{} "
    )


def test_generic_tables_with_bold_maxima() -> None:
    df = pd.DataFrame({"Method": ["a_1", "b|2"], "F1": [61.25, 70.5], "n": [1000, 20]})
    bold = max_mask(df, ["F1"])
    markdown = to_markdown(df, bold=bold, caption="F1 & more", decimals={"F1": 2})
    assert "| a_1 | 61.25 | 1,000 |" in markdown
    assert r"| b\|2 | **70.50** | 20 |" in markdown
    assert markdown.startswith("F1 & more\n\n| Method | F1 | n |")
    latex = to_latex(df, bold=bold, caption="F1 & more", label="tab:f1", decimals=2)
    assert r"a\_1 & 61.25 & 1,000 \\" in latex
    assert r"b|2 & \textbf{70.50} & 20 \\" in latex
    assert r"\caption{F1 \& more}" in latex and r"\label{tab:f1}" in latex


def test_max_mask_per_row_and_ties() -> None:
    df = pd.DataFrame({"x": [1.0, 3.0], "y": [2.0, 3.0]})
    assert max_mask(df, axis=1).values.tolist() == [[False, True], [True, True]]
    assert max_mask(df).values.tolist() == [[False, False], [True, True]]
