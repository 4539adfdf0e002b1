"""Raw text → sentences → tokens (hgda_core.text): exact offsets, the corpora's tokenisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from hgda_core.text import (
    TextInputError, decode_text, parse_tokenized, read_text, sentence_spans, split_text, tokenize, tokens_document,
)

RESOURCES = Path(__file__).parent / "resources"
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"

MESSY = (
    "  Mutations in BRCA1/BRCA2 (e.g. c.68_69delAG) cause α-synuclein-like   aggregates;\n"
    "patients got 5 mg/kg cis-platin, 10mg/day and Na+/K+-ATPase rose by 12.5%.\r\n"
    "\n"
    "A naïve β2-adrenergic test (p<0.05) in E. coli   K-12 gave x² = 3 \u00b0C \u2014 fine\u00ad!\n"
    "Dr. Smith's results\u200b: IL-2 \u2192 TNF-\u03b1. \ufeffEnd"
)


def test_every_token_and_sentence_is_its_source_slice() -> None:
    sentences = split_text(MESSY)
    assert sentences
    previous_end = 0
    for s in sentences:
        assert s.start >= previous_end and s.end <= len(MESSY)
        assert MESSY[s.start : s.end] == MESSY[s.start : s.end].strip()
        assert len(s.tokens) == len(s.offsets)
        for token, (start, end) in zip(s.tokens, s.offsets):
            assert MESSY[start:end] == token
            assert s.start <= start < end <= s.end
        previous_end = s.end
    # no visible character is lost between tokens except format characters
    tokens = "".join(t for s in sentences for t in s.tokens)
    visible = "".join(c for c in MESSY if not c.isspace() and c not in "\u00ad\u200b\ufeff")
    assert tokens == visible


@pytest.mark.parametrize("text, tokens", [
    ("IL-2", ["IL", "-", "2"]),
    ("α-synuclein", ["α", "-", "synuclein"]),
    ("5 mg/kg", ["5", "mg", "/", "kg"]),
    ("10mg/day", ["10mg", "/", "day"]),
    ("c.68_69delAG", ["c", ".", "68", "_", "69delAG"]),
    ("(p<0.05)", ["(", "p", "<", "0", ".", "05", ")"]),
    ("naïve β2-adrenergic x²", ["naïve", "β2", "-", "adrenergic", "x²"]),
    ("Na+/K+-ATPase", ["Na", "+", "/", "K", "+", "-", "ATPase"]),
    ("Smith's  \t test\n", ["Smith", "'", "s", "test"]),
    ("soft\u00adhyphen zero\u200bwidth \ufeffbom", ["soft", "hyphen", "zero", "width", "bom"]),
    ("3 °C — 12.5%", ["3", "°", "C", "—", "12", ".", "5", "%"]),
    ("", []),
])
def test_tokenize(text: str, tokens: list[str]) -> None:
    found = tokenize(text)
    assert [t for t, _, _ in found] == tokens
    assert all(text[s:e] == t for t, s, e in found)


def test_tokenize_a_window_keeps_document_offsets() -> None:
    text = "xx IL-2 yy"
    assert tokenize(text, 3, 7) == [("IL", 3, 5), ("-", 5, 6), ("2", 6, 7)]


def test_sentence_splitting() -> None:
    text = ("Mutations (e.g. in E. coli) were seen by Dr. Smith in Fig. 2.\nThe second sentence\n"
            "goes on over a line break. A third one!\n\nA new paragraph without a full stop\n\n\n   \n")
    found = [text[s:e] for s, e in sentence_spans(text)]
    assert found == [
        "Mutations (e.g. in E. coli) were seen by Dr. Smith in Fig. 2.",
        "The second sentence\ngoes on over a line break.",
        "A third one!",
        "A new paragraph without a full stop",
    ]


def test_empty_and_blank_text() -> None:
    assert split_text("") == []
    assert split_text(" \n\n \t\n") == []


def test_long_sentences_are_cut() -> None:
    text = " ".join(f"w{i}" for i in range(25))
    pieces = split_text(text, max_tokens=10)
    assert [len(p) for p in pieces] == [10, 10, 5]
    assert pieces[1].tokens[0] == "w10" and text[pieces[1].start : pieces[1].end].startswith("w10")
    with pytest.raises(ValueError):
        split_text(text, max_tokens=0)


def _sample() -> list[tuple[str, list[str]]]:
    """(raw sentence, its corpus tokens) of tests/resources/corpus_sample.tsv."""
    out: list[tuple[str, list[str]]] = []
    raw, tokens = None, []
    for line in (RESOURCES / "corpus_sample.tsv").read_text(encoding="utf-8").split("\n"):
        if line.startswith("#raw "):
            raw = line.split("\t", 1)[1]
        elif line.startswith("#"):
            continue
        elif line:
            tokens.append(line.split("\t")[0])
        elif raw is not None:
            out.append((raw, tokens))
            raw, tokens = None, []
    return out


def test_corpus_sample_raw_sentences_give_their_tokens() -> None:
    sample = _sample()
    assert len(sample) >= 20
    for raw, tokens in sample:
        assert [t for t, _, _ in tokenize(raw)] == tokens, raw
        # the splitter keeps each benchmark sentence whole
        assert [tok for s in split_text(raw) for tok in s.tokens] == tokens


@pytest.mark.skipif(not CORPORA.is_dir(), reason="the benchmark corpora are not on this machine")
def test_every_corpus_token_is_one_token() -> None:
    for path in sorted(CORPORA.glob("*/test.tsv")):
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line:
                token = line.split("\t")[0]
                assert [t for t, _, _ in tokenize(token)] == [token], (path, token)


def test_binary_and_bad_utf8_are_refused_with_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(TextInputError, match=r"^doc\.txt:2: binary file \(NUL byte at offset 6\); expected UTF-8 text$"):
        decode_text(b"hello\n\x00\x01", "doc.txt")
    with pytest.raises(TextInputError, match=r"^latin\.txt:3: bytes are not valid UTF-8 \(byte 0xe9 at offset 7\)"):
        decode_text(b"a\nb\ncaf\xe9", "latin.txt")
    path = tmp_path / "ok.txt"
    path.write_bytes("two\r\nlines é".encode())
    assert read_text(path) == "two\r\nlines é"  # no line-end translation: offsets stay exact
    with pytest.raises(TextInputError, match="file not found"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(TextInputError, match="is a folder"):
        read_text(tmp_path)


def test_tokenized_input() -> None:
    sentences = parse_tokenized("IL\tB\n-\tI\n2\tI\n\n\nrose\nsharply\n", "in.conll")
    assert sentences == [["IL", "-", "2"], ["rose", "sharply"]]
    text, found = tokens_document(sentences)
    assert text == "IL - 2\nrose sharply"
    for s in found:
        assert [text[a:b] for a, b in s.offsets] == list(s.tokens)
        assert text[s.start : s.end] == " ".join(s.tokens)
    with pytest.raises(TextInputError, match=r"^in\.conll:2: token 'a b' holds white space"):
        parse_tokenized("x\na b\n", "in.conll")


def test_detokenize_round_trips_the_corpus_sample() -> None:
    from hgda_core.text import detokenize

    for raw, tokens in _sample():
        assert detokenize(tokens) == raw
        assert [t for t, _, _ in tokenize(detokenize(tokens))] == tokens


def test_fast_path_gives_syntoks_sentences() -> None:
    from hgda_core.text import syntok_spans

    paragraph = " ".join(raw for raw, _ in _sample()) + "\n\n" + MESSY
    assert sentence_spans(paragraph) == syntok_spans(paragraph)
    text = "It rose (see the methods. Table 1 lists them) sharply. Then it fell, approx. Twice."
    assert sentence_spans(text) == syntok_spans(text)
