"""Meta-training set-up per held-out domain, its log, and checkpoints."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hgda_core.metatrain import JsonlGzLog, MetaTrainParams, derive_seed, meta_train, read_log, source_domains
from hgda_core.models import build_tagger, load_tagger
from hgda_core.optim import scaled_lr
from tests.conftest import TINY

def tiny_factory(vectors):
    return lambda dec, cls: build_tagger(vectors, TINY, dec, cls)


FAST = MetaTrainParams(tasks_per_batch=3, max_iterations=6, eval_every=3, patience=5, val_tasks=3, default_lr=0.2)


@pytest.fixture
def corpora(tiny_corpora):
    return {c.name: c for cs in tiny_corpora.values() for c in cs}


def test_held_out_domain_is_never_a_source(corpora):
    sources = source_domains(corpora, "Drug")
    assert sorted(sources) == ["Disease", "Gene", "Species"]
    with pytest.raises(ValueError, match="no source domain"):
        source_domains({n: c for n, c in corpora.items() if c.domain == "Drug"}, "Drug")


@pytest.mark.parametrize("method", ["hgda", "hgda_nes", "metaner", "transfer"])
def test_meta_train_each_method_logs_tasks_and_never_sees_held_out(corpora, tiny_vectors, method):
    log = JsonlGzLog()
    model, result = meta_train(corpora, tiny_factory(tiny_vectors), "Drug", method, 4, FAST, seed=1, log=log, progress=False)
    assert set(model.decoders) == {"Disease", "Gene", "Species"}
    assert model.classifier_domains == ("Disease", "Gene", "Species")
    assert result.iterations == 6 and len(log.records) == 6
    tasks = [t for r in log.records for t in r["tasks"]]
    assert len(tasks) == 18
    assert all(t["domain"] != "Drug" and all(ref[0] != "drug-corpus" for ref in t["support"]) for t in tasks)
    first = log.records[0]["tasks"]
    assert sum(t["gamma_theta"] for t in first) == pytest.approx(1.0)
    if method == "hgda_nes":
        assert all(t["support_entities"] > 0 for t in tasks)
    if method in ("metaner", "transfer"):
        assert all(t["gamma_theta"] == pytest.approx(1 / 3) for t in tasks)
    assert "val_loss" in log.records[2]


def test_log_round_trips_through_gzip(tmp_path):
    log = JsonlGzLog()
    log({"iteration": 1, "tasks": [{"lab": 1.5}]})
    log({"iteration": 2, "tasks": []})
    log.write(tmp_path / "log.jsonl.gz")
    assert read_log(tmp_path / "log.jsonl.gz") == log.records


def test_log_every_keeps_iteration_one_and_every_nth(corpora, tiny_vectors):
    log = JsonlGzLog(every=10)
    for iteration in range(1, 26):
        log({"iteration": iteration, "tasks": []})
    assert [r["iteration"] for r in log.records] == [1, 10, 20]
    meta = dataclasses.replace(FAST, log_every=3)
    log = JsonlGzLog(every=meta.log_every)
    meta_train(corpora, tiny_factory(tiny_vectors), "Drug", "hgda", 4, meta, seed=1, log=log, progress=False)
    assert [r["iteration"] for r in log.records] == [1, 3, 6]
    with pytest.raises(ValueError, match="log_every"):
        dataclasses.replace(FAST, log_every=0)


def test_checkpoint_reloads_to_identical_predictions(corpora, tiny_vectors, tmp_path):
    model, _ = meta_train(corpora, tiny_factory(tiny_vectors), "Species", "hgda", 4, FAST, seed=2, progress=False)
    model.save(tmp_path / "K4.pt", held_out="Species")
    again = load_tagger(tmp_path / "K4.pt", tiny_vectors)
    test = corpora["disease-corpus"]["test"]
    assert again.predict(test, "Disease") == model.predict(test, "Disease")
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    assert "encoder.word_embedding.weight" not in torch.load(tmp_path / "K4.pt", weights_only=False)["state"]


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(13, "Disease", "hgda", 10) == derive_seed(13, "Disease", "hgda", 10)
    assert derive_seed(13, "Disease", "hgda", 10) != derive_seed(13, "Disease", "hgda", 5)


def _stage_layout(root, tiny_corpora, tiny_vectors) -> dict:
    """Processed corpora and vectors under ``root``, and small params for the stage."""
    from hgda_core.data import save_corpus

    for corpora in tiny_corpora.values():
        for corpus in corpora:
            save_corpus(corpus, root / "data" / "processed" / f"{corpus.name}.pkl")
    tiny_vectors.save(root / "data" / "embeddings" / "vectors.npz")
    return {
        "shots": [3, 4], "seed": 7, "threads": 1,
        "corpora": [c.name for cs in tiny_corpora.values() for c in cs],
        "model": {"encoder": "bilstm", **dataclasses.asdict(TINY)},
        "meta": {"held_out": ["Drug"], "methods": ["hgda"], **dataclasses.asdict(FAST)},
    }


def _stage_outputs(root):
    import hashlib
    import json

    outputs = {}
    for run_dir in sorted((root / "reports" / "metatrain" / "bilstm").iterdir()):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        for entry in metrics.values():
            entry.pop("seconds")
        models = root / "models" / "metatrain" / "bilstm" / run_dir.name
        digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(models.glob("*.pt"))}
        logs = {p.name: read_log(p) for p in sorted((run_dir / "logs").glob("*.jsonl.gz"))}
        outputs[run_dir.name] = (metrics, digests, logs, (run_dir / "curve.csv").read_text())
    return outputs


@pytest.fixture
def stage_env(monkeypatch):
    """The executor's environment of a stage test: one job in this process unless set."""
    monkeypatch.setenv("HGDA_EXECUTOR", "local")
    monkeypatch.setenv("HGDA_JOBS", "1")
    monkeypatch.delenv("HGDA_CELLS", raising=False)
    threads = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(threads)


