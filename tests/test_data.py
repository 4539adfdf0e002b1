"""The corpus reader: tag parsing, IOB2 repair, one clear error per bad input, storage."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hgda_core.data import (
    SPLITS,
    Corpus,
    CorpusFormatError,
    CorpusSplit,
    Sentence,
    load_corpus,
    read_corpus,
    read_split,
    save_corpus,
)

MIRROR = Path(__file__).parent / "resources" / "mirror"


def write(path: Path, text: str | bytes) -> Path:
    """Write a small test file (bytes verbatim, text as UTF-8)."""
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- parsing


def test_plain_tags_parse(tmp_path: Path) -> None:
    split = read_split(write(tmp_path / "t.tsv", "Colon\tB\ncancer\tI\n.\tO\n\nNo\tO\n\n"))
    assert [s.tokens for s in split] == [("Colon", "cancer", "."), ("No",)]
    assert [s.tags for s in split] == [("B", "I", "O"), ("O",)]
    assert split.repairs == 0


def test_typed_tags_parse(tmp_path: Path) -> None:
    split = read_split(write(tmp_path / "t.tsv", "E.\tB-Species\ncoli\tI-Species\ngrew\tO\n"))
    assert split.sentences == [Sentence(("E.", "coli", "grew"), ("B-Species", "I-Species", "O"))]
    assert split.sentences[0].mention_lengths() == [2]


def test_crlf_bom_and_missing_final_blank_line_are_accepted(tmp_path: Path) -> None:
    split = read_split(write(tmp_path / "t.tsv", "\ufeffa\tB\r\nb\tO\r\n\r\nc\tO"))
    assert [s.tokens for s in split] == [("a", "b"), ("c",)]


def test_fixture_corpus_reads(tmp_path: Path) -> None:
    corpus = read_corpus(MIRROR / "toy-disease", "Disease")
    assert corpus.name == "toy-disease" and corpus.domain == "Disease"
    assert [len(corpus[s]) for s in SPLITS] == [3, 2, 1]


# --------------------------------------------------------------------------- IOB2 repair


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("a\tO\nb\tI\n", ("O", "B")),  # I after O
        ("a\tI\nb\tO\n", ("B", "O")),  # I at the sentence start
        ("a\tB-Gene\nb\tI-Species\n", ("B-Gene", "B-Species")),  # I after another type
    ],
    ids=["after-O", "sentence-start", "other-type"],
)
def test_orphan_i_is_repaired_and_counted(tmp_path: Path, lines: str, expected: tuple) -> None:
    split = read_split(write(tmp_path / "t.tsv", lines))
    assert split.sentences[0].tags == expected
    assert split.repairs == 1


def test_repairs_are_counted_over_sentences(tmp_path: Path) -> None:
    text = "a\tI\nb\tI\n\nc\tO\nd\tI\ne\tO\nf\tI\n\ng\tB\nh\tI\n"
    split = read_split(write(tmp_path / "t.tsv", text))
    assert split.repairs == 3  # sentence start; after O twice; the valid B I is untouched
    assert [s.n_mentions for s in split] == [1, 2, 1]


# --------------------------------------------------------------------------- bad input


def assert_error(path: Path, line: int | None, expectation: str) -> None:
    """Reading ``path`` fails with a message naming it, the line and the expectation."""
    with pytest.raises(CorpusFormatError) as info:
        read_split(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    if line is not None:
        assert f"{path}:{line}:" in message
    assert expectation in message


def test_line_without_tab_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "train.tsv", "a\tO\nb O\n")
    assert_error(path, 2, "expected 2 tab-separated columns")


def test_extra_columns_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "train.tsv", "a\tO\n\nb\tO\tX\n")
    assert_error(path, 3, "expected 2 tab-separated columns (token<TAB>tag), found 3 columns")


def test_unknown_tag_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "train.tsv", "a\tO\nb\tS-Gene\n")
    assert_error(path, 2, "expected O, B, I, B-<type> or I-<type>")


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "train.tsv", "\n\n")
    assert_error(path, 1, "empty file; expected token<TAB>tag lines")


def test_non_utf8_bytes_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "train.tsv", b"a\tO\n\nb\xe9\tO\n")
    assert_error(path, 3, "expected a UTF-8 text file")


def test_missing_split_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "toy"
    folder.mkdir()
    write(folder / "train.tsv", "a\tO\n")
    write(folder / "test.tsv", "a\tO\n")
    with pytest.raises(CorpusFormatError) as info:
        read_corpus(folder, "Disease")
    assert str(folder) in str(info.value)
    assert "devel.tsv" in str(info.value)
    assert "expected train.tsv, devel.tsv, test.tsv" in str(info.value)


# --------------------------------------------------------------------------- storage


def synthetic_corpus(n_sentences: int, length: int = 25) -> Corpus:
    """A corpus of ``n_sentences`` sentences per split, one mention each."""
    tags = ("B", "I") + ("O",) * (length - 2)
    sentences = [
        Sentence(tuple(f"w{i}_{j}" for j in range(length)), tags) for i in range(n_sentences)
    ]
    return Corpus("synthetic", "Disease", {s: CorpusSplit(list(sentences), 2) for s in SPLITS})


def test_save_load_round_trip(tmp_path: Path) -> None:
    corpus = read_corpus(MIRROR / "toy_species", "Species")
    save_corpus(corpus, tmp_path / "c.pkl")
    assert load_corpus(tmp_path / "c.pkl") == corpus


def test_processed_load_is_fast(tmp_path: Path) -> None:
    corpus = synthetic_corpus(8_000)  # 3 x 200,000 tokens: larger than NCBI-disease
    save_corpus(corpus, tmp_path / "c.pkl")
    start = time.perf_counter()
    loaded = load_corpus(tmp_path / "c.pkl")
    assert time.perf_counter() - start < 1.0
    assert [len(loaded[s]) for s in SPLITS] == [8_000] * 3
