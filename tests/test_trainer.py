"""The meta-training loop's stopping rule: patience, the best iteration, the restored weights."""

from __future__ import annotations

import types

import pytest
import torch

from hgda_core.trainer import TrainConfig, train


class _ScriptedLearner:
    """A learner whose step sets one weight to the iteration number and whose
    meta-validation loss is read from a script keyed by that weight."""

    def __init__(self, model, losses: dict[int, float]) -> None:
        self.model, self.losses, self.steps = model, losses, 0
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        self.weight = model.domain_head.bias

    def step(self, tasks):
        self.steps += 1
        with torch.no_grad():
            self.weight.fill_(float(self.steps))
        n = len(tasks)
        return {"lab": [1.0] * n, "cls": [0.0] * n, "gamma": {g: [1 / n] * n for g in ("theta", "phi", "omega")}}

    def validation_loss(self, tasks) -> float:
        return self.losses[self.steps]


class _Sampler:
    def sample(self):
        return types.SimpleNamespace(domain="Gene", support=[], query=[], support_refs=[], query_refs=[])


def _run(make_tagger, losses, **config):
    model = make_tagger()
    learner = _ScriptedLearner(model, losses)
    records: list[dict] = []
    result = train(learner, _Sampler(), [], TrainConfig(tasks_per_batch=2, **config), records.append, progress=False)
    return model, learner, result, records


def test_rising_validation_loss_stops_at_the_documented_iteration_and_restores_the_best(make_tagger):
    # evaluations every 5 iterations; the best at 15, then 3 evaluations without improvement
    losses = {0: 10.0, 5: 8.0, 10: 6.0, 15: 5.0, 20: 5.5, 25: 6.0, 30: 7.0, 35: 1.0}
    model, learner, result, records = _run(make_tagger, losses, max_iterations=100, eval_every=5, patience=3)
    assert result.best_iteration == 15 and result.best_val_loss == 5.0 and result.initial_val_loss == 10.0
    assert result.iterations == 30 == learner.steps == len(records)  # stopped at 15 + 3 × 5
    assert model.domain_head.bias[0].item() == 15.0  # the weights of iteration 15, restored
    assert [c["iteration"] for c in result.curve] == [0, 5, 10, 15, 20, 25, 30]
    assert [c["val_loss"] for c in result.curve] == [10.0, 8.0, 6.0, 5.0, 5.5, 6.0, 7.0]
    assert [r.get("val_loss") for r in records if "val_loss" in r] == [8.0, 6.0, 5.0, 5.5, 6.0, 7.0]


def test_an_improvement_within_patience_resets_the_count(make_tagger):
    losses = {0: 10.0, 2: 9.0, 4: 9.5, 6: 8.0, 8: 8.5, 10: 8.7, 12: 3.0}
    model, _, result, _ = _run(make_tagger, losses, max_iterations=12, eval_every=2, patience=2)
    assert result.iterations == 10 and result.best_iteration == 6
    assert model.domain_head.bias[0].item() == 6.0


def test_no_improvement_at_all_restores_the_initial_weights(make_tagger):
    losses = {0: 1.0, 3: 2.0, 6: 3.0}
    model, _, result, _ = _run(make_tagger, losses, max_iterations=50, eval_every=3, patience=2)
    assert result.best_iteration == 0 and result.iterations == 6
    initial = make_tagger().domain_head.bias
    torch.testing.assert_close(model.domain_head.bias, initial)


def test_improvements_below_min_delta_do_not_count(make_tagger):
    losses = {0: 5.0, 4: 4.99995, 8: 4.9999, 12: 4.0}
    _, _, result, _ = _run(make_tagger, losses, max_iterations=12, eval_every=4, patience=2, min_delta=1e-4)
    assert result.best_iteration == 0 and result.iterations == 8


def test_the_cap_ends_training_with_a_final_evaluation(make_tagger):
    losses = {0: 5.0, 4: 4.0, 8: 3.0, 10: 2.0}
    model, _, result, _ = _run(make_tagger, losses, max_iterations=10, eval_every=4, patience=3)
    assert result.iterations == 10 and result.best_iteration == 10 and result.best_val_loss == 2.0
    assert model.domain_head.bias[0].item() == 10.0
    assert pytest.approx(result.curve[-1]["train_loss"]) == 1.0
    assert result.stopped_by == "cap"


