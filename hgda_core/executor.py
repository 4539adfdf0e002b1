"""Run a stage's independent cells on an executor chosen by the environment.

The grid's cells (one meta-training run, one adaptation block) depend on nothing but
their spec, so they may run anywhere and in any order.  Which executor runs them is set by
the environment, never by ``params.yaml``: switching executors changes neither a cell's
outputs nor ``dvc.lock``.

``HGDA_EXECUTOR``:

- ``local`` (default): a process pool of ``HGDA_JOBS`` workers (default: the cores);
  ``HGDA_JOBS=1`` runs the cells one after another in the stage's own process.
- ``slurm``: submitit's ``AutoExecutor``, every cell of a stage as one SLURM job array.
  ``HGDA_SLURM_PARTITION``, ``HGDA_SLURM_ACCOUNT``, ``HGDA_SLURM_TIME_MIN`` (per cell,
  default 360), ``HGDA_SLURM_MEM_GB`` (default 8), ``HGDA_SLURM_PARALLELISM`` (array
  tasks at once, default 64), ``HGDA_SLURM_GPUS`` (per cell, default 0),
  ``HGDA_SLURM_LOGS`` (default ``cells/slurm``); each task gets ``threads`` CPUs.
- ``submitit-local``: the same code path on this machine (submitit's local executor: one
  subprocess per cell), for trying the cluster set-up without a cluster.

Every worker sets ``threads`` torch threads.  Progress: one bar over the cells and a log
line per finished cell.  A failed cell does not stop the others; once all are done,
:class:`CellsFailed` names every failed cell (the finished ones are kept by the caller's
store, so a new run continues with the failed ones).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tqdm.auto import tqdm

log = logging.getLogger("hgda_core.executor")

KINDS = ("local", "slurm", "submitit-local")


class CellsFailed(RuntimeError):
    """Some cells raised; ``failures`` maps each one's label to its error text."""

    def __init__(self, failures: Mapping[str, str]) -> None:
        self.failures = dict(failures)
        first = next(iter(self.failures.items()))
        super().__init__(f"{len(self.failures)} cell(s) failed; first: {first[0]}: {first[1].strip().splitlines()[-1]}")


@dataclass
class ExecutorSettings:
    """Where cells run (module docstring); built from the environment by :meth:`from_env`."""

    kind: str = "local"
    jobs: int = 1
    slurm: dict[str, Any] = field(default_factory=dict)
    logs: Path = Path("cells/slurm")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ExecutorSettings":
        """Read ``HGDA_EXECUTOR``, ``HGDA_JOBS`` and the ``HGDA_SLURM_*`` variables.

        Raises:
            ValueError: an unknown executor or a value that is not a positive integer.
        """
        env = os.environ if env is None else env
        kind = env.get("HGDA_EXECUTOR", "local") or "local"
        if kind not in KINDS:
            raise ValueError(f"HGDA_EXECUTOR must be one of {', '.join(KINDS)}, got {kind!r}")

        def positive(name: str, default: int, minimum: int = 1) -> int:
            raw = env.get(name, "") or str(default)
            if not raw.isdigit() or int(raw) < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {raw!r}")
            return int(raw)

        slurm = {
            "timeout_min": positive("HGDA_SLURM_TIME_MIN", 360),
            "mem_gb": positive("HGDA_SLURM_MEM_GB", 8),
            "slurm_array_parallelism": positive("HGDA_SLURM_PARALLELISM", 64),
        }
        gpus = positive("HGDA_SLURM_GPUS", 0, minimum=0)
        if gpus:
            slurm["gpus_per_node"] = gpus
        for name, key in (("HGDA_SLURM_PARTITION", "slurm_partition"), ("HGDA_SLURM_ACCOUNT", "slurm_account")):
            if env.get(name):
                slurm[key] = env[name]
        return cls(kind, positive("HGDA_JOBS", os.cpu_count() or 1), slurm, Path(env.get("HGDA_SLURM_LOGS", "cells/slurm")))

    def describe(self) -> str:
        if self.kind == "local":
            return f"local, {self.jobs} worker(s)" if self.jobs > 1 else "local, in this process"
        return f"{self.kind} (submitit), one job array"


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _call(fn: Callable[[Any], Any], cell: Any, threads: int) -> tuple[Any, float]:
    """``fn(cell)`` with ``threads`` torch threads, and its wall time."""
    _init_worker(threads)
    start = time.perf_counter()
    return fn(cell), time.perf_counter() - start


