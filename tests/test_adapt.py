"""K-shot adaptation: paired draws, the fine-tuning update, end-to-end rows, the stage's outputs."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import time
from pathlib import Path
from typing import Iterator

import pytest
import torch

from hgda_core import adapt as adapt_mod
from hgda_core.adapt import (
    COLUMNS, AdaptConfig, draw_for, draw_sample, evaluate, fine_tune, run_adaptation, scratch_builder, summarise,
)
from hgda_core.data import save_corpus
from hgda_core.io import csv_text
from hgda_core.metatrain import derive_seed
from hgda_core.metrics import entity_scores
from hgda_core.models import build_tagger, load_tagger
from stages import adapt as stage
from tests.conftest import TINY

SOURCES = ("Drug", "Gene", "Species")


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str = "") -> bool:
    keys = [k for k in a if k.startswith(prefix)]
    return bool(keys) and all(torch.equal(a[k], b[k]) for k in keys)


# --- draws ---------------------------------------------------------------------------


def test_draw_is_a_function_of_seed_corpus_k_repetition() -> None:
    first = draw_sample("NCBI-disease", 10, 3, 5000, seed=13)
    assert first == draw_sample("NCBI-disease", 10, 3, 5000, seed=13)
    assert len(first) == len(set(first)) == 10 and first == sorted(first)
    assert all(0 <= i < 5000 for i in first)
    others = [draw_sample("NCBI-disease", 10, r, 5000, seed=13) for r in range(10)]
    assert len({tuple(d) for d in others}) == 10  # different r → different draws
    assert draw_sample("BC2GM", 10, 3, 5000, seed=13) != first
    assert draw_sample("NCBI-disease", 10, 3, 5000, seed=14) != first


def test_k_larger_than_the_train_split_is_a_clear_error(tiny_corpora) -> None:
    corpus = tiny_corpora["Disease"][0]
    with pytest.raises(ValueError, match=r"corpus disease-corpus: train split has 60 sentences, fewer than K = 61"):
        draw_for(corpus, 61, 0, seed=13)


def test_with_entity_draws_only_sentences_with_an_entity(tiny_corpora) -> None:
    corpus = tiny_corpora["Disease"][0]
    train = corpus["train"]
    for r in range(5):
        assert all(train[i].has_entity for i in draw_for(corpus, 10, r, 13, "with_entity"))
    with pytest.raises(ValueError, match="needs has_entity"):
        draw_sample("x", 2, 0, 10, 13, "with_entity")
    n_ne = sum(s.has_entity for s in train)
    with pytest.raises(ValueError, match=f"train sentences with an entity has {n_ne} sentences"):
        draw_for(corpus, n_ne + 1, 0, 13, "with_entity")


# --- fine-tuning ---------------------------------------------------------------------


def test_fine_tune_trains_encoder_and_a_fresh_decoder_only(make_tagger, tiny_corpora) -> None:
    model = make_tagger(SOURCES)
    before, rng_before = _state(model), torch.get_rng_state()
    sentences = tiny_corpora["Disease"][0]["train"][:5]
    adapted = fine_tune(model, "Disease", sentences, steps=3, lr=0.1, seed=7)

    assert _same(before, _state(model)) and "Disease" not in model.decoders  # input untouched
    assert torch.equal(rng_before, torch.get_rng_state())  # global generator untouched
    after = _state(adapted)
    assert set(adapted.decoders) == {*SOURCES, "Disease"}
    for domain in SOURCES:  # source decoders: unchanged and unused
        assert _same(before, after, f"decoders.{domain}.")
        assert all(p.grad is None for p in adapted.decoders[domain].parameters())
    assert _same(before, after, "domain_head.")
    assert all(p.grad is None for p in adapted.domain_head.parameters())
    assert not _same(before, after, "encoder.lstm.")  # θ is adapted
    assert all(p.grad is not None for p in adapted.decoders["Disease"].parameters())
    # Shares the frozen word vectors instead of copying them; copies everything trainable.
    assert adapted.encoder.word_embedding.weight is model.encoder.word_embedding.weight
    assert adapted.encoder.lstm.weight_ih_l0.data_ptr() != model.encoder.lstm.weight_ih_l0.data_ptr()
    # Seeded: the same call gives the same model.
    again = fine_tune(model, "Disease", sentences, steps=3, lr=0.1, seed=7)
    assert _same(after, _state(again))


def test_fine_tune_replaces_an_existing_decoder_with_a_fresh_one(make_tagger, tiny_corpora) -> None:
    model = make_tagger(("Disease", "Gene"))
    old = _state(model)
    adapted = fine_tune(model, "Disease", tiny_corpora["Disease"][0]["train"][:5], steps=0, lr=0.1, seed=3)
    new = _state(adapted)
    assert not any(torch.equal(old[k], new[k]) for k in old if k.startswith("decoders.Disease.emission"))
    assert _same(old, new, "encoder.")  # 0 steps: θ as it was


@pytest.mark.parametrize("encoder_rate", [1.0, 0.1, 0.0])
def test_one_step_equals_a_hand_written_sgd_update(make_tagger, tiny_corpora, encoder_rate) -> None:
    """momentum 0, no weight decay, no clipping: θ' = θ − rate·lr ∇L^lab (rate 0: θ
    unchanged), φ' = φ − lr ∇L^lab."""
    model = make_tagger(SOURCES)
    sentences = tiny_corpora["Disease"][0]["train"][:6]
    lr, seed = 0.05, 11
    adapted = fine_tune(model, "Disease", sentences, steps=1, lr=lr, momentum=0.0, weight_decay=0.0,
                        grad_clip=None, seed=seed, encoder_rate=encoder_rate)
    manual = copy.deepcopy(model)
    torch.manual_seed(seed)
    manual.add_decoder("Disease")
    batch = manual.task_batch(sentences, [], "Disease")
    loss, _ = manual(batch, batch.support, None)
    names = [n for n, p in manual.named_parameters()
             if p.requires_grad and (n.startswith("encoder.") or n.startswith("decoders.Disease."))]
    params = dict(manual.named_parameters())
    grads = torch.autograd.grad(loss, [params[n] for n in names])
    rate = {n: encoder_rate * lr if n.startswith("encoder.") else lr for n in names}
    got = dict(adapted.named_parameters())
    for n, g in zip(names, grads):
        torch.testing.assert_close(got[n].detach(), params[n].detach() - rate[n] * g, rtol=1e-5, atol=1e-6)
    assert all(p.requires_grad for p in adapted.encoder.parameters() if p is not adapted.encoder.word_embedding.weight)