def test_stage_outputs_are_the_same_on_every_executor(tmp_path, tiny_corpora, tiny_vectors, stage_env):
    """One process, a pool of two and submitit's local executor (one subprocess per cell)
    write byte-identical checkpoints, logs and curves, and the same metrics."""
    from stages import metatrain as stage

    outputs = []
    for executor, jobs in (("local", "1"), ("local", "2"), ("submitit-local", "1")):
        root = tmp_path / f"{executor}-{jobs}"
        stage_env.setenv("HGDA_EXECUTOR", executor)
        stage_env.setenv("HGDA_JOBS", jobs)
        stage_env.setenv("HGDA_SLURM_LOGS", str(tmp_path / "submitit"))
        stage.run(_stage_layout(root, tiny_corpora, tiny_vectors), root, progress=False)
        outputs.append(_stage_outputs(root))
    assert set(outputs[0]) == {"Drug-hgda"} and set(outputs[0]["Drug-hgda"][1]) == {"K3.pt", "K4.pt"}
    assert list(outputs[0]["Drug-hgda"][0]) == ["K3", "K4"]
    assert outputs[0] == outputs[1] == outputs[2]


def test_stage_reuses_stored_cells_and_writes_only_the_named_ones(tmp_path, tiny_corpora, tiny_vectors, stage_env):
    """A run of one K after a run of two computes nothing and its outputs hold that K alone;
    a new method computes only its cells; the outputs equal those of a fresh run."""
    import hgda_core.grid as grid
    from stages import metatrain as stage

    root = tmp_path / "repo"
    params = _stage_layout(root, tiny_corpora, tiny_vectors)
    params["meta"]["snapshots"] = [0, 3]
    stage.run(params, root, progress=False)
    both = _stage_outputs(root)
    assert set(both["Drug-hgda"][1]) == {f"K{k}{s}.pt" for k in (3, 4) for s in ("", "-it0", "-it3")}
    assert [m["stopped_by"] for m in both["Drug-hgda"][0].values()] == ["cap", "cap"]
    computed = []
    real = grid.compute_metatrain
    stage_env.setattr(stage, "compute_metatrain", lambda cell: computed.append(cell.label) or real(cell))
    stage.run({**params, "shots": [4]}, root, progress=False)
    assert computed == []
    one = _stage_outputs(root)
    assert set(one["Drug-hgda"][1]) == {"K4.pt", "K4-it0.pt", "K4-it3.pt"} and list(one["Drug-hgda"][0]) == ["K4"]
    assert one["Drug-hgda"][0]["K4"] == both["Drug-hgda"][0]["K4"]
    params["meta"]["methods"] = ["hgda", "metaner"]
    stage.run(params, root, progress=False)
    assert sorted(computed) == ["bilstm Drug-metaner K=3", "bilstm Drug-metaner K=4"]
    assert _stage_outputs(root)["Drug-hgda"] == both["Drug-hgda"]


