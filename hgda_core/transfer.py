"""The multi-source transfer baseline: ordinary supervised training, no meta-learning.

The shared encoder θ and the per-domain CRF decoders φ are trained on the sentences of
the same tasks the meta-learners see (support ∪ query, so the data budget per iteration
is equal), with L^lab (reduced over the sentences by ``meta.loss_reduction``) as the loss; there is no inner loop and no domain head.
"""

from __future__ import annotations

from typing import Sequence

import torch

from hgda_core.meta import MetaLearner
from hgda_core.models.tagger import GROUPS
from hgda_core.sampler import Task


class TransferLearner(MetaLearner):
    """Supervised multi-source training with the :class:`MetaLearner` interface.

    Construct it with ``MetaConfig(lam=0.0)`` so that the (unused) domain head sends no
    gradient into θ during meta-validation's adaptation steps.
    """

    def step(self, tasks: Sequence[Task]) -> dict:
        """One SGD step on the CRF loss of the tasks' sentences: the mean over tasks of
        each task's loss, itself reduced over its sentences by ``loss_reduction``."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        labs = []
        for task in tasks:
            batch = self.model.task_batch(task.support, task.query, task.domain)
            lab, _ = self.model(batch, slice(None), None)
            if self.config.loss_reduction == "sum":
                lab = lab * batch.tag_ids.shape[0]
            (lab / len(tasks)).backward()
            labs.append(lab.item())
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for p in self.params.values() if p.grad is not None], self.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        uniform = [1.0 / len(tasks)] * len(tasks)
        return {"lab": labs, "cls": [0.0] * len(tasks), "gamma": {g: uniform for g in GROUPS}}
