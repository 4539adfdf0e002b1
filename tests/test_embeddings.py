"""Word vectors: fastText determinism and n-gram OOV vectors, the lookup fallback chain,
the .npz round trip, BioWordVec-style word2vec files (text and binary), clear errors on
broken files, and coverage figures against hand-computed values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from gensim.models import KeyedVectors

from hgda_core import embeddings as emb
from hgda_core.data import Corpus, CorpusSplit, Sentence, save_corpus
from hgda_core.embeddings import EmbeddingFormatError, WordVectors

TEXT = [
    "the BRCA1 gene is mutated in breast cancer".split(),
    "mutations in the TP53 gene cause cancer".split(),
    "the p53 protein binds DNA".split(),
    "breast cancer patients carry BRCA1 mutations".split(),
    "aspirin reduces the risk of colon cancer".split(),
    "E. coli and mice were used in the study".split(),
] * 5
SMALL = dict(dim=16, epochs=3, window=3, min_count=1, seed=7, workers=1, bucket=5000)


def _train(**overrides: object):
    return emb.train_fasttext(TEXT, **{**SMALL, **overrides})


# --- fastText ---------------------------------------------------------------------------


def test_fasttext_is_deterministic_with_one_worker() -> None:
    a, b = _train(), _train()
    assert np.array_equal(a.wv.vectors, b.wv.vectors)
    assert np.array_equal(a.wv.vectors_ngrams, b.wv.vectors_ngrams)
    words = emb.corpus_vocabulary(TEXT) + ["unseen-word"]
    assert np.array_equal(emb.from_fasttext(a, words).vectors, emb.from_fasttext(b, words).vectors)


def test_fasttext_seed_changes_vectors() -> None:
    assert not np.array_equal(_train().wv.vectors, _train(seed=8).wv.vectors)


def test_unseen_word_gets_ngram_vector() -> None:
    model = _train()
    assert "cancers" not in model.wv.key_to_index
    wv = emb.from_fasttext(model, ["cancer", "cancers"])
    assert wv.words == ["<pad>", "<unk>", "cancer", "cancers"]
    row = wv.vectors[wv.lookup("cancers")]
    assert np.abs(row).sum() > 0
    assert np.array_equal(row, model.wv["cancers"])
    assert np.array_equal(wv.vectors[wv.lookup("cancer")], model.wv["cancer"])


def test_training_text_is_train_and_devel_without_duplicates() -> None:
    def corpus(name: str, train: str, devel: str, test: str) -> Corpus:
        splits = {
            split: CorpusSplit([Sentence(tuple(text.split()), ("O",) * len(text.split()))])
            for split, text in (("train", train), ("devel", devel), ("test", test))
        }
        return Corpus(name, "Disease", splits)

    chem = corpus("chem", "shared text", "chem devel", "secret test")
    disease = corpus("disease", "shared text", "disease devel", "other test")
    assert emb.training_text([chem, disease]) == [
        ["shared", "text"], ["chem", "devel"], ["disease", "devel"]
    ]


def test_corpus_vocabulary_orders_by_frequency_then_alphabet() -> None:
    assert emb.corpus_vocabulary([["b", "a", "c"], ["a", "b", "<unk>", "d"], ["d"]]) == [
        "a", "b", "d", "c"
    ]


# --- WordVectors ------------------------------------------------------------------------


def _table() -> WordVectors:
    words = ["the", "gene", "p00", "il-0"]
    return WordVectors.build(words, np.arange(len(words) * 3, dtype=np.float32).reshape(-1, 3) + 1)


def test_lookup_fallback_chain() -> None:
    wv = _table()
    assert wv.words[:2] == ["<pad>", "<unk>"]
    assert not wv.vectors[:2].any()
    assert wv.lookup("the") == 2          # exact
    assert wv.lookup("THE") == 2          # lowercase
    assert wv.lookup("Gene") == 3         # lowercase
    assert wv.lookup("p53") == 4          # digits -> 0
    assert wv.lookup("IL-2") == 5         # lowercase, then digits -> 0
    assert wv.lookup("BRCA1") == 1        # unknown -> <unk>
    assert wv.lookup("<pad>") == 1        # a literal "<pad>" token is not padding
    assert wv.ids(["The", "p12", "x"]) == [2, 4, 1]
    assert wv.dim == 3


def test_save_load_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    words = ["α-synuclein", "Na+", "IL-2", "the"]
    wv = WordVectors.build(words, rng.standard_normal((4, 5)).astype(np.float32))
    wv.save(tmp_path / "vectors.npz")
    back = WordVectors.load(tmp_path / "vectors.npz")
    assert back.words == wv.words
    assert back.vectors.dtype == np.float32
    assert np.array_equal(back.vectors, wv.vectors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.npz"]


def test_load_broken_table_names_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(EmbeddingFormatError, match="broken.npz"):
        WordVectors.load(path)


# --- pretrained word2vec files (BioWordVec format) -----------------------------------------


def _word2vec_file(tmp_path: Path, suffix: str, binary: bool) -> tuple[Path, KeyedVectors]:
    kv = KeyedVectors(vector_size=8)
    rng = np.random.default_rng(1)
    kv.add_vectors(["the", "cancer", "p00", "gene", "extra"],
                   rng.standard_normal((5, 8)).astype(np.float32))
    path = tmp_path / f"vectors{suffix}"
    kv.save_word2vec_format(str(path), binary=binary)
    return path, kv


@pytest.mark.parametrize(("suffix", "binary"), [(".txt", False), (".vec", False), (".bin", True)])
def test_load_pretrained_restricts_to_vocabulary(tmp_path: Path, suffix: str, binary: bool) -> None:
    path, kv = _word2vec_file(tmp_path, suffix, binary)
    wv, matches = emb.load_pretrained(path, ["the", "Cancer", "p53", "BRCA1", "gene"], dim=8)
    assert wv.words == ["<pad>", "<unk>", "the", "Cancer", "p53", "gene"]
    for word, key in [("the", "the"), ("Cancer", "cancer"), ("p53", "p00"), ("gene", "gene")]:
        assert np.array_equal(wv.vectors[wv.lookup(word)], kv[key])
    assert wv.lookup("BRCA1") == 1 and wv.lookup("extra") == 1
    assert matches == {"vocabulary": 5, "exact": 2, "fallback": 2, "missing": 1, "file_words": 5}


def test_load_pretrained_without_matches_keeps_dim(tmp_path: Path) -> None:
    path, _ = _word2vec_file(tmp_path, ".txt", False)
    wv, matches = emb.load_pretrained(path, ["BRCA1"], dim=8)
    assert wv.words == ["<pad>", "<unk>"] and wv.dim == 8 and matches["missing"] == 1


def test_load_pretrained_limit(tmp_path: Path) -> None:
    path, _ = _word2vec_file(tmp_path, ".bin", True)
    wv, matches = emb.load_pretrained(path, ["the", "gene", "cancer"], dim=8, limit=2)
    assert wv.words == ["<pad>", "<unk>", "the", "cancer"]
    assert matches["file_words"] == 2


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("words.txt", b"hello world\n"),                          # no '<count> <dim>' header
        ("values.txt", b"2 3\nthe 0.1 0.2 0.3\ngene 0.1 abc 0.3\n"),  # not a number
        ("short.txt", b"2 3\nthe 0.1 0.2\ngene 0.1 0.2\n"),      # 2 values, 3 expected
        ("truncated.txt", b"5 3\nthe 0.1 0.2 0.3\n"),             # fewer vectors than declared
        ("truncated.bin", b"5 3\nthe " + np.zeros(3, np.float32).tobytes()),
        ("garbage.bin", bytes(range(256))),
        ("vectors.csv", b"2 3\n"),                                # unknown extension
    ],
)
def test_malformed_vectors_file_names_the_file(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(EmbeddingFormatError, match=name.replace(".", r"\.")):
        emb.load_pretrained(path, ["the", "gene"], dim=3)


def test_missing_vectors_file(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingFormatError, match="file not found"):
        emb.load_pretrained(tmp_path / "BioWordVec.vec.bin", ["the"], dim=200)


@pytest.mark.parametrize(("suffix", "binary"), [(".txt", False), (".bin", True)])
def test_dimension_mismatch(tmp_path: Path, suffix: str, binary: bool) -> None:
    path, _ = _word2vec_file(tmp_path, suffix, binary)
    with pytest.raises(EmbeddingFormatError, match=r"vectors\..*8-dimensional; expected dim=200"):
        emb.load_pretrained(path, ["the"], dim=200)


# --- coverage ---------------------------------------------------------------------------


def test_coverage_hand_computed() -> None:
    wv = WordVectors.build(["a", "b", "n0"], np.ones((3, 2), dtype=np.float32))
    report = emb.coverage(
        wv,
        {"one": [["a", "b", "x"], ["a", "A", "y"]], "two": [["n7", "z"]], "empty": []},
        trained_words={"a"},
    )
    # one: types a, b, x, A, y; covered a, b, A (lowercase). Tokens 6; covered a, b, a, A.
    assert report["one"] == pytest.approx({
        "types": 5, "tokens": 6, "type_coverage": 3 / 5, "token_coverage": 4 / 6,
        "type_trained": 1 / 5, "token_trained": 2 / 6,
    })
    assert report["two"] == pytest.approx({
        "types": 2, "tokens": 2, "type_coverage": 1 / 2, "token_coverage": 1 / 2,
        "type_trained": 0.0, "token_trained": 0.0,
    })
    assert report["empty"]["types"] == 0 and report["empty"]["type_coverage"] == 0.0
    assert "type_trained" not in emb.coverage(wv, {"one": [["a"]]})["one"]


# --- the stage ------------------------------------------------------------------------


def test_embed_stage_end_to_end(tmp_path: Path) -> None:
    from stages import embed

    def sentences(lines: list[list[str]]) -> CorpusSplit:
        return CorpusSplit([Sentence(tuple(t), ("O",) * len(t)) for t in lines])

    corpus = Corpus("toy", "Gene", {"train": sentences(TEXT[:4]), "devel": sentences(TEXT[4:6]),
                                    "test": sentences([["the", "testonlyword"]])})
    save_corpus(corpus, tmp_path / "data" / "processed" / "toy.pkl")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "corpora": ["toy"], "seed": 3,
        "embed": {"vectors": "", "dim": 8, "epochs": 2, "window": 3, "min_count": 1, "workers": 1},
    }))
    embed.main(tmp_path)
    wv = WordVectors.load(tmp_path / "data" / "embeddings" / "vectors.npz")
    assert wv.lookup("testonlyword") != 1 and wv.dim == 8
    report = json.loads((tmp_path / "reports" / "embeddings.json").read_text())
    assert report["source"] == "fasttext(trained on train+devel)"
    assert report["vocabulary_size"] == len(wv) - 2
    test_cov = report["coverage"]["toy"]["test"]
    assert test_cov["type_coverage"] == 1.0 and test_cov["type_trained"] == 0.5


def test_embed_stage_with_pretrained_vectors(tmp_path: Path) -> None:
    from stages import embed

    path, kv = _word2vec_file(tmp_path, ".vec", False)
    split = CorpusSplit([Sentence(("The", "cancer", "BRCA1"), ("O", "O", "B"))])
    save_corpus(Corpus("toy", "Gene", {"train": split, "devel": split, "test": split}),
                tmp_path / "data" / "processed" / "toy.pkl")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "corpora": ["toy"], "seed": 3, "embed": {"vectors": path.name, "dim": 8},
    }))
    embed.main(tmp_path)
    wv = WordVectors.load(tmp_path / "data" / "embeddings" / "vectors.npz")
    assert wv.words == ["<pad>", "<unk>", "The", "cancer"]  # BRCA1 has no vector
    assert np.array_equal(wv.vectors[wv.lookup("The")], kv["the"])
    report = json.loads((tmp_path / "reports" / "embeddings.json").read_text())
    assert report["source"] == "vectors.vec"
    assert report["matches"] == {"vocabulary": 3, "exact": 1, "fallback": 1, "missing": 1,
                                 "file_words": 5}
    assert report["coverage"]["toy"]["test"]["type_coverage"] == round(2 / 3, 4)
    assert "type_trained" not in report["coverage"]["toy"]["test"]