def test_pulled_outputs_are_adopted_into_an_empty_store(tmp_path, tiny_corpora, tiny_vectors, stage_env):
    """After ``dvc pull`` a clone has the outputs but no cell store: ``--plan``'s adoption
    files them under their keys, so the stage computes nothing and writes the same files."""
    import shutil

    from hgda_core.cellstore import CellStore
    from hgda_core.grid import META, adopt_metatrain
    from stages import metatrain as stage

    root = tmp_path / "repo"
    params = _stage_layout(root, tiny_corpora, tiny_vectors)
    params["meta"]["snapshots"] = [3]
    cells = stage.run(params, root, progress=False)
    before = _stage_outputs(root)
    shutil.rmtree(root / "cells")
    store = CellStore(root / "cells")
    adopted = adopt_metatrain(cells, store, root / "models" / "metatrain", root / "reports" / "metatrain")
    assert [c.key for c in adopted] == [c.key for c in cells] and all(store.has(META, c.key) for c in cells)
    stage_env.setattr(stage, "compute_metatrain", lambda cell: pytest.fail(f"computed {cell.label}"))
    stage.run(params, root, progress=False)
    assert _stage_outputs(root) == before
    # a checkpoint of another cell (other params) is not adopted as this one
    params["meta"]["lam"] = 0.5
    other = stage.plan(params, root)
    assert adopt_metatrain(other, CellStore(tmp_path / "empty"), root / "models" / "metatrain", root / "reports" / "metatrain") == []


def test_plan_summary_names_the_cells_and_the_committed_time(tmp_path, tiny_corpora, tiny_vectors, stage_env):
    import json

    from hgda_core.cellstore import CellStore
    from stages import metatrain as stage

    root = tmp_path / "repo"
    params = _stage_layout(root, tiny_corpora, tiny_vectors)
    reports = root / "reports" / "metatrain"
    (reports / "bilstm" / "Drug-hgda").mkdir(parents=True)
    (reports / "bilstm" / "Drug-hgda" / "metrics.json").write_text(json.dumps({"K4": {"seconds": 5400.0}}))
    text = stage.summary(stage.plan(params, root), CellStore(root / "cells"), reports, jobs=2)
    assert text.splitlines() == [
        "metatrain: 2 cells named by params.yaml, 0 in the cell store, 2 to train",
        "  K=3: 1 cells, no recorded time",
        "  K=4: 1 cells, ≈ 1.5 core-hours (committed runs' seconds, 1 of 1 recorded)",
        "  total ≈ 3.0 core-hours, ≈ 1.5 h on 2 worker(s) (HGDA_JOBS)",
    ]


def test_cell_keys_follow_what_a_run_reads(tmp_path, tiny_corpora, tiny_vectors):
    """The key changes with a param the run reads, the corpora's or vectors' bytes; not
    with the paths, the number of threads or the BERT section of a BiLSTM run."""
    from stages import metatrain as stage

    root = tmp_path / "repo"
    params = _stage_layout(root, tiny_corpora, tiny_vectors)
    keys = lambda p, r=root: [c.key for c in stage.plan(p, r)]  # noqa: E731
    base = keys(params)
    assert len(set(base)) == 2
    assert keys({**params, "threads": 2}) == base
    assert keys({**params, "model": {**params["model"], "bert": {"max_length": 9}}}) == base
    assert keys({**params, "seed": 8}) != base
    assert keys({**params, "meta": {**params["meta"], "lam": 0.5}})[0] != base[0]
    moved = tmp_path / "moved"
    _stage_layout(moved, tiny_corpora, tiny_vectors)
    assert keys(params, moved) == base
    vectors = moved / "data" / "embeddings" / "vectors.npz"
    from hgda_core.embeddings import WordVectors

    table = WordVectors.load(vectors)
    WordVectors(table.words, table.vectors * 2).save(vectors)
    assert keys(params, moved)[0] != base[0]


def test_meta_params_horizon_and_checks():
    assert MetaTrainParams(max_iterations=40).horizon == 40
    assert MetaTrainParams(max_iterations=40, schedule_horizon=100).horizon == 100
    assert MetaTrainParams(snapshots=[0, 10]).snapshots == (0, 10)
    with pytest.raises(ValueError, match="must be >= 0"):
        MetaTrainParams(min_rel_delta=-0.1)


def test_the_schedule_decays_over_the_horizon_not_the_cap(corpora, tiny_vectors):
    log = JsonlGzLog()
    params = dataclasses.replace(FAST, max_iterations=4, schedule_horizon=8)
    meta_train(corpora, tiny_factory(tiny_vectors), "Drug", "hgda", 4, params, seed=1, log=log, progress=False)
    lr = scaled_lr(FAST.default_lr, 4, FAST.reference_k)
    # the record of iteration i holds the rate after its update, lr·(1 − i/8): half the
    # base rate at the cap of 4, not 0 as a schedule over the cap would give
    assert [r["lr"] for r in log.records] == pytest.approx([lr * (1 - i / 8) for i in range(1, 5)])


