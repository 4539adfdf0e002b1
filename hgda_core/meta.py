"""Hardness-guided bilevel optimisation (paper §3.3–3.4, Algorithms 1 and 2).

The core is functional: fast weights are a plain ``dict`` of tensors evaluated with
:func:`torch.func.functional_call`, so a task's adaptation never copies the model (nor
its frozen word vectors).  Support and query of a task are encoded in one pass; the
losses pick their rows.

Gradient approximations (Appendix): ``first_order`` (Nichol et al., 2018) uses the
gradient at the adapted weights θ_i as the meta-gradient; ``implicit`` (iMAML,
Rajeswaran et al., 2019) adapts with a proximal term ``reg/2·||θ_i − θ||²`` and solves
``(I + H/reg) g = ∇L_outer(θ_i)`` by conjugate gradients with Hessian-vector products.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from hgda_core.hardness import Weighting, task_weights
from hgda_core.models.crf import TAG_HEADS
from hgda_core.models.tagger import GROUPS, SHARED_DECODER, TaskBatch, Tagger, param_group
from hgda_core.sampler import Task

Params = dict[str, Tensor]


INNER_DECODERS: tuple[str, ...] = ("source", "fresh", "shared")


@dataclass
class MetaConfig:
    """Knobs of Algorithms 1 and 2.

    Args:
        alpha: outer learning rate α (eq. 3 scales it with K).
        beta: inner learning rate β.
        lam: λ of eq. 1, weight of the domain-classification loss.
        adaptation_steps: inner SGD steps per task (Alg. 2 line 2).
        weighting: ``hardness`` (eq. 2) or ``uniform`` (MetaNER).
        adversarial: reverse the gradient L^cls sends into θ (MetaNER's discriminator).
        outer_lab_set: set on which the adapted L^lab is evaluated: ``support``
            (Alg. 2 line 10 as printed) or ``query`` (§3.3: "validate on T_i^Q").
        gradient: ``first_order`` or ``implicit``.
        implicit_reg: the proximal strength of iMAML.
        cg_steps: conjugate-gradient iterations of iMAML.
        theta_lr_scale: the encoder θ's inner rate is ``beta · theta_lr_scale`` (1 for
            the BiLSTM; BERT's 1e-5 / default_lr, Appendix); the outer optimiser holds
            the same ratio in its parameter groups (:func:`hgda_core.metatrain.meta_train`).
        loss_reduction: how L^lab and L^cls of eq. 1 reduce over a set's sentences:
            ``mean`` (the per-sentence average) or ``sum`` (pytorch-crf's default and
            many BiLSTM-CRF codes': every step ≈ K× larger before clipping).  The paper
            does not say; eq. 2's ratios are the same under both (every set has K
            sentences).  The meta-validation loss is always the mean, so that curves of
            either reduction compare.
        inner_decoder: the decoder a task's inner loop starts from: ``source`` (the
            task's own source-domain decoder φ_d, Algorithm 2 as printed), ``fresh`` (a
            newly initialised decoder per task, as adaptation to a new domain starts: only
            θ and ω carry over; the source decoders get no update) or ``shared`` (one
            decoder start φ_0, learned by the meta-gradient of every task, that adaptation
            can start a new domain from: ``adapt.decoder_init: shared``).
    """

    alpha: float = 1e-2
    beta: float = 1e-2
    lam: float = 1.0
    adaptation_steps: int = 1
    weighting: Weighting = "hardness"
    adversarial: bool = False
    outer_lab_set: Literal["support", "query"] = "support"
    gradient: Literal["first_order", "implicit"] = "first_order"
    implicit_reg: float = 1.0
    cg_steps: int = 5
    theta_lr_scale: float = 1.0
    loss_reduction: Literal["mean", "sum"] = "mean"
    inner_decoder: Literal["source", "fresh", "shared"] = "source"

    def __post_init__(self) -> None:
        if self.loss_reduction not in ("mean", "sum"):
            raise ValueError(f"loss_reduction must be mean or sum, got {self.loss_reduction!r}")
        if self.inner_decoder not in INNER_DECODERS:
            raise ValueError(f"inner_decoder must be one of {', '.join(INNER_DECODERS)}, got {self.inner_decoder!r}")

    @property
    def cls_grad_scale(self) -> float:
        return -self.lam if self.adversarial else self.lam


@dataclass
class TaskResult:
    """The adapted losses of one task (Alg. 2 line 12) and its meta-gradient."""

    lab: float
    cls: float
    grads: Params


def conjugate_gradient(
    matvec: Callable[[list[Tensor]], list[Tensor]], b: list[Tensor], steps: int, tol: float = 1e-10
) -> list[Tensor]:
    """Solve ``A x = b`` for a symmetric positive-definite ``A`` given as ``matvec``.

    Vectors are lists of tensors (one per parameter).  Starts from x = 0.
    """
    x = [torch.zeros_like(t) for t in b]
    r = [t.clone() for t in b]
    p = [t.clone() for t in b]
    rs = sum((t * t).sum() for t in r)
    for _ in range(steps):
        if rs <= tol:
            break
        ap = matvec(p)
        step = rs / sum((pi * api).sum() for pi, api in zip(p, ap))
        x = [xi + step * pi for xi, pi in zip(x, p)]
        r = [ri - step * api for ri, api in zip(r, ap)]
        rs_new = sum((t * t).sum() for t in r)
        p = [ri + (rs_new / rs) * pi for ri, pi in zip(r, p)]
        rs = rs_new
    return x


def rows_in(batch: TaskBatch, rows: slice | None) -> int:
    """How many sentences of ``batch`` the slice ``rows`` selects (0 for None)."""
    return 0 if rows is None else len(range(*rows.indices(batch.tag_ids.shape[0])))


class MetaLearner:
    """Runs Algorithm 1 on a :class:`Tagger`, one batch of tasks per :meth:`step`.

    Args:
        model: the tagger (θ, φ, ω).
        config: the algorithm's knobs.
        optimizer: applies the outer update (SGD with momentum, Appendix).
        scheduler: optional learning-rate schedule, stepped after each outer update.
        grad_clip: maximum norm of the aggregated meta-gradient (Appendix: 5).
    """

    def __init__(
        self,
        model: Tagger,
        config: MetaConfig,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        grad_clip: float | None = 5.0,
    ) -> None:
        self.model, self.config = model, config
        self.optimizer, self.scheduler, self.grad_clip = optimizer, scheduler, grad_clip
        self.params: dict[str, nn.Parameter] = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.validator: Callable[[Tagger, Sequence[Task]], float] | None = None
        """Replaces the inner-loop meta-validation (``meta.val_adapt_steps``: adaptation's protocol)."""

    # -- the pieces of Algorithm 2 ------------------------------------------------------
    def task_params(self, domain: str, generator: torch.Generator | None = None) -> Params:
        """θ, a decoder for ``domain``, and ω: the weights a task of ``domain`` starts from.

        The decoder's weights are named ``decoders.<domain>.*`` whatever they start from
        (:attr:`MetaConfig.inner_decoder`): the source decoder φ_d, a freshly initialised
        one (drawn with ``generator``, else torch's global generator), or the shared start
        φ_0.  Only the source and shared ones are parameters of the model.
        """
        prefix = f"decoders.{domain}."
        own = self.config.inner_decoder == "source"
        out = {n: p for n, p in self.params.items() if not n.startswith("decoders.") or own and n.startswith(prefix)}
        if self.config.inner_decoder == "shared":
            start = f"decoders.{SHARED_DECODER}."
            out.update({prefix + n[len(start):]: p for n, p in self.params.items() if n.startswith(start)})
        elif self.config.inner_decoder == "fresh":
            out.update({prefix + n: p for n, p in self.fresh_decoder(generator).items()})
        return out

    def fresh_decoder(self, generator: torch.Generator | None = None) -> Params:
        """The parameters of a newly initialised decoder of the model's kind and labels."""
        with torch.random.fork_rng(devices=[], enabled=generator is not None):
            if generator is not None:
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            head = TAG_HEADS[self.model.tag_head](self.model.encoder.output_dim, self.model.labels)
        device = self.model.device
        return {n: p.detach().to(device).requires_grad_() for n, p in head.named_parameters()}

    def meta_gradient_names(self, grads: Params, domain: str) -> Params:
        """The task's gradient under the names of the model's parameters: a fresh decoder's
        share is dropped, the shared start's goes to φ_0 (``decoders._shared.*``)."""
        if self.config.inner_decoder == "source":
            return grads
        prefix = f"decoders.{domain}."
        out = {n: g for n, g in grads.items() if not n.startswith(prefix)}
        if self.config.inner_decoder == "shared":
            out.update({f"decoders.{SHARED_DECODER}." + n[len(prefix):]: g for n, g in grads.items() if n.startswith(prefix)})
        return out

    def losses(
        self, params: Params, batch: TaskBatch, lab_rows: slice | None, cls_rows: slice | None,
        reduction: str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(L^lab, L^cls) of eq. 1 at the weights ``params``, reduced over each set's
        sentences by ``reduction`` (default: :attr:`MetaConfig.loss_reduction`)."""
        lab, cls = functional_call(self.model, params, (batch, lab_rows, cls_rows, self.config.cls_grad_scale))
        if (reduction or self.config.loss_reduction) == "sum":
            lab, cls = lab * rows_in(batch, lab_rows), cls * rows_in(batch, cls_rows)
        return lab, cls

    def _grads(self, loss: Tensor, params: Params, create_graph: bool = False) -> Params:
        names = list(params)
        grads = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True, create_graph=create_graph)
        return {n: torch.zeros_like(params[n]) if g is None else g for n, g in zip(names, grads)}

    def adapt(self, batch: TaskBatch, generator: torch.Generator | None = None) -> Params:
        """Alg. 2 lines 1–9: inner SGD steps with β on L^lab(T^S) + λ·L^cls(T^Q).

        One backward pass gives θ ← θ − β∇θ L_i, φ ← φ − β∇φ L^lab, ω ← ω − β∇ω L^cls
        (the λ on θ's share of L^cls is applied by the gradient scale in the model); φ
        starts as :meth:`task_params` says.
        """
        start = self.task_params(batch.domain, generator)
        fast = start
        beta, reg = self.config.beta, self.config.implicit_reg
        rate = {n: beta * (self.config.theta_lr_scale if param_group(n) == "theta" else 1.0) for n in start}
        implicit = self.config.gradient == "implicit"
        for _ in range(self.config.adaptation_steps):
            lab, cls = self.losses(fast, batch, batch.support, batch.query)
            grads = self._grads(lab + cls, fast)
            fast = {
                n: (p - rate[n] * (grads[n] + (reg * (p - start[n]) if implicit else 0.0))).detach().requires_grad_()
                for n, p in fast.items()
            }
        return fast

    def outer_rows(self, batch: TaskBatch) -> slice:
        return batch.support if self.config.outer_lab_set == "support" else batch.query

    def task_result(self, batch: TaskBatch) -> TaskResult:
        """Alg. 2 lines 10–12 and the task's meta-gradient (first-order or implicit)."""
        fast = self.adapt(batch)
        lab, cls = self.losses(fast, batch, self.outer_rows(batch), batch.query)
        grads = self._grads(lab + cls, fast)
        if self.config.gradient == "implicit":
            grads = self._implicit(batch, fast, grads)
        return TaskResult(lab.item(), cls.item(), self.meta_gradient_names(grads, batch.domain))

    def _implicit(self, batch: TaskBatch, fast: Params, outer: Params) -> Params:
        """iMAML: g = (I + H/reg)^-1 ∇L_outer(θ_i), H the Hessian of the inner loss at θ_i."""
        names = list(fast)
        lab, cls = self.losses(fast, batch, batch.support, batch.query)
        inner = self._grads(lab + cls, fast, create_graph=True)
        flat_inner = [inner[n] for n in names]
        reg = self.config.implicit_reg

        def matvec(v: list[Tensor]) -> list[Tensor]:
            hv = torch.autograd.grad(flat_inner, [fast[n] for n in names], grad_outputs=v, retain_graph=True, allow_unused=True)
            return [vi + (torch.zeros_like(vi) if h is None else h) / reg for vi, h in zip(v, hv)]

        solved = conjugate_gradient(matvec, [outer[n].detach() for n in names], self.config.cg_steps)
        return {n: s.detach() for n, s in zip(names, solved)}

    # -- Algorithm 1 ----------------------------------------------------------------------
    def step(self, tasks: Sequence[Task]) -> dict:
        """One iteration of Alg. 1 (lines 3–12) on a batch of m tasks.

        Returns:
            A log record: per task its adapted losses and hardness weights per group.
        """
        self.model.train()
        results = [self.task_result(self.model.task_batch(t.support, t.query, t.domain)) for t in tasks]
        lab = torch.tensor([r.lab for r in results], dtype=torch.float64)
        cls = torch.tensor([r.cls for r in results], dtype=torch.float64)
        weights = task_weights(lab, cls, self.config.lam, self.config.weighting)  # line 9, eq. 2
        self.apply_update(results, weights)  # lines 10-12
        return {
            "lab": lab.tolist(),
            "cls": cls.tolist(),
            "gamma": {g: weights[g].tolist() for g in GROUPS},
        }

    def aggregate(self, results: Sequence[TaskResult], weights: dict[str, Tensor]) -> Params:
        """Σ_i γ_i^g ∇L_i for every parameter, with g its group (Alg. 1 lines 10–12)."""
        total: Params = {}
        for i, result in enumerate(results):
            for name, grad in result.grads.items():
                w = float(weights[param_group(name)][i])
                total[name] = total[name] + w * grad if name in total else w * grad
        return total

    def apply_update(self, results: Sequence[TaskResult], weights: dict[str, Tensor]) -> None:
        """Set the aggregated meta-gradient as ``.grad``, clip it, and step the optimiser."""
        total = self.aggregate(results, weights)
        self.optimizer.zero_grad(set_to_none=True)
        for name, grad in total.items():
            self.params[name].grad = grad.detach().clone()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for p in self.params.values() if p.grad is not None], self.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()

    def validation_loss(self, tasks: Sequence[Task]) -> float:
        """Meta-validation: mean L^lab on each task's query set after adapting on its support
        (from the decoder start of :attr:`MetaConfig.inner_decoder`).

        Run in eval mode (no dropout) so that the number is a deterministic function of
        the weights; it never changes the model.  The inner steps differentiate the
        encoder in eval mode, which cuDNN's RNN kernels refuse ("cudnn RNN backward can
        only be called in training mode"), so they run on PyTorch's native kernels (the
        same function; no effect on the CPU).
        """
        if self.validator is not None:
            return self.validator(self.model, tasks)
        was_training = self.model.training
        self.model.eval()
        total = 0.0
        for i, task in enumerate(tasks):
            batch = self.model.task_batch(task.support, task.query, task.domain)
            with torch.backends.cudnn.flags(enabled=False):
                # a fresh decoder of validation task i is the same at every evaluation
                fast = self.adapt(batch, torch.Generator().manual_seed(i))
            with torch.no_grad():
                lab, _ = self.losses(fast, batch, batch.query, None, reduction="mean")
            total += lab.item()
        self.model.train(was_training)
        return total / max(1, len(tasks))