def test_a_stop_by_patience_is_recorded_as_such(make_tagger):
    losses = {0: 5.0, 4: 4.0, 8: 4.5, 12: 4.6}
    _, _, result, _ = _run(make_tagger, losses, max_iterations=100, eval_every=4, patience=2)
    assert result.iterations == 12 and result.stopped_by == "patience"


def test_patience_running_out_at_the_cap_counts_as_patience(make_tagger):
    losses = {0: 5.0, 4: 4.0, 8: 4.5, 12: 4.6}
    _, _, result, _ = _run(make_tagger, losses, max_iterations=12, eval_every=4, patience=2)
    assert result.iterations == 12 and result.stopped_by == "patience"


def test_the_relative_threshold_scales_with_the_best_loss(make_tagger):
    # 1 % of the best: 100 → 99.5 is noise (< 1.0), 100 → 98.0 is not; at 4.0 the threshold
    # is 0.04 (the absolute 1e-4 is smaller), so the falls to 3.97 and 3.96 are noise.
    losses = {0: 100.0, 2: 99.5, 4: 98.0, 6: 4.0, 8: 3.97, 10: 3.96}
    _, _, result, _ = _run(make_tagger, losses, max_iterations=100, eval_every=2, patience=2, min_rel_delta=0.01)
    assert [c["val_loss"] for c in result.curve] == [100.0, 99.5, 98.0, 4.0, 3.97, 3.96]
    assert result.best_iteration == 6 and result.best_val_loss == 4.0 and result.iterations == 10
    assert TrainConfig(min_delta=0.5, min_rel_delta=0.01).improves(9.6, 10.0) is False  # the larger threshold rules
    assert TrainConfig(min_delta=0.0, min_rel_delta=0.01).improves(9.89, 10.0) is True


def test_snapshots_keep_the_weights_of_their_iterations_not_the_best(make_tagger):
    losses = {0: 10.0, 3: 5.0, 6: 7.0, 9: 8.0}
    model, _, result, _ = _run(make_tagger, losses, max_iterations=9, eval_every=3, patience=5, snapshots=(0, 4, 8, 50))
    assert sorted(result.snapshots) == [0, 4, 8]  # 50 is never reached
    initial = make_tagger().domain_head.bias[0].item()
    assert result.snapshots[0]["domain_head.bias"][0].item() == initial
    assert [result.snapshots[i]["domain_head.bias"][0].item() for i in (4, 8)] == [4.0, 8.0]
    assert model.domain_head.bias[0].item() == 3.0  # the best, restored; the snapshots are copies


def test_the_log_records_every_field_table1_reads(make_tagger):
    import time

    started = time.perf_counter()
    _, _, result, records = _run(make_tagger, {0: 3.0, 2: 2.0, 4: 1.0}, max_iterations=4, eval_every=2, patience=2)
    wall = time.perf_counter() - started
    assert set(records[0]) == {"iteration", "lr", "tasks"} and set(records[1]) == {"iteration", "lr", "tasks", "val_loss"}
    assert [r["iteration"] for r in records] == [1, 2, 3, 4] and records[0]["lr"] == pytest.approx(0.1)
    assert set(records[0]["tasks"][0]) == {"domain", "support", "query", "support_entities", "query_entities", "lab",
                                           "cls", "gamma_theta", "gamma_phi", "gamma_omega"}
    assert records[0]["tasks"][0]["gamma_omega"] == pytest.approx(0.5)
    assert all(set(c) == {"iteration", "train_loss", "val_loss"} for c in result.curve)
    assert 0 < result.seconds <= wall


def test_no_snapshot_is_kept_unless_asked(make_tagger):
    _, _, result, _ = _run(make_tagger, {0: 3.0, 2: 2.0}, max_iterations=2, eval_every=2, patience=2)
    assert result.snapshots == {}
