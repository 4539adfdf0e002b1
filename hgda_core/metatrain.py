"""Meta-train one method with one domain held out (paper §4.2): set-up and logging.

Builds the tagger (θ shared, one φ per *source* domain, ω over the source domains),
the task samplers and the learner for a method, runs :func:`hgda_core.trainer.train`
and writes the training log: per iteration, per task, its domain, sentences (corpus,
index), entity counts, adapted losses and hardness weights — the raw material of the
paper's Table 1.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from hgda_core.data import Corpus
from hgda_core.io import atomic_write
from hgda_core.meta import MetaConfig, MetaLearner
from hgda_core.methods import method_spec
from hgda_core.models import Tagger, TaggerFactory
from hgda_core.models.tagger import SHARED_DECODER
from hgda_core.optim import OptimConfig, linear_schedule, param_groups, scaled_lr, sgd
from hgda_core.sampler import TaskSampler
from hgda_core.trainer import TrainConfig, TrainResult, train
from hgda_core.transfer import TransferLearner


@dataclass
class MetaTrainParams(OptimConfig):
    """The ``meta`` section of params.yaml, less the lists of domains and methods (the
    optimiser keys are :class:`hgda_core.optim.OptimConfig`'s)."""

    tasks_per_batch: int = 8
    adaptation_steps: int = 1
    lam: float = 1.0
    gradient: str = "first_order"
    implicit_reg: float = 1.0
    cg_steps: int = 5
    outer_lab_set: str = "support"
    ne_only_sets: str = "support"
    max_iterations: int = 150
    eval_every: int = 25
    patience: int = 3
    val_tasks: int = 24
    loss_reduction: str = "mean"
    min_rel_delta: float = 0.0
    schedule_horizon: int = 0
    snapshots: tuple[int, ...] = ()
    log_every: int = 1
    inner_lr: float = 0.0
    inner_decoder: str = "source"
    val_adapt_steps: int = 0
    val_adapt_lr: float = 0.03
    replicate: int = 0

    def __post_init__(self) -> None:
        self.snapshots = tuple(int(i) for i in self.snapshots or ())
        if self.inner_lr < 0 or self.val_adapt_steps < 0 or self.replicate < 0:
            raise ValueError(f"meta.inner_lr, meta.val_adapt_steps and meta.replicate must be >= 0, "
                             f"got {self.inner_lr}, {self.val_adapt_steps}, {self.replicate}")
        if self.log_every < 1:
            raise ValueError(f"meta.log_every must be >= 1, got {self.log_every}")
        if any(i < 0 for i in self.snapshots) or self.schedule_horizon < 0 or self.min_rel_delta < 0:
            raise ValueError("meta.snapshots, meta.schedule_horizon and meta.min_rel_delta must be >= 0, "
                             f"got {list(self.snapshots)}, {self.schedule_horizon}, {self.min_rel_delta}")

    @property
    def inner_default_lr(self) -> float:
        """β's rate at K = ``reference_k`` (eq. 3 scales it): ``inner_lr``, or, when 0,
        ``default_lr`` — β = α as the Appendix's single rate."""
        return self.inner_lr or self.default_lr

    @property
    def horizon(self) -> int:
        """Iterations over which the linear schedule decays the rate to 0 (0: the cap)."""
        return self.schedule_horizon or self.max_iterations


def derive_seed(seed: int, *parts: object) -> int:
    """A stable seed from the master seed and names (independent of Python's hash salt)."""
    return (seed * 1_000_003 + zlib.crc32("/".join(map(str, parts)).encode())) % (2**31)


def source_domains(
    corpora: Mapping[str, Corpus], held_out: str | None
) -> dict[str, list[Corpus]]:
    """Source domain → its corpora: every domain but the held-out one (never seen);
    ``held_out=None``: every domain (a release model for new entity types)."""
    by_domain: dict[str, list[Corpus]] = {}
    for corpus in corpora.values():
        if corpus.domain != held_out:
            by_domain.setdefault(corpus.domain, []).append(corpus)
    if not by_domain:
        raise ValueError(f"no source domain is left when {held_out} is held out")
    return by_domain


class JsonlGzLog:
    """Collects log records and writes them as gzipped JSON lines, atomically.

    ``every`` > 1 keeps the records of iteration 1 and of every ``every``-th iteration
    only (``meta.log_every``): a uniform sample of the tasks for Table 1 and the hardness
    plot at a tenth of the size when ``every`` is 10.
    """

    def __init__(self, every: int = 1) -> None:
        self.records: list[dict] = []
        self.every = every

    def __call__(self, record: dict) -> None:
        iteration = int(record.get("iteration", 1))
        if iteration == 1 or iteration % self.every == 0:
            self.records.append(record)

    def state_dict(self) -> dict:
        """The records so far (saved with a resumable run's state)."""
        return {"records": list(self.records)}

    def load_state_dict(self, state: dict) -> None:
        self.records = list(state["records"])

    def write(self, path: str | Path) -> None:
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
            for record in self.records:
                gz.write((json.dumps(record, separators=(",", ":")) + "\n").encode())
        with atomic_write(path, "wb") as fh:
            fh.write(buffer.getvalue())


def read_log(path: str | Path) -> list[dict]:
    """Read a log written by :class:`JsonlGzLog`."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def meta_train(
    corpora: Mapping[str, Corpus],
    factory: TaggerFactory,
    held_out: str | None,
    method: str,
    k: int,
    params: MetaTrainParams,
    seed: int,
    log: JsonlGzLog | None = None,
    progress: bool = True,
    theta_lr: float | None = None,
    device: torch.device | str = "cpu",
    amp: bool = False,
    state_file: str | Path | None = None,
    state_key: Mapping[str, Any] | None = None,
) -> tuple[Tagger, TrainResult]:
    """Meta-train ``method`` on every domain but ``held_out`` with tasks of size K.

    Args:
        corpora: processed corpora by name (the held-out domain's are ignored).
        factory: builds the tagger (:meth:`hgda_core.models.ModelSpec.factory`).
        held_out: the target domain, unseen during training; None: train on every
            domain (the release model, stage ``release``).
        method: ``hgda``, ``hgda_nes``, ``metaner`` or ``transfer``.
        k: support/query size; α = β by eq. 3.
        params: the ``meta`` params.
        seed: master seed; the model, sampler and validation tasks derive from it.
        log: receives each iteration's record.
        progress: show a progress bar.
        theta_lr: the encoder's own default learning rate (BERT: 1e-5 at K = 32,
            Appendix), scaled by eq. 3 like ``params.default_lr``; None: θ uses
            ``params.default_lr`` too (BiLSTM).
        device: where to train; ``amp``: bfloat16 autocast of the encoder on CUDA.
        state_file: a resumable run (:func:`hgda_core.trainer.train`): the loop's state is
            saved there at every meta-validation and a run of the same arguments resumes
            from it. ``state_key``: what else identifies the run (e.g. the model and corpora
            params); this function adds held_out, method, K, seed, θ's rate and ``params``.
    """
    spec = method_spec(method)
    sources = source_domains(corpora, held_out)
    domains = sorted(sources)
    # meta.replicate r > 0: another meta-training seed (initialisation and task stream);
    # the validation tasks and every adaptation draw stay the same.
    again = (params.replicate,) if params.replicate else ()
    torch.manual_seed(derive_seed(seed, held_out, method, k, "init", *again))
    model = factory(domains, domains).to(device)
    model.amp = amp
    ne_only = params.ne_only_sets if spec.ne_only else "none"
    sampler = TaskSampler(sources, "train", k, ne_only, derive_seed(seed, held_out, method, k, "tasks", *again))
    # The same validation tasks for every method: the seed omits the method.
    val_tasks = TaskSampler(sources, "devel", k, "none", derive_seed(seed, held_out, k, "val")).fixed_tasks(params.val_tasks)
    lr = scaled_lr(params.default_lr, k, params.reference_k)
    theta = lr if theta_lr is None else scaled_lr(theta_lr, k, params.reference_k)
    if params.inner_decoder == "shared":
        model.add_decoder(SHARED_DECODER)  # φ_0, the learned start of a new domain's decoder
    config = MetaConfig(
        alpha=lr,
        beta=scaled_lr(params.inner_default_lr, k, params.reference_k),
        lam=0.0 if spec.learner == "transfer" else params.lam,
        adaptation_steps=params.adaptation_steps,
        weighting=spec.weighting,
        adversarial=spec.adversarial,
        outer_lab_set=params.outer_lab_set,  # type: ignore[arg-type]
        gradient=params.gradient,  # type: ignore[arg-type]
        implicit_reg=params.implicit_reg,
        cg_steps=params.cg_steps,
        theta_lr_scale=theta / lr,
        loss_reduction=params.loss_reduction,  # type: ignore[arg-type]
        inner_decoder=params.inner_decoder,  # type: ignore[arg-type]
    )
    optimizer = sgd(param_groups(model.named_parameters(), lr, theta), lr, params.momentum, params.weight_decay)
    scheduler = linear_schedule(optimizer, params.horizon)
    learner_cls = TransferLearner if spec.learner == "transfer" else MetaLearner
    learner = learner_cls(model, config, optimizer, scheduler, params.grad_clip)
    if params.val_adapt_steps:
        learner.validator = adaptation_validator(
            params.val_adapt_steps, scaled_lr(params.val_adapt_lr, k, params.reference_k), params,
            "shared" if params.inner_decoder == "shared" else "fresh",
        )
    loop = TrainConfig(params.tasks_per_batch, params.max_iterations, params.eval_every, params.patience,
                       min_rel_delta=params.min_rel_delta, snapshots=params.snapshots)
    key = {**(state_key or {}), "held_out": held_out, "method": method, "k": k, "seed": seed,
           "theta_lr": theta_lr, "meta": dataclasses.asdict(params)}
    result = train(learner, sampler, val_tasks, loop, log, progress, state_file, key)
    return model, result


def adaptation_validator(steps: int, lr: float, optim: OptimConfig, decoder_init: str = "fresh"):
    """A meta-validation that measures what Table 3 measures: each validation task's support
    set adapts a copy of the model with a *new* decoder (:func:`hgda_core.adapt.fine_tune`,
    ``steps`` steps at ``lr``, the optimiser keys of ``optim``, seeded by the task's index),
    and the score is the mean L^lab of the adapted copies on the query sets (dropout off)."""
    from hgda_core.adapt import fine_tune

    def validate(model: Tagger, tasks: Sequence[Any]) -> float:
        total = 0.0
        for i, task in enumerate(tasks):
            adapted = fine_tune(model, task.domain, task.support, steps, lr, optim.momentum, optim.weight_decay,
                                optim.grad_clip, seed=i, decoder_init=decoder_init)
            batch = adapted.task_batch(task.query, [], task.domain)
            with torch.no_grad():
                total += float(adapted(batch, batch.support, None)[0])
        return total / max(1, len(tasks))

    return validate


def result_metrics(result: TrainResult, k: int, sources: Sequence[str]) -> dict:
    """The small metrics record of one run."""
    return {
        "shots": k,
        "source_domains": list(sources),
        "initial_val_loss": round(result.initial_val_loss, 4),
        "best_val_loss": round(result.best_val_loss, 4),
        "best_iteration": result.best_iteration,
        "iterations": result.iterations,
        "stopped_by": result.stopped_by,
        "seconds": round(result.seconds, 1),
        **({"resumed_at": result.resumed_at} if result.resumed_at else {}),
    }