def test_probe_steps_train_the_decoder_alone_first(make_tagger, tiny_corpora) -> None:
    model = make_tagger(SOURCES)
    sentences = tiny_corpora["Disease"][0]["train"][:6]
    seen = []
    probed = fine_tune(model, "Disease", sentences, steps=0, lr=0.1, seed=3, probe_steps=2,
                       on_step=lambda i, m: seen.append(i))
    assert seen == [1, 2]
    before, after = _state(model), _state(probed)
    assert _same(before, after, "encoder.")  # the probe leaves θ alone
    fresh = fine_tune(model, "Disease", sentences, steps=0, lr=0.1, seed=3)
    assert not _same(_state(fresh), after, "decoders.Disease.")  # ... and trains the decoder
    both = fine_tune(model, "Disease", sentences, steps=1, lr=0.1, seed=3, probe_steps=2)
    assert not _same(before, _state(both), "encoder.lstm.")  # then the joint step moves θ


def test_decoder_starts_mean_best_source_and_shared(make_tagger, tiny_corpora) -> None:
    """0 steps show the start: the parameter-wise mean of the source decoders, the source
    decoder with the lowest loss on the K sentences, the learned shared start; fresh where
    a model has none of them (scratch)."""
    from hgda_core.adapt import SHARED_DECODER

    model = make_tagger(SOURCES, seed=4)
    sentences = tiny_corpora["Disease"][0]["train"][:6]
    start = lambda how, m=model: _state(fine_tune(m, "Disease", sentences, steps=0, lr=0.1, seed=3, decoder_init=how))  # noqa: E731
    sources = {d: model.decoders[d].state_dict() for d in SOURCES}
    mean = start("mean")
    for key in sources["Gene"]:
        torch.testing.assert_close(mean[f"decoders.Disease.{key}"], sum(sources[d][key] for d in SOURCES) / 3)
    model.eval()
    losses = {}
    with torch.no_grad():
        for d in SOURCES:
            batch = model.task_batch(sentences, [], d)
            losses[d] = float(model(batch, batch.support, None)[0])
    best = min(losses, key=losses.get)
    chosen = start("best_source")
    assert all(torch.equal(chosen[f"decoders.Disease.{k}"], v) for k, v in sources[best].items())
    fresh = start("fresh")
    assert _same(start("shared"), fresh, "decoders.Disease.")  # no shared start in this model
    shared = make_tagger((*SOURCES, SHARED_DECODER), seed=5)
    got = start("shared", shared)
    assert all(torch.equal(got[f"decoders.Disease.{k}"], v) for k, v in shared.decoders[SHARED_DECODER].state_dict().items())
    scratch = make_tagger((), seed=4)
    assert _same(start("mean", scratch), start("fresh", scratch), "decoders.Disease.")