def run_cells(
    fn: Callable[[Any], Any],
    cells: Sequence[Any],
    labels: Sequence[str],
    settings: ExecutorSettings,
    threads: int = 1,
    describe: Callable[[Any], str] | None = None,
    desc: str = "cells",
    progress: bool = True,
) -> list[Any]:
    """``fn(cell)`` for every cell on the executor of ``settings``; the results in the
    cells' order.

    ``fn`` must be a module-level function and the cells picklable (they travel to other
    processes or machines).  ``describe(result)`` adds to each finished cell's log line
    (e.g. its iterations and stop reason).

    Raises:
        CellsFailed: after every cell has finished or failed, naming the failed ones.
    """
    results: dict[int, Any] = {}
    failures: dict[str, str] = {}
    if not cells:
        return []
    log.info("%s: %d cell(s) on %s", desc, len(cells), settings.describe())
    bar = tqdm(total=len(cells), desc=desc, unit="cell", disable=not progress)

    def finished(i: int, result: Any, seconds: float) -> None:
        results[i] = result
        bar.update(1)
        extra = f", {describe(result)}" if describe is not None else ""
        log.info("%s: %s done in %.0f s%s (%d/%d)", desc, labels[i], seconds, extra, len(results) + len(failures), len(cells))

    def failed(i: int, error: str) -> None:
        failures[labels[i]] = error
        bar.update(1)
        log.error("%s: %s failed: %s", desc, labels[i], error.strip().splitlines()[-1] if error.strip() else "?")

    try:
        if settings.kind == "local" and (settings.jobs == 1 or len(cells) == 1):
            for i, cell in enumerate(cells):
                try:
                    finished(i, *_call(fn, cell, threads))
                except Exception:  # noqa: BLE001 -- reported with the others below
                    failed(i, traceback.format_exc())
        elif settings.kind == "local":
            context = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(min(settings.jobs, len(cells)), mp_context=context) as pool:
                futures = {pool.submit(_call, fn, cell, threads): i for i, cell in enumerate(cells)}
                for future in cf.as_completed(futures):
                    try:
                        finished(futures[future], *future.result())
                    except Exception:  # noqa: BLE001
                        failed(futures[future], traceback.format_exc())
        else:
            _run_submitit(fn, cells, settings, threads, finished, failed)
    finally:
        bar.close()
    if failures:
        raise CellsFailed(failures)
    return [results[i] for i in range(len(cells))]


def _run_submitit(fn, cells, settings: ExecutorSettings, threads: int, finished, failed) -> None:
    """Submit every cell as one job array and wait for them (``slurm`` / ``submitit-local``)."""
    import submitit

    cluster = "local" if settings.kind == "submitit-local" else "slurm"
    executor = submitit.AutoExecutor(folder=str(settings.logs / "%j"), cluster=cluster)
    parameters = {"cpus_per_task": threads, "name": "hgda-cells", **settings.slurm}
    if cluster == "local":
        parameters = {k: v for k, v in parameters.items() if not k.startswith("slurm_")}
    executor.update_parameters(**parameters)
    jobs = executor.map_array(_call, [fn] * len(cells), list(cells), [threads] * len(cells))
    log.info("submitted job array %s (%d tasks)", jobs[0].job_id.split("_")[0], len(jobs))
    pending = dict(enumerate(jobs))
    poll = 0.5 if cluster == "local" else 15.0
    while pending:
        for i, job in list(pending.items()):
            if not job.done():
                continue
            del pending[i]
            try:
                finished(i, *job.result())
            except Exception as err:  # noqa: BLE001 -- submitit's error carries the cell's traceback
                text = str(err)
                parts = text.split("-" * 22)  # the traceback sits between two rules, the log paths after
                failed(i, parts[1] if len(parts) >= 3 else text)
        if pending:
            time.sleep(poll)
