"""The BERT encoder: word alignment, truncation, meta-training, checkpoints, offline load.

A tiny random BERT (hidden 32, 2 layers) with a WordPiece vocabulary of whole filler
words and single characters is written to a folder, so the real local-folder loading
path is exercised without any download.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable

import pytest
import torch
from torch.func import functional_call
from transformers import BertConfig

from hgda_core.data import Sentence
from hgda_core.meta import MetaConfig, MetaLearner
from hgda_core.models import Tagger
from hgda_core.models.bert import (
    BertEncoder,
    BertEncoderConfig,
    build_bert_tagger,
    load_bert_tagger,
    resolve_model_path,
)
from hgda_core.sampler import TaskSampler

DOMAINS = ["Disease", "Gene", "Species"]
@pytest.fixture
def make_bert_tagger(tiny_bert_dir: Path) -> Callable[..., Tagger]:
    def make(max_length: int = 32, dropout: float = 0.0, seed: int = 0) -> Tagger:
        torch.manual_seed(seed)
        config = BertEncoderConfig(model_path=str(tiny_bert_dir), max_length=max_length, dropout=dropout)
        return build_bert_tagger(config, DOMAINS, DOMAINS)

    return make


def test_each_word_maps_to_its_first_subtoken(make_bert_tagger):
    tagger = make_bert_tagger().eval()
    encoder = tagger.encoder
    words = ["cancer", "the", "p53", "of", "NF-kappaB"]
    batch = encoder.collate([words, ["the"]])
    pieces = encoder.tokenizer.convert_ids_to_tokens(batch.input_ids[0].tolist())
    assert pieces[:9] == ["[CLS]", "c", "##a", "##n", "##c", "##e", "##r", "the", "p"]
    first = batch.first_subtoken[0].tolist()
    assert [pieces[i] for i in first] == ["c", "the", "p", "of", "n"]
    assert batch.mask.tolist() == [[True] * 5, [True] + [False] * 4]
    assert batch.kept.tolist() == batch.mask.tolist()
    with torch.no_grad():
        hidden = encoder.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        out = encoder(batch)
    assert out.shape == (2, 5, encoder.output_dim) == (2, 5, 32)
    torch.testing.assert_close(out[0], hidden[0, first])


def test_predict_gives_one_tag_per_word(make_bert_tagger, tiny_corpora):
    tagger = make_bert_tagger()
    sentences = tiny_corpora["Gene"][0].splits["test"].sentences[:12]
    tags = tagger.predict(sentences, "Gene", batch_size=5)
    assert [len(t) for t in tags] == [len(s) for s in sentences]
    assert {t for seq in tags for t in seq} <= {"O", "B", "I"}


def test_truncated_words_are_zero_vectors_and_still_tagged(make_bert_tagger):
    tagger = make_bert_tagger(max_length=12).eval()
    encoder = tagger.encoder
    words = ["the", "cancer", "\u200b", "of"] + ["aspirin"] * 16  # 20 words, far over 12 pieces
    batch = encoder.collate([words])
    assert batch.input_ids.shape[1] == 12  # [CLS] + 10 pieces + [SEP]
    kept = batch.kept[0].tolist()
    # the zero-width space has no piece at all; "aspirin" #1 starts at piece 10, #2 is cut
    assert kept == [True, True, False, True, True] + [False] * 15
    out = encoder(batch)
    assert out.shape == (1, 20, 32)
    assert out[0, ~batch.kept[0]].abs().sum() == 0
    assert (out[0, batch.kept[0]].abs().sum(-1) > 0).all()
    tags = tagger.predict([Sentence(tuple(words), ("O",) * 20)], "Disease")[0]
    assert len(tags) == 20
    # what lies beyond max_length cannot change any prediction: the tags are a
    # deterministic function of φ and the kept words
    other = words[:5] + ["heparin", "BRCA1"] * 7 + ["cells"]
    assert tagger.predict([Sentence(tuple(other), ("O",) * 20)], "Disease")[0] == tags


def test_functional_call_matches_the_module_and_reaches_bert(make_bert_tagger, tiny_corpora):
    tagger = make_bert_tagger().eval()
    sentences = tiny_corpora["Disease"][0].splits["train"].sentences[:6]
    batch = tagger.task_batch(sentences[:3], sentences[3:], "Disease")
    params = {n: p for n, p in tagger.named_parameters()}
    lab, cls = tagger(batch, batch.support, batch.query)
    f_lab, f_cls = functional_call(tagger, params, (batch, batch.support, batch.query))
    torch.testing.assert_close((f_lab, f_cls), (lab, cls))
    name = "encoder.model.encoder.layer.0.attention.self.value.weight"
    (grad,) = torch.autograd.grad(f_lab + f_cls, [params[name]])
    assert grad.abs().sum() > 0
    shifted = dict(params, **{name: params[name] + torch.randn_like(params[name])})
    assert not torch.allclose(functional_call(tagger, shifted, (batch, batch.support, None))[0], lab)


def test_meta_training_step_changes_bert_weights(make_bert_tagger, tiny_corpora):
    tagger = make_bert_tagger(dropout=0.2)
    source = {d: tiny_corpora[d] for d in DOMAINS}
    tasks = TaskSampler(source, "train", 3, seed=1).fixed_tasks(2)
    before = {n: p.detach().clone() for n, p in tagger.named_parameters()}
    optimizer = torch.optim.SGD(tagger.parameters(), lr=0.1)
    learner = MetaLearner(tagger, MetaConfig(alpha=0.1, beta=0.1), optimizer)
    log = learner.step(tasks)
    assert all(torch.isfinite(torch.tensor(log["lab"])))
    changed = ("encoder.model.embeddings.word_embeddings.weight", "encoder.model.encoder.layer.1.output.dense.weight")
    for name in changed:
        assert not torch.equal(before[name], tagger.get_parameter(name).detach()), name
    assert not any(n.startswith("encoder.model.pooler") for n in before)


def test_implicit_meta_gradient_runs_through_bert(make_bert_tagger, tiny_corpora):
    tagger = make_bert_tagger()
    source = {d: tiny_corpora[d] for d in DOMAINS}
    task = TaskSampler(source, "train", 2, seed=2).sample("Gene")
    optimizer = torch.optim.SGD(tagger.parameters(), lr=0.1)
    learner = MetaLearner(tagger, MetaConfig(gradient="implicit", cg_steps=2), optimizer)
    result = learner.task_result(tagger.task_batch(task.support, task.query, task.domain))
    assert torch.isfinite(result.grads["encoder.model.encoder.layer.0.attention.self.key.weight"]).all()


def test_checkpoint_round_trip_gives_identical_predictions(make_bert_tagger, tiny_corpora, tmp_path):
    tagger = make_bert_tagger()
    source = {d: tiny_corpora[d] for d in DOMAINS}
    learner = MetaLearner(tagger, MetaConfig(), torch.optim.SGD(tagger.parameters(), lr=0.5))
    learner.step(TaskSampler(source, "train", 3, seed=4).fixed_tasks(3))
    tagger.save(tmp_path / "bert.pt", note="test")
    loaded = load_bert_tagger(tmp_path / "bert.pt")
    assert isinstance(loaded.encoder, BertEncoder)
    assert loaded.encoder.config == tagger.encoder.config
    sentences = tiny_corpora["Species"][0].splits["test"].sentences[:10]
    assert loaded.predict(sentences, "Species") == tagger.predict(sentences, "Species")
    for (n, a), (m, b) in zip(tagger.state_dict().items(), loaded.state_dict().items()):
        assert n == m and torch.equal(a, b), n


def test_random_architecture_keeps_the_folders_tokenizer(tiny_bert_dir):
    config = BertConfig(vocab_size=200, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    encoder = BertEncoder(BertEncoderConfig(model_path=str(tiny_bert_dir), max_length=16), bert_config=config)
    assert encoder.output_dim == 16
    assert encoder(encoder.collate([["the", "cancer"]])).shape == (1, 2, 16)


def test_bad_model_folder_and_length_are_clear_errors(tmp_path, tiny_bert_dir):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        resolve_model_path(str(tmp_path))
    with pytest.raises(ValueError, match="exceeds the model's 64 positions"):
        BertEncoder(BertEncoderConfig(model_path=str(tiny_bert_dir), max_length=256))


def test_offline_default_model_loads_without_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert (resolve_model_path("") / "model.safetensors").is_file()
    encoder = BertEncoder().eval()
    assert encoder.label.startswith("MiniLM-L6")
    with torch.no_grad():
        out = encoder(encoder.collate([["BRCA1", "mutations", "cause", "breast", "cancer", "."]]))
    assert out.shape == (1, 6, 384)
    assert torch.isfinite(out).all()