# --- end to end ----------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path, make_tagger) -> Path:
    path = tmp_path / "K5.pt"
    make_tagger(SOURCES, seed=1).save(path, held_out="Disease", method="hgda", shots=5)
    return path


def test_run_adaptation_rows(checkpoint, tiny_vectors, tiny_corpora) -> None:
    pretrained = load_tagger(checkpoint, tiny_vectors)
    before = _state(pretrained)
    corpus = tiny_corpora["Disease"][0]
    config = AdaptConfig(methods=["hgda", "transfer", "scratch"], repeats=3, steps=2, eval_batch_size=16)
    seen: list[dict] = []
    rows = run_adaptation(corpus, 5, config.methods, {"hgda": pretrained, "transfer": pretrained}, config,
                          seed=13, model_label="tiny", scratch=scratch_builder(lambda d, c: build_tagger(tiny_vectors, TINY, d, c)),
                          on_row=seen.append)
    assert len(rows) == 3 * 3 and seen == rows
    assert all(tuple(row) == COLUMNS for row in rows)
    assert [r["method"] for r in rows[:3]] == ["hgda", "transfer", "scratch"]
    assert {r["repetition"] for r in rows} == {0, 1, 2}
    assert sum(r["method"] == "scratch" for r in rows) == 3
    gold = sum(s.n_mentions for s in corpus["test"])
    for row in rows:
        assert (row["encoder"], row["model"], row["corpus"], row["domain"], row["shots"]) == (
            "bilstm", "tiny", "disease-corpus", "Disease", 5)
        assert row["tp"] + row["fn"] == gold
        assert 0.0 <= row["f1"] <= 1.0 and row["seconds"] > 0
        sample = [int(i) for i in row["sample"].split()]
        assert sample == draw_for(corpus, 5, row["repetition"], 13)
        assert row["sample_entities"] == sum(corpus["train"][i].n_mentions for i in sample)
    for r in range(3):  # paired design: one draw per repetition, whatever the method
        assert len({row["sample"] for row in rows if row["repetition"] == r}) == 1
    assert _same(before, _state(pretrained))  # the loaded checkpoint is never modified
    summary = summarise(rows)["bilstm"]
    assert summary["scratch"]["disease-corpus"]["K5"]["n"] == 3
    assert set(summary["hgda"]["disease-corpus"]["K5"]["f1"]) == {"mean", "std"}


def test_evaluate_equals_seqeval_scores_of_the_real_predictions(make_tagger, tiny_corpora) -> None:
    """``evaluate`` scores the model's own Viterbi tags (an untrained tagger: far from perfect)."""
    model = make_tagger(SOURCES)
    model.add_decoder("Disease")
    test = tiny_corpora["Disease"][0]["test"]
    expected = entity_scores([s.tags for s in test], model.predict(test, "Disease")).as_dict()
    assert evaluate(model, "Disease", test, batch_size=7) == expected
    assert expected["f1"] < 0.9  # a gold-against-gold scorer would give 1.0
    gold = sum(s.n_mentions for s in test)
    assert expected["tp"] + expected["fn"] == gold


DROPOUT = dataclasses.replace(TINY, dropout=0.3)


def test_paired_design_same_sentences_decoder_and_dropout_for_every_method(tiny_vectors, tiny_corpora, monkeypatch) -> None:
    """One tagger under two method names, dropout on: identical adapted weights and rows
    (apart from ``seconds``), equal to a direct ``fine_tune`` with the documented seed
    ``derive_seed(seed, "adapt-tune", corpus, K, r)``."""
    torch.manual_seed(3)
    tagger = build_tagger(tiny_vectors, DROPOUT, list(SOURCES), list(SOURCES))
    corpus = tiny_corpora["Disease"][0]
    config = AdaptConfig(methods=["hgda", "metaner"], repeats=2, steps=3, eval_batch_size=16)
    adapted: list[tuple[str, dict[str, torch.Tensor]]] = []
    real = adapt_mod.evaluate

    def capture(model, domain, test, *args):
        adapted.append((domain, _state(model)))
        return real(model, domain, test, *args)

    monkeypatch.setattr(adapt_mod, "evaluate", capture)
    rows = run_adaptation(corpus, 5, config.methods, {"hgda": tagger, "metaner": tagger}, config, seed=13,
                          model_label="tiny")
    assert [r["method"] for r in rows] == ["hgda", "metaner"] * 2 and len(adapted) == 4
    drop = lambda row: {k: v for k, v in row.items() if k not in ("method", "seconds")}  # noqa: E731
    lr = adapt_mod.adaptation_lr(config, 5)
    for r in range(2):
        (_, hgda), (_, metaner) = adapted[2 * r : 2 * r + 2]
        assert hgda.keys() == metaner.keys() and all(torch.equal(hgda[k], metaner[k]) for k in hgda)
        assert drop(rows[2 * r]) == drop(rows[2 * r + 1])
        sentences = [corpus["train"][i] for i in draw_for(corpus, 5, r, 13)]
        seed = derive_seed(13, "adapt-tune", corpus.name, 5, r)
        direct = fine_tune(tagger, "Disease", sentences, config.steps, lr, config.momentum, config.weight_decay,
                           config.grad_clip, seed)
        assert all(torch.equal(v, hgda[k]) for k, v in _state(direct).items())
    # The dropout masks matter: the same start, sentences and decoder initialisation with
    # dropout masks from another generator state give other weights.
    sentences = [corpus["train"][i] for i in draw_for(corpus, 5, 0, 13)]
    seed = derive_seed(13, "adapt-tune", corpus.name, 5, 0)
    torch.manual_seed(seed)
    other = copy.deepcopy(tagger)
    other.add_decoder("Disease")
    other.train()
    torch.manual_seed(seed + 1)  # same decoder weights (already drawn), other masks
    batch = other.task_batch(sentences, [], "Disease")
    loss_a, _ = other(batch, batch.support, None)
    loss_b, _ = other(batch, batch.support, None)
    assert not torch.equal(loss_a, loss_b)


