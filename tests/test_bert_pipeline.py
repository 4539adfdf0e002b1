"""BERT through the pipeline: the linear tag head, θ's own learning rate, the device
param, the ``bert_cpu`` profile, and stages ``metatrain``/``adapt`` with
``model.encoder: bert`` (HGDA*, HGDA-NEs*, ``bert_finetune``) on a tiny BERT folder.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hgda_core.adapt import fine_tune, scored_test_indices
from hgda_core.data import save_corpus
from hgda_core.device import resolve_device, use_amp
from hgda_core.embeddings import WordVectors
from hgda_core.meta import MetaConfig, MetaLearner
from hgda_core.metatrain import MetaTrainParams
from hgda_core.models import LinearTagDecoder, ModelSpec, Tagger, load_model
from hgda_core.models.bert import BertEncoder, BertEncoderConfig
from stages import adapt as adapt_stage
from stages import metatrain as metatrain_stage
from stages.common import bert_cpu_active, effective_params

DOMAINS = ["Disease", "Gene", "Species"]


# --- the linear tag head (Appendix: BERT feeds a fully connected tag layer) ----------------


def test_linear_head_loss_is_the_summed_word_cross_entropy_per_sentence() -> None:
    torch.manual_seed(0)
    head = LinearTagDecoder(4)
    hidden = torch.randn(2, 3, 4)
    tags = head.encode_tags([["B", "I", "O"], ["O"]], 3)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    logits = head.emission(hidden)
    by_hand = (
        F.cross_entropy(logits[0], tags[0], reduction="sum") + F.cross_entropy(logits[1, :1], tags[1, :1], reduction="sum")
    ) / 2
    torch.testing.assert_close(head.nll(hidden, tags, mask), by_hand)
    best = logits.argmax(-1)
    assert head.decode(hidden, mask) == [[head.labels[i] for i in best[0].tolist()], [head.labels[best[1, 0]]]]


# --- θ's own learning rate (BERT 1e-5, Appendix) -------------------------------------------


def test_theta_lr_scale_sets_the_encoders_inner_rate(make_tagger, tiny_corpora) -> None:
    model = make_tagger(DOMAINS)
    task = tiny_corpora["Disease"][0]["train"]
    batch = model.task_batch(task[:4], task[4:8], "Disease")
    start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    moved = {}
    for scale in (1.0, 0.0, 0.5):
        learner = MetaLearner(model, MetaConfig(beta=0.1, theta_lr_scale=scale), torch.optim.SGD(model.parameters(), lr=0.1))
        fast = learner.adapt(batch)
        moved[scale] = {n: fast[n].detach() - start[n] for n in fast}
    for name, delta in moved[0.0].items():
        if name.startswith("encoder."):
            assert torch.count_nonzero(delta) == 0, name  # θ frozen at scale 0
            torch.testing.assert_close(moved[0.5][name], 0.5 * moved[1.0][name])
        else:
            torch.testing.assert_close(delta, moved[1.0][name])  # heads keep β
    assert any(torch.count_nonzero(d) for n, d in moved[1.0].items() if n.startswith("decoders.Disease."))


def test_fine_tune_theta_lr_zero_trains_only_the_new_decoder(make_tagger, tiny_corpora) -> None:
    model = make_tagger(DOMAINS)
    sentences = tiny_corpora["Drug"][0]["train"][:5]
    adapted = fine_tune(model, "Drug", sentences, steps=2, lr=0.1, seed=1, theta_lr=0.0)
    for (name, a), b in zip(model.encoder.state_dict().items(), adapted.encoder.state_dict().values()):
        assert torch.equal(a, b), name
    fresh = fine_tune(model, "Drug", sentences, steps=0, lr=0.1, seed=1)
    assert not torch.equal(adapted.decoders["Drug"].emission.weight, fresh.decoders["Drug"].emission.weight)


# --- device and the bert_cpu profile --------------------------------------------------------


def test_device_resolution(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu" and resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device: cuda was asked for, but torch sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda, got 'tpu'"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda" and resolve_device("cpu").type == "cpu"
    assert use_amp(torch.device("cuda"), True) and not use_amp(torch.device("cpu"), True)


def _params(encoder: str, profile: str = "auto", device: str = "cpu") -> dict:
    return {
        "device": device, "model": {"encoder": encoder},
        "meta": {"max_iterations": 100, "tasks_per_batch": 8}, "adapt": {"repeats": 20, "steps": 30},
        "bert_cpu": {"profile": profile, "meta": {"max_iterations": 12}, "adapt": {"repeats": 5, "test_sentences": 300}},
    }


def test_bert_cpu_profile_applies_to_bert_on_a_cpu_only() -> None:
    params = _params("bert")
    out = effective_params(params)
    assert out["meta"] == {"max_iterations": 12, "tasks_per_batch": 8}
    assert out["adapt"] == {"repeats": 5, "steps": 30, "test_sentences": 300}
    assert params["meta"]["max_iterations"] == 100  # the input is not modified
    assert not bert_cpu_active(_params("bilstm")) and not bert_cpu_active(_params("bert", "off"))
    assert bert_cpu_active(_params("bilstm", "on")) is False and bert_cpu_active(_params("bert", "on"))
    with pytest.raises(ValueError, match="bert_cpu.profile must be auto, on or off"):
        bert_cpu_active(_params("bert", "sometimes"))


def test_scored_test_subset_is_seeded_and_shared(tiny_corpora) -> None:
    corpus = tiny_corpora["Gene"][0]
    n = len(corpus["test"])
    assert scored_test_indices(corpus, 0, 13) == list(range(n)) == scored_test_indices(corpus, n + 5, 13)
    subset = scored_test_indices(corpus, 4, 13)
    assert len(subset) == 4 == len(set(subset)) and subset == sorted(subset) == scored_test_indices(corpus, 4, 13)
    assert subset != scored_test_indices(corpus, 4, 14)


# --- the stages with model.encoder: bert ---------------------------------------------------


@pytest.fixture
def bert_layout(tmp_path, tiny_corpora, tiny_bert_dir) -> tuple[Path, dict]:
    threads = torch.get_num_threads()
    for corpora in tiny_corpora.values():
        for corpus in corpora:
            save_corpus(corpus, tmp_path / "data" / "processed" / f"{corpus.name}.pkl")
    fast = dataclasses.asdict(MetaTrainParams(tasks_per_batch=2, max_iterations=2, eval_every=2, val_tasks=2))
    params = {
        "shots": [3], "seed": 5, "threads": 1, "device": "cpu", "amp": True,
        "corpora": [c.name for cs in tiny_corpora.values() for c in cs],
        "domains": {d: [c.name for c in cs] for d, cs in tiny_corpora.items()},
        "model": {"encoder": "bert", "bert": {"model_path": str(tiny_bert_dir), "max_length": 32, "dropout": 0.0,
                                              "label": "tiny BERT", "tag_head": "linear", "default_lr": 0.5}},
        "meta": {"held_out": ["Drug"], "methods": ["hgda"], **fast},
        "adapt": {"methods": ["hgda", "bert_finetune"], "repeats": 9, "steps": 2, "default_lr": 0.1,
                  "eval_batch_size": 8},
        "bert_cpu": {"profile": "auto", "meta": {"max_iterations": 1}, "adapt": {"repeats": 2, "test_sentences": 5}},
    }
    yield tmp_path, params
    torch.set_num_threads(threads)


def test_stages_run_hgda_star_and_bert_finetune(bert_layout, tiny_bert_dir, monkeypatch) -> None:
    root, params = bert_layout
    monkeypatch.setenv("HGDA_EXECUTOR", "local")
    monkeypatch.setenv("HGDA_JOBS", "1")
    metatrain_stage.run(params, root, progress=False)
    checkpoint = root / "models" / "metatrain" / "bert" / "Drug-hgda" / "K3.pt"
    metrics = json.loads((root / "reports" / "metatrain" / "bert" / "Drug-hgda" / "metrics.json").read_text())
    assert metrics["K3"]["iterations"] == 1  # the bert_cpu profile's meta.max_iterations
    meta_trained = load_model(checkpoint, None)
    assert isinstance(meta_trained.encoder, BertEncoder) and meta_trained.tag_head == "linear"

    starts = {}
    import hgda_core.adapt as adapt_mod

    real = adapt_mod.run_adaptation

    def recording(corpus, k, methods, pretrained, *args, **kwargs):
        starts.update(pretrained)
        return real(corpus, k, methods, pretrained, *args, **kwargs)

    monkeypatch.setattr(adapt_mod, "run_adaptation", recording)
    adapt_stage.run(params, root, progress=False)
    finetune_base = starts["bert_finetune"]
    pretrained = BertEncoder(BertEncoderConfig(model_path=str(tiny_bert_dir), max_length=32))
    # bert_finetune starts from the folder's pre-trained weights, not the meta-trained ones.
    for (name, a), b in zip(pretrained.state_dict().items(), finetune_base.encoder.state_dict().values()):
        assert torch.equal(a, b), name
    assert not all(torch.equal(a, b) for a, b in zip(finetune_base.encoder.state_dict().values(),
                                                      meta_trained.encoder.state_dict().values()))
    assert list(finetune_base.decoders) == []
    with open(root / "reports" / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 * 2 * 2  # the held-out Drug corpus × 2 draws (profile) × 2 methods
    assert {(r["encoder"], r["model"], r["test_sentences"]) for r in rows} == {("bert", "tiny BERT", "5")}
    assert {r["method"] for r in rows} == {"hgda", "bert_finetune"}
    by_draw = {}
    for r in rows:
        by_draw.setdefault(r["repetition"], set()).add(r["sample"])
    assert all(len(s) == 1 for s in by_draw.values())


def test_bert_finetune_needs_the_bert_encoder(bert_layout) -> None:
    root, params = bert_layout
    params["model"]["encoder"] = "bilstm"
    tiny = {"char_dim": 4, "char_cnn": 4, "char_lstm": 4, "hidden": 6}
    params["model"].update(tiny)
    (root / "data" / "embeddings").mkdir(parents=True)
    WordVectors.build(["a"], np.zeros((1, 4), dtype=np.float32)).save(root / "data" / "embeddings" / "vectors.npz")
    with pytest.raises(ValueError, match="method bert_finetune needs model.encoder: bert"):
        adapt_stage.plan(params, root)


def test_model_spec_splits_the_model_section() -> None:
    spec = ModelSpec.from_params({"encoder": "bilstm", "hidden": 7, "bert": {"default_lr": 3e-5}})
    assert spec.bilstm.hidden == 7 and spec.theta_lr is None
    spec = ModelSpec.from_params({"encoder": "bert", "bert": {"default_lr": 3e-5, "max_length": 64, "tag_head": "crf"}})
    assert spec.theta_lr == 3e-5 and spec.bert_config().max_length == 64
    with pytest.raises(ValueError, match="tag_head must be one of crf, linear"):
        Tagger(BertEncoder(BertEncoderConfig()), DOMAINS, DOMAINS, tag_head="softmax")