def test_stage_rejects_bad_params_before_any_work(tmp_path, tiny_corpora, tiny_vectors):
    from stages import metatrain as stage

    params = _stage_layout(tmp_path, tiny_corpora, tiny_vectors)
    params["model"]["encoder"] = "elmo"
    with pytest.raises(ValueError, match="model.encoder must be one of bilstm, bert, got 'elmo'"):
        stage.plan(params, tmp_path)
    params["model"]["encoder"] = "bilstm"
    params["meta"]["workers"] = 2
    with pytest.raises(ValueError, match="params.yaml meta: .*unexpected keyword argument 'workers'"):
        stage.plan(params, tmp_path)


def _recording(base, seen):
    """``base`` that records its class name and MetaConfig in ``seen`` when built."""

    class Recording(base):
        def __init__(self, model, config, *args, **kwargs):
            seen.update(cls=base.__name__, config=config)
            super().__init__(model, config, *args, **kwargs)

    return Recording


@pytest.mark.parametrize(
    "method, learner, weighting, scale",
    [("hgda", "MetaLearner", "hardness", 0.5), ("hgda_nes", "MetaLearner", "hardness", 0.5),
     ("metaner", "MetaLearner", "uniform", -0.5), ("transfer", "TransferLearner", "uniform", 0.0)],
)
def test_meta_train_sets_up_each_method(corpora, tiny_vectors, monkeypatch, method, learner, weighting, scale):
    """hgda: eq. 2 weights and +λ; metaner: uniform 1/m and the reversal −λ; transfer: λ = 0."""
    import hgda_core.metatrain as mt

    seen: dict = {}
    for name in ("MetaLearner", "TransferLearner"):
        monkeypatch.setattr(mt, name, _recording(getattr(mt, name), seen))
    params = dataclasses.replace(FAST, lam=0.5)
    log = JsonlGzLog()
    meta_train(corpora, tiny_factory(tiny_vectors), "Drug", method, 4, params, seed=1, log=log, progress=False)
    config = seen["config"]
    assert seen["cls"] == learner
    assert (config.weighting, config.cls_grad_scale) == (weighting, scale)
    for record in log.records:
        tasks = record["tasks"]
        labs = [t["lab"] for t in tasks]
        if weighting == "hardness":  # eq. 2 from the logged losses, not 1/m
            assert [t["gamma_phi"] for t in tasks] == pytest.approx([l / sum(labs) for l in labs])
            totals = [t["lab"] + 0.5 * t["cls"] for t in tasks]
            assert [t["gamma_theta"] for t in tasks] == pytest.approx([v / sum(totals) for v in totals])
            assert max(t["gamma_phi"] for t in tasks) > 1 / len(tasks) + 1e-3
        else:
            assert all(t["gamma_phi"] == pytest.approx(1 / len(tasks)) for t in tasks)


class _Killed(Exception):
    """Stands for the process being killed (end of a sitting) mid-run."""


class _LogKilledAt(JsonlGzLog):
    """A training log that kills the run when it receives iteration ``at``."""

    def __init__(self, at: int, every: int = 1) -> None:
        super().__init__(every)
        self.at = at

    def __call__(self, record: dict) -> None:
        if record["iteration"] == self.at:
            raise _Killed
        super().__call__(record)


RESUMABLE = dataclasses.replace(FAST, max_iterations=9, patience=9, snapshots=(0, 5))
WITH_DROPOUT = dataclasses.replace(TINY, dropout=0.3)  # so that torch's generator matters too


def _trained(corpora, tiny_vectors, method, log, state_file, params=RESUMABLE):
    factory = lambda dec, cls: build_tagger(tiny_vectors, WITH_DROPOUT, dec, cls)  # noqa: E731
    return meta_train(corpora, factory, "Drug", method, 4, params, seed=3, log=log,
                      progress=False, state_file=state_file)