def test_k_equal_to_the_train_split_uses_every_sentence(tiny_corpora) -> None:
    corpus = tiny_corpora["Disease"][0]
    assert draw_for(corpus, 60, 0, seed=13) == list(range(60))


@pytest.mark.parametrize("k", [0, -3])
def test_k_not_positive_is_a_clear_error(tiny_corpora, k) -> None:
    with pytest.raises(ValueError, match=f"K must be positive, got {k}"):
        draw_for(tiny_corpora["Disease"][0], k, 0, seed=13)


# --- the stage -----------------------------------------------------------------------


@pytest.fixture
def layout(workspace, tiny_corpora) -> Iterator[tuple[Path, dict]]:
    """The :func:`workspace` with the meta-training stage's checkpoints of hgda with
    Disease held out (K = 3, 4); and the params of both stages."""
    from hgda_core.metatrain import MetaTrainParams
    from stages import metatrain as metatrain_stage

    tmp_path = workspace
    fast = dataclasses.asdict(MetaTrainParams(tasks_per_batch=2, max_iterations=2, eval_every=2, val_tasks=2))
    params = {
        "shots": [3, 4], "seed": 13, "threads": 1,
        "corpora": [c.name for cs in tiny_corpora.values() for c in cs],
        "domains": {d: [c.name for c in cs] for d, cs in tiny_corpora.items()},
        "model": {"encoder": "bilstm", **dataclasses.asdict(TINY)},
        "meta": {"held_out": ["Disease"], "methods": ["hgda"], **fast},
        "adapt": {"methods": ["hgda", "scratch"], "repeats": 2, "steps": 2, "default_lr": 0.01,
                  "momentum": 0.9, "weight_decay": 1e-6, "grad_clip": 5.0, "sampling": "uniform",
                  "eval_batch_size": 32},
    }
    metatrain_stage.run(params, tmp_path, progress=False)
    yield tmp_path, params


