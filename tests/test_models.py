"""The BiLSTM encoder's batching and the tagger's heads and decoders."""

from __future__ import annotations

import pytest
import torch

from hgda_core.data import Sentence
from hgda_core.models import BiLSTMConfig, TagDecoder
from hgda_core.models.encoder import CHAR_UNK, char_index


def test_collate_pads_and_encodes_each_distinct_word_once(make_tagger, tiny_vectors):
    encoder = make_tagger().encoder
    batch = encoder.collate([["the", "p53", "the"], ["cancer"]])
    assert batch.word_ids.shape == (2, 3)
    assert batch.mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.char_ids.shape[0] == 3  # the, p53, cancer
    assert batch.word_to_type[0].tolist() == [0, 1, 0]
    assert batch.word_ids[0, 1] == tiny_vectors.lookup("p53")
    assert batch.char_ids[1, :3].tolist() == [char_index(c) for c in "p53"]
    assert batch.char_lengths.tolist() == [3, 3, 6]


def test_char_index_maps_non_latin1_to_unknown():
    assert char_index("a") == ord("a") + 2
    assert char_index("α") == CHAR_UNK


def test_encoder_output_is_300d_input_to_256d_output(tiny_vectors):
    from hgda_core.models import build_tagger

    model = build_tagger(tiny_vectors, BiLSTMConfig(), ["Disease"], ["Disease"])
    assert model.encoder.lstm.input_size == tiny_vectors.dim + 50 + 50
    out = model.encoder(model.encoder.collate([["the", "cancer"], ["a"]]))
    assert out.shape == (2, 2, 256)


def test_padding_does_not_change_a_sentence_representation(make_tagger):
    model = make_tagger().eval()
    alone = model.encoder(model.encoder.collate([["the", "cancer", "was"]]))
    padded = model.encoder(model.encoder.collate([["the", "cancer", "was"], list("the of a in and was".split())]))
    torch.testing.assert_close(alone[0], padded[0, :3])


def test_empty_sentence_is_rejected(make_tagger):
    with pytest.raises(ValueError, match="at least one token"):
        make_tagger().encoder.collate([["a"], []])


def test_decoder_rejects_unknown_tags_and_needs_o_first():
    decoder = TagDecoder(4)
    with pytest.raises(ValueError, match="'B-X' is not in"):
        decoder.encode_tags([["O", "B-X"]], 2)
    with pytest.raises(ValueError, match="start with 'O'"):
        TagDecoder(4, ["B", "I", "O"])


def test_predict_keeps_input_order_and_lengths(make_tagger, tiny_corpora):
    model = make_tagger()
    sentences = tiny_corpora["Disease"][0]["test"][:20]
    tags = model.predict(sentences, "Disease", batch_size=7)
    assert [len(t) for t in tags] == [len(s) for s in sentences]
    assert all(set(t) <= {"O", "B", "I"} for t in tags)
    assert tags == [model.predict([s], "Disease")[0] for s in sentences]


def test_fresh_decoder_for_a_new_domain(make_tagger):
    model = make_tagger()
    decoder = model.add_decoder("Drug")
    assert "Drug" in model.decoders and model.decoders["Drug"] is decoder
    batch = model.task_batch([Sentence(("aspirin",), ("B",))], [], "Drug")
    assert batch.domain_label is None  # Drug is not a class of the domain head
    lab, cls = model(batch, batch.support, batch.query)
    assert lab.item() > 0 and cls.item() == 0.0
