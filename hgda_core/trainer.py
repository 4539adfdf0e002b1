"""The meta-training loop around a learner: batches of tasks, meta-validation, early stopping.

"This runs until no further improvement can be made" (§3.3): every ``eval_every``
iterations the meta-validation loss on fixed tasks from the source domains' *devel*
splits is measured; an evaluation improves when it is lower than the best so far by more
than ``min_delta`` and by more than the fraction ``min_rel_delta`` of the best (a relative
threshold, so that a stop is not decided by noise at any scale of the loss).  Training
stops after ``patience`` evaluations without improvement (``stopped_by: patience``) or at
``max_iterations`` (``stopped_by: cap``), and the best weights are restored.  The
held-out domain is never seen here.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from tqdm.auto import tqdm

from hgda_core.meta import MetaLearner
from hgda_core.sampler import Task, TaskSampler

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Loop settings: m tasks per iteration (Alg. 1 line 3) and the stopping rule."""

    tasks_per_batch: int = 8
    max_iterations: int = 400
    eval_every: int = 25
    patience: int = 4
    min_delta: float = 1e-4
    min_rel_delta: float = 0.0
    snapshots: tuple[int, ...] = ()
    """Iterations whose weights are kept as they are then (0: the initial weights), e.g.
    for a study of F1 against meta-training iterations; not the restored best."""

    def improves(self, val: float, best: float) -> bool:
        """Whether ``val`` beats ``best`` by the absolute and the relative threshold."""
        return val < best - max(self.min_delta, self.min_rel_delta * abs(best))


@dataclass
class TrainResult:
    """What a training run reports."""

    best_val_loss: float
    initial_val_loss: float
    best_iteration: int
    iterations: int
    seconds: float
    curve: list[dict] = field(default_factory=list)
    stopped_by: str = "cap"
    """``patience`` (no improvement for ``patience`` evaluations) or ``cap`` (``max_iterations``)."""
    snapshots: dict[int, dict] = field(default_factory=dict)
    """Iteration → trainable state at that iteration (:attr:`TrainConfig.snapshots`)."""


def task_record(task: Task, index: int, step: dict) -> dict:
    """One task of an iteration for the training log (raw material of Table 1)."""
    return {
        "domain": task.domain,
        "support": [list(r) for r in task.support_refs],
        "query": [list(r) for r in task.query_refs],
        "support_entities": sum(s.n_mentions for s in task.support),
        "query_entities": sum(s.n_mentions for s in task.query),
        "lab": step["lab"][index],
        "cls": step["cls"][index],
        "gamma_theta": step["gamma"]["theta"][index],
        "gamma_phi": step["gamma"]["phi"][index],
        "gamma_omega": step["gamma"]["omega"][index],
    }


def train(
    learner: MetaLearner,
    sampler: TaskSampler,
    val_tasks: Sequence[Task],
    config: TrainConfig,
    on_iteration: Callable[[dict], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Meta-train ``learner`` with early stopping on the meta-validation loss.

    Args:
        learner: a :class:`MetaLearner` (or the transfer baseline).
        sampler: draws the training tasks from the source domains' train splits.
        val_tasks: fixed tasks from the source domains' devel splits.
        config: batch size m and stopping rule.
        on_iteration: called with each iteration's log record.
        progress: show a tqdm bar.
    """
    started = time.perf_counter()
    model = learner.model
    best = initial = learner.validation_loss(val_tasks)
    best_state = copy.deepcopy(model.trainable_state())
    best_iteration, bad, iteration = 0, 0, 0
    curve = [{"iteration": 0, "train_loss": None, "val_loss": initial}]
    wanted = set(config.snapshots)
    snapshots = {0: copy.deepcopy(best_state)} if 0 in wanted else {}
    stopped_by = "cap"
    window: list[float] = []
    bar = tqdm(range(1, config.max_iterations + 1), desc="meta-train", disable=not progress, mininterval=5)
    for iteration in bar:
        tasks = [sampler.sample() for _ in range(config.tasks_per_batch)]
        step = learner.step(tasks)
        record = {
            "iteration": iteration,
            "lr": learner.optimizer.param_groups[0]["lr"],
            "tasks": [task_record(t, i, step) for i, t in enumerate(tasks)],
        }
        window.append(sum(step["lab"]) / len(step["lab"]))
        if iteration % config.eval_every == 0 or iteration == config.max_iterations:
            val = learner.validation_loss(val_tasks)
            record["val_loss"] = val
            curve.append({"iteration": iteration, "train_loss": sum(window) / len(window), "val_loss": val})
            window = []
            if config.improves(val, best):
                best, best_iteration, bad = val, iteration, 0
                best_state = copy.deepcopy(model.trainable_state())
            else:
                bad += 1
            bar.set_postfix(val=f"{val:.3f}", best=f"{best:.3f}")
        if iteration in wanted:
            snapshots[iteration] = copy.deepcopy(model.trainable_state())
        if on_iteration is not None:
            on_iteration(record)
        if bad >= config.patience:
            stopped_by = "patience"
            log.info("early stop at iteration %d (best %.4f at %d)", iteration, best, best_iteration)
            break
    model.load_trainable_state(best_state)
    return TrainResult(best, initial, best_iteration, iteration, time.perf_counter() - started, curve,
                       stopped_by, snapshots)