def _read_rows(root: Path) -> list[dict]:
    with open(root / "reports" / "scores.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _without_seconds(text: str) -> list[str]:
    return [line.rsplit(",", 1)[0] for line in text.splitlines()]


def test_stage_writes_scores_and_metrics(layout) -> None:
    root, params = layout
    stage.run(params, root, progress=False)
    with open(root / "reports" / "scores.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == COLUMNS
    assert len(rows) == 2 * 2 * 2  # K × repeats × methods, the held-out domain's one corpus
    assert {r["corpus"] for r in rows} == {"disease-corpus"}
    assert {r["model"] for r in rows} == {"BiLSTM-CRF (word vectors 8-d)"}
    assert [(r["shots"], r["repetition"], r["method"]) for r in rows][:4] == [
        ("3", "0", "hgda"), ("3", "0", "scratch"), ("3", "1", "hgda"), ("3", "1", "scratch")]
    metrics = json.loads((root / "reports" / "adapt_metrics.json").read_text())
    assert set(metrics) == {"bilstm"}
    assert set(metrics["bilstm"]) == {"hgda", "scratch"}
    assert set(metrics["bilstm"]["hgda"]["disease-corpus"]) == {"K3", "K4"}


def test_rows_are_the_same_on_every_executor(layout, monkeypatch, tmp_path) -> None:
    """The local pool and submitit's local executor give the rows of one process."""
    root, params = layout
    texts = []
    for executor, jobs in (("local", "1"), ("local", "2"), ("submitit-local", "1")):
        monkeypatch.setenv("HGDA_EXECUTOR", executor)
        monkeypatch.setenv("HGDA_JOBS", jobs)
        monkeypatch.setenv("HGDA_CELLS", str(tmp_path / f"cells-{executor}-{jobs}"))
        monkeypatch.setenv("HGDA_SLURM_LOGS", str(tmp_path / "submitit"))
        stage.run(params, root, progress=False)
        texts.append(_without_seconds((root / "reports" / "scores.csv").read_text()))
    assert len(texts[0]) == 1 + 8
    assert texts[0] == texts[1] == texts[2]


def test_a_run_reuses_stored_cells_and_scores_hold_only_the_named_ones(layout, monkeypatch) -> None:
    """Nothing accumulates: a run of K = 4 alone writes K = 4's rows only, computed by no
    one (they are stored); more draws compute only the new blocks."""
    import hgda_core.grid as grid

    root, params = layout
    stage.run(params, root, progress=False)
    both = _read_rows(root)
    computed = []
    real = grid.compute_adapt
    monkeypatch.setattr(stage, "compute_adapt", lambda cell: computed.append(cell.label) or real(cell))
    stage.run({**params, "shots": [4]}, root, progress=False)
    assert computed == []
    assert _read_rows(root) == [r for r in both if r["shots"] == "4"]
    metrics = json.loads((root / "reports" / "adapt_metrics.json").read_text())
    assert set(metrics["bilstm"]["hgda"]["disease-corpus"]) == {"K4"}
    params["adapt"]["repeats"] = 7  # draws 0-4 (a new block: 0-1 was a block of its own) and 5-6
    stage.run({**params, "shots": [4]}, root, progress=False)
    assert sorted(computed) == sorted(f"{m} disease-corpus K=4 draws {d}" for m in ("hgda", "scratch") for d in ("0-4", "5-6"))
    rows = _read_rows(root)
    assert len(rows) == 7 * 2
    # a draw's rows do not depend on the block it was computed in
    first = {(r["repetition"], r["method"]): r for r in both if r["shots"] == "4"}
    assert all(_without_seconds(",".join(r.values())) == _without_seconds(",".join(first[(r["repetition"], r["method"])].values()))
               for r in rows if (r["repetition"], r["method"]) in first)


def test_an_interrupted_stage_writes_nothing_and_continues_at_the_cell(layout, monkeypatch) -> None:
    import hgda_core.grid as grid

    root, params = layout
    (root / "reports").mkdir(exist_ok=True)
    old = ",".join(COLUMNS) + "\n"
    (root / "reports" / "scores.csv").write_text(old)
    calls = {"n": 0}
    real = adapt_mod.evaluate

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the first draw of the second cell
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(adapt_mod, "evaluate", failing)
    with pytest.raises(KeyboardInterrupt):
        stage.run(params, root, progress=False)
    assert (root / "reports" / "scores.csv").read_text() == old
    assert not (root / "reports" / "adapt_metrics.json").exists()
    computed = []
    real_cell = grid.compute_adapt
    monkeypatch.setattr(stage, "compute_adapt", lambda cell: computed.append(cell.label) or real_cell(cell))
    stage.run(params, root, progress=False)
    assert len(computed) == 4 - 1 and len(_read_rows(root)) == 8


def test_stage_names_a_missing_or_foreign_checkpoint_and_a_method_without_one(layout, make_tagger) -> None:
    root, params = layout
    params["adapt"]["methods"] = ["metaner"]
    with pytest.raises(ValueError, match="adapt.methods has 'metaner', which meta.methods does not meta-train"):
        stage.run(params, root, progress=False)
    params["adapt"]["methods"] = ["hgda"]
    checkpoint = root / "models" / "metatrain" / "bilstm" / "Disease-hgda" / "K4.pt"
    make_tagger(SOURCES).save(checkpoint)
    with pytest.raises(ValueError, match=r"K4.pt: checkpoint of meta-training cell None, params.yaml names \w+; run stage metatrain"):
        stage.run(params, root, progress=False)
    checkpoint.unlink()
    with pytest.raises(FileNotFoundError, match=r"K4.pt: no checkpoint; run stage metatrain first"):
        stage.run(params, root, progress=False)


def test_stage_rejects_k_larger_than_a_train_split_before_any_work(layout, monkeypatch) -> None:
    root, params = layout
    params["shots"], params["adapt"]["methods"] = [3, 61], ["scratch"]
    monkeypatch.setattr(stage, "compute_adapt", lambda cell: pytest.fail(f"adapted {cell.label} before checking K"))
    with pytest.raises(ValueError, match=r"corpus disease-corpus: train split has 60 sentences, fewer than K = 61"):
        stage.run(params, root, progress=False)
    assert not (root / "reports" / "scores.csv").exists()


def test_read_rows_names_a_malformed_scores_file(tmp_path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("encoder,model\nold,rows\n")
    with pytest.raises(ValueError, match=r"scores\.csv:1: header 'encoder,model' is not the expected"):
        stage.read_rows(path)
    path.write_text(",".join(COLUMNS) + "\n" + "bilstm,m,hgda,disease-corpus,Disease,ten\n")
    with pytest.raises(ValueError, match=rf"scores\.csv:2: expected {len(COLUMNS)} fields"):
        stage.read_rows(path)


def test_plan_summary_estimates_from_the_committed_rows(layout) -> None:
    from hgda_core.cellstore import CellStore

    root, params = layout
    stage.run(params, root, progress=False)
    scores = root / "reports" / "scores.csv"
    rows = _read_rows(root)
    for row in rows:
        row["seconds"] = "90.0"
    scores.write_text(csv_text(rows, COLUMNS))
    cells = stage.plan(params, root)
    assert stage.summary(cells, CellStore(root / "cells"), scores, 2) == \
        "adapt: 4 cells named by params.yaml, 4 in the cell store, 0 to run"
    text = stage.summary(cells, CellStore(root / "empty"), scores, 2)
    assert text == ("adapt: 4 cells named by params.yaml, 0 in the cell store, 4 to run; "
                    "≈ 0.2 core-hours by the committed rows' seconds, ≈ 0.1 h on 2 worker(s)")


# --- details found by the mutation run (tests/MUTATION.md) ----------------------------


def test_the_committed_draws_are_reproduced_from_the_documented_seed() -> None:
    """Every draw of ``reports/scores.csv`` follows from ``derive_seed(seed, "adapt-draw",
    corpus, K, r)`` and the train-split size of ``reports/corpus_stats.json``: a change of
    the derivation would silently change which sentences a reproduction adapts on."""
    root = Path(__file__).resolve().parents[1]
    stats = json.loads((root / "reports" / "corpus_stats.json").read_text())["corpora"]
    with open(root / "reports" / "scores.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["method"] == "hgda" and r["encoder"] == "bilstm"]
    assert len({r["shots"] for r in rows}) >= 2 and len({r["corpus"] for r in rows}) >= 2
    for row in rows[:: max(1, len(rows) // 40)]:
        k, r = int(row["shots"]), int(row["repetition"])
        n_train = stats[row["corpus"]]["train"]["sentences"]
        assert draw_sample(row["corpus"], k, r, n_train, 13) == [int(i) for i in row["sample"].split()], row


def test_protocol_options_are_checked() -> None:
    with pytest.raises(ValueError, match="adapt.decoder_init must be one of fresh, mean, best_source, shared, got 'zero'"):
        AdaptConfig(decoder_init="zero")
    with pytest.raises(ValueError, match="adapt.eval_split must be one of test, devel, got 'train'"):
        AdaptConfig(eval_split="train")
    with pytest.raises(ValueError, match="adapt.encoder_rate and adapt.probe_steps must be >= 0"):
        AdaptConfig(encoder_rate=-1)


def test_devel_scoring_reads_the_devel_split(tiny_corpora) -> None:
    from hgda_core.adapt import scored_test

    corpus = tiny_corpora["Gene"][0]
    assert scored_test(corpus, AdaptConfig(eval_split="devel"), 13) == list(corpus["devel"])
    assert scored_test(corpus, AdaptConfig(), 13) == list(corpus["test"])


def test_config_bounds_and_messages() -> None:
    AdaptConfig(repeats=1, steps=0)  # the smallest valid values
    with pytest.raises(ValueError, match=r"adapt.repeats must be > 0 and adapt.steps >= 0, got 0, 30"):
        AdaptConfig(repeats=0)
    with pytest.raises(ValueError, match=r"adapt.repeats must be > 0 and adapt.steps >= 0, got 20, -1"):
        AdaptConfig(steps=-1)
    with pytest.raises(ValueError, match=r"adapt.sampling must be one of uniform, with_entity, got 'all'"):
        AdaptConfig(sampling="all")
    with pytest.raises(ValueError, match=r"^sampling must be one of uniform, with_entity, got 'all'$"):
        draw_sample("c", 2, 0, 10, 13, "all")
    with pytest.raises(ValueError, match=r"^sampling 'with_entity' needs has_entity, one flag per train sentence$"):
        draw_sample("c", 2, 0, 10, 13, "with_entity", [True] * 9)
    assert len(draw_sample("c", 1, 0, 10, 13)) == 1


def test_draws_differ_by_repetition_and_k_through_draw_for(tiny_corpora) -> None:
    corpus = tiny_corpora["Disease"][0]
    draws = {tuple(draw_for(corpus, 5, r, 13)) for r in range(6)}
    assert len(draws) == 6
    small, large = set(draw_for(corpus, 5, 0, 13)), set(draw_for(corpus, 10, 0, 13))
    assert not small <= large  # K enters the seed: not the first 5 of the same permutation


def test_fine_tune_defaults_are_the_appendix_values_and_weight_decay_acts(make_tagger, tiny_corpora) -> None:
    model = make_tagger(SOURCES)
    sentences = tiny_corpora["Disease"][0]["train"][:4]
    implicit = _state(fine_tune(model, "Disease", sentences, steps=3, lr=0.5))
    explicit = _state(fine_tune(model, "Disease", sentences, 3, 0.5, 0.9, 1e-6, 5.0, 0))
    assert all(torch.equal(implicit[k], explicit[k]) for k in implicit)
    decayed = _state(fine_tune(model, "Disease", sentences, 3, 0.5, 0.9, 0.5, 5.0, 0))
    assert not _same(explicit, decayed, "encoder.lstm")
    with pytest.raises(ValueError, match=r"^fine_tune needs at least one sentence$"):
        fine_tune(model, "Disease", [], 1, 0.1)


def test_an_adapted_copy_shares_the_frozen_word_vectors(make_tagger, tiny_corpora) -> None:
    model = make_tagger(SOURCES)
    adapted = fine_tune(model, "Disease", tiny_corpora["Disease"][0]["train"][:3], steps=1, lr=0.1)
    shared = [name for name in ("vectors", "_word_ids") if getattr(model.encoder, name, None) is not None]
    assert shared, "the tiny tagger has a frozen table to share"
    for name in shared:
        assert getattr(adapted.encoder, name) is getattr(model.encoder, name), name


def test_adaptation_lr_is_eq3_with_the_configured_reference() -> None:
    config = AdaptConfig(default_lr=0.2, reference_k=8)
    assert adapt_mod.adaptation_lr(config, 2) == pytest.approx(0.1)
    assert adapt_mod.adaptation_lr(config, 32, default_lr=0.05) == pytest.approx(0.1)


def test_test_subsets_are_seeded_distinct_and_of_the_asked_size(tiny_corpora) -> None:
    corpus = tiny_corpora["Disease"][0]
    n = len(corpus["test"])
    one = adapt_mod.scored_test_indices(corpus, 1, 13)
    assert len(one) == 1
    most = adapt_mod.scored_test_indices(corpus, n - 1, 13)
    assert len(set(most)) == n - 1 == len(most)
    assert adapt_mod.scored_test_indices(corpus, n, 13) == list(range(n))


def _tiny_run(checkpoint, tiny_vectors, tiny_corpora, **overrides):
    pretrained = load_tagger(checkpoint, tiny_vectors)
    config = AdaptConfig(**{"methods": ["hgda", "scratch"], "repeats": 2, "steps": 2, "eval_batch_size": 16, **overrides})
    calls: list[int] = []
    build = scratch_builder(lambda d, c: build_tagger(tiny_vectors, TINY, d, c))

    def scratch(seed: int):
        calls.append(seed)
        return build(seed)

    return pretrained, config, calls, scratch


def test_run_adaptation_honours_repetitions_sampling_subsets_and_theta_rate(checkpoint, tiny_vectors, tiny_corpora, monkeypatch) -> None:
    corpus = tiny_corpora["Disease"][0]
    pretrained, config, calls, scratch = _tiny_run(checkpoint, tiny_vectors, tiny_corpora, sampling="with_entity",
                                                   test_sentences=7)
    seen: list[dict] = []
    real = adapt_mod.fine_tune
    monkeypatch.setattr(adapt_mod, "fine_tune", lambda *a, **kw: seen.append({"args": a, **kw}) or real(*a, **kw))
    started = time.perf_counter()
    rows = run_adaptation(corpus, 5, config.methods, {"hgda": pretrained}, config, 13, "tiny", scratch,
                          repetitions=[1], theta_lr=0.02)  # fmt: skip
    wall = time.perf_counter() - started
    assert [(r["repetition"], r["method"]) for r in rows] == [(1, "hgda"), (1, "scratch")]
    assert calls == [derive_seed(13, "adapt-scratch", corpus.name, 5, 1)]  # the documented scratch seed
    assert all(r["sample_entities"] >= 5 and r["sampling"] == "with_entity" for r in rows)
    assert all(r["test_sentences"] == 7 for r in rows)
    assert all(0 < r["seconds"] <= wall for r in rows)
    assert seen[0]["args"][-1] == pytest.approx(adapt_mod.adaptation_lr(config, 5, 0.02))  # θ's own eq. 3 rate
    assert (rows[0]["steps"], rows[0]["lr"]) == (2, round(adapt_mod.adaptation_lr(config, 5), 6))
    for row in rows:  # scores rounded to 6 decimals, as written to scores.csv
        assert all(row[m] == round(row[m], 6) for m in ("precision", "recall", "f1"))


def test_scores_are_rounded_to_six_decimals(checkpoint, tiny_vectors, tiny_corpora, monkeypatch) -> None:
    corpus = tiny_corpora["Disease"][0]
    pretrained, config, _, scratch = _tiny_run(checkpoint, tiny_vectors, tiny_corpora, repeats=1)
    third = {"precision": 1 / 3, "recall": 2 / 3, "f1": 4 / 9, "tp": 1, "fp": 2, "fn": 1}
    monkeypatch.setattr(adapt_mod, "evaluate", lambda *a, **kw: dict(third))
    row = run_adaptation(corpus, 5, ["hgda"], {"hgda": pretrained}, config, 13, "tiny")[0]
    assert (row["precision"], row["recall"], row["f1"], row["tp"]) == (0.333333, 0.666667, 0.444444, 1)


def test_summarise_std_is_the_sample_std_and_zero_for_one_draw() -> None:
    rows = [{"encoder": "bilstm", "method": "hgda", "corpus": "c", "shots": 5, "f1": f, "precision": 0.5, "recall": 0.5}
            for f in (0.1, 0.2, 0.6)] + [{"encoder": "bilstm", "method": "hgda", "corpus": "c", "shots": 10, "f1": 0.123456,
                                          "precision": 0.5, "recall": 0.5}]  # fmt: skip
    out = summarise(rows)["bilstm"]["hgda"]["c"]
    assert out["K5"]["f1"] == {"mean": 0.3, "std": 0.2646}  # sqrt(((0.2)^2 + 0.1^2 + 0.3^2) / 2)
    assert out["K10"]["f1"] == {"mean": 0.1235, "std": 0.0} and out["K10"]["n"] == 1


def test_on_step_sees_every_step_and_scoring_there_leaves_the_trajectory_unchanged(make_tagger, tiny_corpora) -> None:
    model = make_tagger(SOURCES)
    corpus = tiny_corpora["Disease"][0]
    sentences, test = corpus["train"][:5], corpus["test"]
    plain = _state(fine_tune(model, "Disease", sentences, steps=4, lr=0.3, seed=2))
    seen: list[tuple[int, float]] = []
    scored = fine_tune(model, "Disease", sentences, steps=4, lr=0.3, seed=2,
                       on_step=lambda i, m: seen.append((i, evaluate(m, "Disease", test)["f1"])))
    assert [i for i, _ in seen] == [1, 2, 3, 4]
    assert all(torch.equal(plain[k], v) for k, v in _state(scored).items())
    assert seen[-1][1] == evaluate(scored, "Disease", test)["f1"]


def test_run_adaptation_names_what_is_missing(tiny_corpora) -> None:
    corpus = tiny_corpora["Disease"][0]
    config = AdaptConfig(methods=["scratch"], repeats=1, steps=1)
    with pytest.raises(ValueError, match=r"^method 'scratch' needs a scratch builder$"):
        run_adaptation(corpus, 5, ["scratch"], {}, config, 13, "tiny")
    with pytest.raises(ValueError, match=r"^no meta-trained tagger for method 'hgda' \(target disease-corpus\)$"):
        run_adaptation(corpus, 5, ["hgda"], {}, config, 13, "tiny")


def test_summarise_std_of_two_draws() -> None:
    rows = [{"encoder": "bilstm", "method": "hgda", "corpus": "c", "shots": 5, "f1": f, "precision": 0.5, "recall": 0.5}
            for f in (0.1, 0.3)]
    assert summarise(rows)["bilstm"]["hgda"]["c"]["K5"]["f1"] == {"mean": 0.2, "std": 0.1414}


def test_a_copy_of_an_encoder_without_a_frozen_table_works() -> None:
    """BERT's encoder has no word-vector table: the copy shares nothing and still copies."""
    model = torch.nn.Module()
    model.encoder = torch.nn.Linear(2, 2)
    copied = adapt_mod._copy_sharing_frozen(model)
    assert copied.encoder is not model.encoder and torch.equal(copied.encoder.weight, model.encoder.weight)
