"""The adapted tagger (hgda_core.usertagger): reading a user's corpus, adaptation, the
model folder, spans, scores."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable

import pytest
import torch

from hgda_core.adapt import AdaptConfig
from hgda_core.data import CorpusFormatError, Sentence
from hgda_core.embeddings import WordVectors
from hgda_core.metrics import entity_spans
from hgda_core.models import Tagger
from hgda_core.usertagger import (
    CARD, CONFIG, VECTORS, WEIGHTS, AdaptedTagger, ModelFolderError, adapt_tagger, iob2_entities, keep_vectors,
    label_set, load_base, read_labelled, release_checkpoint,
)
from tests.conftest import synthetic_sentences

FAST = AdaptConfig(default_lr=0.3, steps=60)
"""A protocol the tiny fixture model learns in (the default 30 steps at 0.1 are for the full-size one)."""


def typed(sentences: list[Sentence], kind: str) -> list[Sentence]:
    return [Sentence(s.tokens, tuple(t if t == "O" else f"{t}-{kind}" for t in s.tags)) for s in sentences]


def two_type_corpus() -> list[Sentence]:
    return typed(synthetic_sentences("Disease", 20, 1), "Disease") + typed(synthetic_sentences("Drug", 20, 2), "Drug")


def write_tsv(path: Path, sentences: list[Sentence]) -> Path:
    path.write_text("".join("".join(f"{t}\t{g}\n" for t, g in zip(s.tokens, s.tags)) + "\n" for s in sentences),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def adapted(tiny_vectors: WordVectors) -> AdaptedTagger:
    torch.manual_seed(0)
    from hgda_core.models import build_tagger
    from tests.conftest import TINY

    base = build_tagger(tiny_vectors, TINY, ["Gene"], ["Gene"])
    return adapt_tagger(two_type_corpus(), base=base, protocol=FAST, vocab_limit=0)


# --- reading -----------------------------------------------------------------------------------


def test_read_typed_and_plain_files(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("Aspirin\tB-Chemical\nfor\tO\nmigraine\tB-Disease\nattacks\tI-Disease\n\nx\tO\n", encoding="utf-8")
    got = read_labelled(path)
    assert got.mentions == {"Chemical": 1, "Disease": 1} and not got.plain and got.repairs == 0
    path.write_text("Aspirin\tB\nhelps\tO\n", encoding="utf-8")
    got = read_labelled(path, "Chemical")
    assert got.sentences[0].tags == ("B-Chemical", "O") and got.plain
    with pytest.raises(CorpusFormatError, match=r"t\.tsv:1: plain tag 'B' and no entity type.*--type NAME"):
        read_labelled(path)


def test_read_counts_repairs_of_I_without_B(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "r.tsv", [Sentence(("a", "b", "c", "d"), ("I-X", "I-X", "O", "I-Y"))])
    got = read_labelled(path)
    assert got.repairs == 2
    assert got.sentences[0].tags == ("B-X", "I-X", "O", "B-Y")


@pytest.mark.parametrize("content, message", [
    ("", r"e\.tsv:1: empty file; expected token<TAB>tag lines"),
    ("a\tO\nb\tO\n", r"e\.tsv:1: no entity in 1 sentence\(s\); expected at least one B tag"),
    ("a\tO\nb\tO\tx\n", r"e\.tsv:2: expected 2 tab-separated columns \(token<TAB>tag\), found 3 columns"),
    ("a\tB-X\n\nb\tB\n", r"e\.tsv:3: plain tag 'B' in a file whose line 1 has a typed one"),
    ("a\tQ\n", r"e\.tsv:1: unknown tag 'Q'"),
    (b"a\tB-X\n\xff\tO\n", r"e\.tsv:2: bytes are not valid UTF-8"),
])
def test_bad_training_files(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = tmp_path / "e.tsv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CorpusFormatError, match=message):
        read_labelled(path, "X" if "plain" not in message else None, need_entity=True)


def test_label_set() -> None:
    assert label_set(["Drug", "Disease", "Drug"]) == ("O", "B-Disease", "I-Disease", "B-Drug", "I-Drug")


# --- spans ---------------------------------------------------------------------------------------


def test_iob2_entities_read_tags_as_the_scorer_does() -> None:
    rng = random.Random(0)
    tags = ["O", "B-A", "I-A", "B-B", "I-B"]
    for _ in range(300):
        seq = [rng.choice(tags) for _ in range(rng.randint(1, 9))]
        ours = {(0, kind, s, e) for kind, s, e in iob2_entities(seq)}
        assert ours == entity_spans([seq]), seq


def test_multi_type_adaptation_learns_its_train_set(adapted: AdaptedTagger) -> None:
    assert adapted.labels == ("O", "B-Disease", "I-Disease", "B-Drug", "I-Drug")
    scores = adapted.evaluate(two_type_corpus())
    assert scores["micro"]["f1"] > 0.9
    assert set(scores["types"]) == {"Disease", "Drug"} and all(s["f1"] > 0.8 for s in scores["types"].values())


def test_tag_gives_exact_character_spans(adapted: AdaptedTagger) -> None:
    text = "Patients with  asthma\nwere given aspirin (10 mg).\n\nThe cancer of a mouse and heparin-treated rats."
    spans = adapted.tag(text)
    assert spans
    for span in spans:
        assert text[span.start : span.end] == span.text
        assert span.type in {"Disease", "Drug"}
    assert {(s.text, s.type) for s in spans} >= {("asthma", "Disease"), ("aspirin", "Drug")}
    assert adapted.tag("") == []


def test_tag_documents_batches_across_documents(adapted: AdaptedTagger) -> None:
    docs = [(f"d{i}", "The patients with asthma were given aspirin. " * (i + 1)) for i in range(5)]
    alone = [adapted.tag(text) for _, text in docs]
    batched = list(adapted.tag_documents(docs, batch_size=3))
    assert [d.name for d in batched] == [n for n, _ in docs]
    assert [d.spans for d in batched] == alone


# --- scores on a hand-made prediction ------------------------------------------------------


class FixedTagger(AdaptedTagger):
    """Returns the given predictions instead of running the model."""

    def __init__(self, model: Tagger, predictions: list[list[str]]) -> None:
        super().__init__(model)
        self.predictions = predictions

    def predict(self, sentences, batch_size=256):  # type: ignore[override]
        return self.predictions


def test_evaluate_hand_computed(adapted: AdaptedTagger) -> None:
    gold = [
        Sentence(("a", "b", "c", "d"), ("B-Disease", "I-Disease", "O", "B-Drug")),
        Sentence(("e", "f", "g"), ("B-Drug", "O", "B-Gene")),
    ]
    pred = [["B-Disease", "I-Disease", "O", "O"], ["B-Drug", "B-Disease", "O"]]
    report = FixedTagger(adapted.model, pred).evaluate(gold)
    # Disease: gold 1, pred 2, TP 1 → P 1/2, R 1, F1 2/3.  Drug: gold 2, pred 1, TP 1 → P 1, R 1/2.
    # Gene (unknown to the model): gold 1, TP 0.  Micro: TP 2, FP 1, FN 2 → P 2/3, R 1/2, F1 4/7.
    assert report["types"]["Disease"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "tp": 1, "fp": 1, "fn": 0,
                                          "known": True}
    assert report["types"]["Drug"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "tp": 1, "fp": 0, "fn": 1,
                                       "known": True}
    assert report["types"]["Gene"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 1,
                                       "known": False}
    assert report["micro"] == {"precision": 0.6667, "recall": 0.5, "f1": 0.5714, "tp": 2, "fp": 1, "fn": 2}
    assert report["unknown_types"] == ["Gene"]


# --- the model folder --------------------------------------------------------------------------


def test_saved_folder_reloads_to_identical_tags(adapted: AdaptedTagger, tmp_path: Path) -> None:
    folder = adapted.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == sorted([CARD, CONFIG, VECTORS, WEIGHTS])
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folder left
    again = AdaptedTagger.load(folder)
    sentences = [s.tokens for s in two_type_corpus()] + [("unseen", "words", "here")]
    assert again.predict(sentences) == adapted.predict(sentences)
    assert again.labels == adapted.labels
    card = (folder / CARD).read_text()
    mentions = adapted.info["train"]["mentions"]
    assert "Training sentences: 40" in card
    assert f"Mentions per type: Disease {mentions['Disease']}, Drug {mentions['Drug']}" in card
    adapted.save(folder)  # replacing a model folder is fine
    assert AdaptedTagger.load(folder).labels == adapted.labels


def test_save_is_atomic(adapted: AdaptedTagger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hgda_core.usertagger as ut

    def broken(_tagger: AdaptedTagger) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(ut, "model_card", broken)
    with pytest.raises(KeyboardInterrupt):
        adapted.save(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_a_folder_that_is_not_a_model(adapted: AdaptedTagger, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModelFolderError, match="exists and is not an hgda model folder"):
        adapted.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_load_refuses_broken_folders(adapted: AdaptedTagger, tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match="model folder not found"):
        AdaptedTagger.load(tmp_path / "nowhere")
    with pytest.raises(ModelFolderError, match=r"not an hgda model folder \(no hgda-model.json\)"):
        AdaptedTagger.load(tmp_path)
    folder = adapted.save(tmp_path / "m")
    config = json.loads((folder / CONFIG).read_text())
    (folder / CONFIG).write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ModelFolderError, match="model format version 99; this hgda .* reads version 1"):
        AdaptedTagger.load(folder)
    (folder / CONFIG).write_text("{not json")
    with pytest.raises(ModelFolderError, match="damaged model configuration"):
        AdaptedTagger.load(folder)
    (folder / CONFIG).write_text(json.dumps(config))
    (folder / WEIGHTS).write_bytes(b"garbage")
    with pytest.raises(ModelFolderError, match="damaged model folder"):
        AdaptedTagger.load(folder)
    (folder / WEIGHTS).unlink()
    with pytest.raises(ModelFolderError, match="incomplete model folder, missing weights.pt"):
        AdaptedTagger.load(folder)


def test_kept_vectors(tiny_vectors: WordVectors) -> None:
    kept = keep_vectors(tiny_vectors, [["Aspirin", "P53", "zzz"]], limit=3)
    assert kept.words[:5] == tiny_vectors.words[:5]
    assert {"aspirin", "p53"} <= set(kept.words)  # reached through the lowercase fallback
    assert len(kept) == 2 + 3 + 2
    for word in ("aspirin", "p53", tiny_vectors.words[3]):
        assert (kept.vectors[kept.lookup(word)] == tiny_vectors.vectors[tiny_vectors.lookup(word)]).all()
    assert keep_vectors(tiny_vectors, [], limit=0) is tiny_vectors


# --- bases and bad input -----------------------------------------------------------------------


def test_bases(make_tagger: Callable[..., Tagger], tiny_vectors: WordVectors, tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match=r"no release base model; build it with `dvc repro release`"):
        release_checkpoint(tmp_path)
    (tmp_path / "models" / "release").mkdir(parents=True)
    for k in (10, 50):
        (tmp_path / "models" / "release" / f"K{k}.pt").write_bytes(b"")
    assert release_checkpoint(tmp_path, 40).name == "K50.pt"
    with pytest.raises(ModelFolderError, match="base checkpoint not found"):
        load_base(tmp_path / "none.pt", tiny_vectors)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ModelFolderError, match="not a tagger checkpoint"):
        load_base(tmp_path / "junk.pt", tiny_vectors)
    make_tagger().save(tmp_path / "base.pt")
    assert isinstance(load_base(tmp_path / "base.pt", tiny_vectors), Tagger)
    other = WordVectors.build(["x"], torch.zeros(1, 5).numpy())
    with pytest.raises(ModelFolderError, match=rf"base.pt: trained with word vectors {tiny_vectors.fingerprint[:12]}, "
                                               rf"given {other.fingerprint[:12]}; pass the vectors it was trained with"):
        load_base(tmp_path / "base.pt", other)
    # a checkpoint without the record (older than it) still fails on a table of another size
    ckpt = torch.load(tmp_path / "base.pt", weights_only=False)
    del ckpt["vectors_fingerprint"]
    torch.save(ckpt, tmp_path / "old.pt")
    with pytest.raises(ModelFolderError, match="does not fit the word vectors"):
        load_base(tmp_path / "old.pt", other)


def test_adapt_tagger_refuses_bad_sentences(make_tagger: Callable[..., Tagger]) -> None:
    with pytest.raises(ValueError, match="no training sentence"):
        adapt_tagger([], base=make_tagger())
    with pytest.raises(ValueError, match="no entity in the 1 training sentence"):
        adapt_tagger([Sentence(("a",), ("O",))], base=make_tagger())
    with pytest.raises(ValueError, match="plain B/I tags"):
        adapt_tagger([Sentence(("a", "b"), ("B", "I"))], base=make_tagger())


def test_scratch_base_from_a_path(tiny_vectors: WordVectors, tmp_path: Path) -> None:
    from tests.conftest import TINY

    tiny_vectors.save(tmp_path / "v.npz")
    tagger = adapt_tagger(two_type_corpus()[:4], base=None, vectors=tmp_path / "v.npz", scratch_config=TINY,
                          protocol=AdaptConfig(default_lr=0.1, steps=2))
    assert tagger.info["base"].startswith("none")
    assert tagger.types == sorted({t[2:] for s in two_type_corpus()[:4] for t in s.tags if t != "O"})


def test_package_root_api() -> None:
    import hgda_core
    from hgda_core import usertagger

    assert hgda_core.adapt_tagger is usertagger.adapt_tagger
    assert hgda_core.AdaptedTagger is usertagger.AdaptedTagger
    with pytest.raises(AttributeError):
        hgda_core.no_such_thing  # noqa: B018