@pytest.mark.parametrize("method", ["hgda", "transfer"])
def test_a_run_killed_after_a_validation_resumes_to_the_uninterrupted_run(corpora, tiny_vectors, tmp_path, method):
    whole_log = JsonlGzLog()
    whole, whole_result = _trained(corpora, tiny_vectors, method, whole_log, None)
    state = tmp_path / "state.pt"
    with pytest.raises(_Killed):  # killed in iteration 5: the state of iteration 3 is on disk
        _trained(corpora, tiny_vectors, method, _LogKilledAt(5), state)
    assert state.is_file() and torch.load(state, weights_only=False)["iteration"] == 3
    with pytest.raises(_Killed):  # resumed, killed again in iteration 8 (state of iteration 6)
        _trained(corpora, tiny_vectors, method, _LogKilledAt(8), state)
    assert torch.load(state, weights_only=False)["iteration"] == 6
    log = JsonlGzLog()
    model, result = _trained(corpora, tiny_vectors, method, log, state)
    assert not state.exists()
    assert result.resumed_at == [3, 6] and whole_result.resumed_at == []
    for (name, a), b in zip(whole.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    assert log.records == whole_log.records and len(log.records) == 9
    assert result.curve == whole_result.curve
    assert (result.best_iteration, result.best_val_loss, result.iterations, result.stopped_by) == (
        whole_result.best_iteration, whole_result.best_val_loss, whole_result.iterations, whole_result.stopped_by)
    assert set(result.snapshots) == {0, 5}
    for it in (0, 5):
        for key, value in whole_result.snapshots[it].items():
            assert torch.equal(value, result.snapshots[it][key]), (it, key)


def test_a_saved_state_of_other_params_is_not_resumed(corpora, tiny_vectors, tmp_path, caplog):
    state = tmp_path / "state.pt"
    with pytest.raises(_Killed):
        _trained(corpora, tiny_vectors, "hgda", _LogKilledAt(5), state)
    other = dataclasses.replace(RESUMABLE, default_lr=0.1)
    log = JsonlGzLog()
    model, result = _trained(corpora, tiny_vectors, "hgda", log, state, other)
    fresh_log = JsonlGzLog()
    fresh, fresh_result = _trained(corpora, tiny_vectors, "hgda", fresh_log, None, other)
    assert "holds the state of another run" in caplog.text
    assert result.resumed_at == [] and log.records == fresh_log.records
    for (name, a), b in zip(fresh.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name


def test_stage_resumes_a_killed_cell_and_restart_discards_its_state(tmp_path, tiny_corpora, tiny_vectors, stage_env):
    import json

    import hgda_core.metatrain as mt
    from hgda_core.executor import CellsFailed
    from stages import metatrain as stage

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for root in (whole, killed):
        params = _stage_layout(root, tiny_corpora, tiny_vectors)
        params["shots"] = [4]
        params["meta"].update(max_iterations=9, patience=9, snapshots=[0, 5])
        params["model"]["dropout"] = 0.3
        if root == whole:
            stage.run(params, whole, progress=False)
    (cell,) = stage.plan(params, killed)
    state = killed / "cells" / "resume" / f"{cell.key}.pt"
    with stage_env.context() as patch:
        patch.setattr(mt, "JsonlGzLog", lambda every: _LogKilledAt(7, every))
        with pytest.raises(CellsFailed, match="bilstm Drug-hgda K=4"):
            stage.run(params, killed, progress=False)
    assert torch.load(state, weights_only=False)["iteration"] == 6
    assert not (killed / "models" / "metatrain").exists()  # nothing half-written
    stage.run(params, killed, progress=False)  # resumes after iteration 6
    assert not state.exists()
    outputs, expected = _stage_outputs(killed), _stage_outputs(whole)
    assert outputs["Drug-hgda"][0]["K4"].pop("resumed_at") == [6]
    assert outputs == expected
    # --restart: a saved state is discarded and the cell starts afresh
    import shutil

    shutil.rmtree(killed / "cells" / "metatrain")
    with stage_env.context() as patch:
        patch.setattr(mt, "JsonlGzLog", lambda every: _LogKilledAt(4, every))
        with pytest.raises(CellsFailed):
            stage.run(params, killed, progress=False)
    assert state.is_file()
    stage.run(params, killed, restart=True, progress=False)
    metrics = json.loads((killed / "reports" / "metatrain" / "bilstm" / "Drug-hgda" / "metrics.json").read_text())
    assert "resumed_at" not in metrics["K4"] and not state.exists()


def test_a_checkpoint_loaded_with_other_word_vectors_is_a_clear_error(corpora, tiny_vectors, tmp_path):
    from hgda_core.embeddings import WordVectors

    model, _ = meta_train(corpora, tiny_factory(tiny_vectors), "Species", "hgda", 4, FAST, seed=2, progress=False)
    model.save(tmp_path / "K4.pt")
    assert torch.load(tmp_path / "K4.pt", weights_only=False)["vectors_fingerprint"] == tiny_vectors.fingerprint
    other = WordVectors(tiny_vectors.words, tiny_vectors.vectors + 1.0)
    with pytest.raises(ValueError, match=rf"K4.pt: trained with word vectors {tiny_vectors.fingerprint[:12]}, "
                                         rf"given {other.fingerprint[:12]}"):
        load_tagger(tmp_path / "K4.pt", other)
