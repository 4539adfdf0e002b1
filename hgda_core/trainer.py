"""The meta-training loop around a learner: batches of tasks, meta-validation, early stopping.

"This runs until no further improvement can be made" (§3.3): every ``eval_every``
iterations the meta-validation loss on fixed tasks from the source domains' *devel*
splits is measured; an evaluation improves when it is lower than the best so far by more
than ``min_delta`` and by more than the fraction ``min_rel_delta`` of the best (a relative
threshold, so that a stop is not decided by noise at any scale of the loss).  Training
stops after ``patience`` evaluations without improvement (``stopped_by: patience``) or at
``max_iterations`` (``stopped_by: cap``), and the best weights are restored.  The
held-out domain is never seen here.

A run can be resumed: with a ``state_file`` the loop's whole state (weights, optimizer
and schedule, the sampler's and torch's generators, the stopping rule's counters, the
curve, the snapshots and the log so far) is saved atomically after every
meta-validation, and a later call with the same ``state_key`` continues from it.  The
resumed run is the uninterrupted run, bit for bit (``tests/test_metatrain.py``); the file
is removed when the run ends.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from hgda_core.io import atomic_write
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
    resumed_at: list[int] = field(default_factory=list)
    """The iterations after which the run was resumed from its ``state_file`` (empty: one sitting)."""


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


def _rng_states() -> dict:
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: Mapping[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


def _stateful(obj: Any) -> bool:
    return hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")


def _save_loop_state(state_file: str | Path, state: dict) -> None:
    """Write the loop's state atomically: a kill while saving leaves the previous one."""
    with atomic_write(state_file, "wb") as fh:
        torch.save(state, fh)


def load_loop_state(state_file: str | Path, state_key: Mapping[str, Any] | None) -> dict | None:
    """The saved loop state of ``state_file`` if it belongs to the run ``state_key``; None
    (and a warning when a file of another run is there) otherwise."""
    path = Path(state_file)
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("key") != (dict(state_key) if state_key is not None else None):
        log.warning("%s holds the state of another run (other params); starting afresh", path)
        return None
    return state


def train(
    learner: MetaLearner,
    sampler: TaskSampler,
    val_tasks: Sequence[Task],
    config: TrainConfig,
    on_iteration: Callable[[dict], None] | None = None,
    progress: bool = True,
    state_file: str | Path | None = None,
    state_key: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Meta-train ``learner`` with early stopping on the meta-validation loss.

    Args:
        learner: a :class:`MetaLearner` (or the transfer baseline).
        sampler: draws the training tasks from the source domains' train splits.
        val_tasks: fixed tasks from the source domains' devel splits.
        config: batch size m and stopping rule.
        on_iteration: called with each iteration's log record; when it has
            ``state_dict``/``load_state_dict`` (:class:`hgda_core.metatrain.JsonlGzLog`),
            its records are part of a resumable run's state.
        progress: show a tqdm bar.
        state_file: save the loop's state there after every meta-validation and resume
            from it when it holds the state of this run (module docstring); None: neither.
        state_key: what identifies the run (its params); a state saved under another key
            is not resumed.
    """
    started = time.perf_counter()
    model = learner.model
    scheduler = getattr(learner, "scheduler", None)
    wanted = set(config.snapshots)
    saved = load_loop_state(state_file, state_key) if state_file is not None else None
    if saved is None:
        best = initial = learner.validation_loss(val_tasks)
        best_state = copy.deepcopy(model.trainable_state())
        best_iteration, bad, start, spent = 0, 0, 0, 0.0
        curve = [{"iteration": 0, "train_loss": None, "val_loss": initial}]
        snapshots = {0: copy.deepcopy(best_state)} if 0 in wanted else {}
        window: list[float] = []
        resumed_at: list[int] = []
    else:
        model.load_trainable_state(saved["model"])
        learner.optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        sampler.load_state_dict(saved["sampler"])
        if _stateful(on_iteration):
            on_iteration.load_state_dict(saved["log"])  # type: ignore[union-attr]
        _set_rng_states(saved["rng"])
        best, initial, best_state = saved["best"], saved["initial"], saved["best_state"]
        best_iteration, bad, start, spent = saved["best_iteration"], saved["bad"], saved["iteration"], saved["seconds"]
        curve, snapshots, window = saved["curve"], saved["snapshots"], saved["window"]
        resumed_at = saved["resumed_at"] + [start]
        log.info("resuming from iteration %d (best %.4f at %d) saved in %s", start, best, best_iteration, state_file)
    stopped_by = "cap"
    iteration = start
    bar = tqdm(range(start + 1, config.max_iterations + 1), desc="meta-train", disable=not progress, mininterval=5,
               initial=start, total=config.max_iterations)
    for iteration in bar:
        tasks = [sampler.sample() for _ in range(config.tasks_per_batch)]
        step = learner.step(tasks)
        record = {
            "iteration": iteration,
            "lr": learner.optimizer.param_groups[0]["lr"],
            "tasks": [task_record(t, i, step) for i, t in enumerate(tasks)],
        }
        window.append(sum(step["lab"]) / len(step["lab"]))
        evaluated = iteration % config.eval_every == 0 or iteration == config.max_iterations
        if evaluated:
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
        if state_file is not None and evaluated and iteration < config.max_iterations:
            _save_loop_state(state_file, {
                "key": dict(state_key) if state_key is not None else None,
                "iteration": iteration,
                "model": model.trainable_state(),
                "optimizer": learner.optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "sampler": sampler.state_dict(),
                "log": on_iteration.state_dict() if _stateful(on_iteration) else None,  # type: ignore[union-attr]
                "rng": _rng_states(),
                "best": best, "initial": initial, "best_state": best_state, "best_iteration": best_iteration,
                "bad": bad, "curve": curve, "snapshots": snapshots, "window": window,
                "seconds": spent + time.perf_counter() - started, "resumed_at": resumed_at,
            })
    model.load_trainable_state(best_state)
    if state_file is not None:
        Path(state_file).unlink(missing_ok=True)
    return TrainResult(best, initial, best_iteration, iteration, spent + time.perf_counter() - started, curve,
                       stopped_by, snapshots, resumed_at)
