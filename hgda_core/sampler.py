"""Task generation p(T) (paper §3.2).

A task T_i comes from one source domain and holds a support set T_i^S and a query set
T_i^Q of K sentences each, with T_i^S ∩ T_i^Q = ∅.  The HGDA-NEs sampler draws only
sentences with at least one named entity: in the support set alone (§3.2: "selecting
the K sentences in T_i^S to be those containing at least one biomedical NE") or in both
sets (§4.2: "HGDA-NEs only trains with sentences that contains at least one bioNE").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np

from hgda_core.data import Corpus, Sentence

NEOnly = Literal["none", "support", "both"]


@dataclass
class Task:
    """One bioNER task: a domain, its support and query sentences, and where they came from."""

    domain: str
    support: list[Sentence]
    query: list[Sentence]
    support_refs: list[tuple[str, int]] = field(default_factory=list)
    query_refs: list[tuple[str, int]] = field(default_factory=list)


class DomainPool:
    """The sentences of one domain's corpora in one split, pooled, with their origins."""

    def __init__(self, corpora: Sequence[Corpus], split: str) -> None:
        self.sentences: list[Sentence] = []
        self.refs: list[tuple[str, int]] = []
        for corpus in corpora:
            for i, sentence in enumerate(corpus[split]):
                self.sentences.append(sentence)
                self.refs.append((corpus.name, i))
        self.with_entity = np.array([i for i, s in enumerate(self.sentences) if s.has_entity], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.sentences)


class TaskSampler:
    """Draws tasks from the source domains' ``split`` (paper §3.2).

    Args:
        corpora_by_domain: source domain → its corpora.
        split: ``train`` for meta-training tasks, ``devel`` for meta-validation tasks.
        k: sentences per support set and per query set.
        ne_only: ``none`` (HGDA, MetaNER), ``support`` or ``both`` (HGDA-NEs readings).
        seed: seed of the sampler's own generator.
    """

    def __init__(
        self,
        corpora_by_domain: Mapping[str, Sequence[Corpus]],
        split: str,
        k: int,
        ne_only: NEOnly = "none",
        seed: int = 0,
    ) -> None:
        if ne_only not in ("none", "support", "both"):
            raise ValueError(f"ne_only must be none, support or both, got {ne_only!r}")
        self.domains = sorted(corpora_by_domain)
        if not self.domains:
            raise ValueError("no source domain to sample tasks from")
        self.pools = {d: DomainPool(corpora_by_domain[d], split) for d in self.domains}
        self.k, self.ne_only = k, ne_only
        self.rng = np.random.default_rng(seed)
        for domain, pool in self.pools.items():
            need_ne = {"none": 0, "support": k, "both": 2 * k}[ne_only]
            if len(pool) < 2 * k or len(pool.with_entity) < need_ne:
                raise ValueError(
                    f"domain {domain} ({split}) has {len(pool)} sentences, {len(pool.with_entity)} with an "
                    f"entity; a task needs 2K = {2 * k} (and {need_ne} with an entity)"
                )

    def sample(self, domain: str | None = None) -> Task:
        """Draw one task; the domain is uniform over the source domains unless given."""
        if domain is None:
            domain = self.domains[int(self.rng.integers(len(self.domains)))]
        pool, k, rng = self.pools[domain], self.k, self.rng
        if self.ne_only == "both":
            picked = rng.choice(pool.with_entity, size=2 * k, replace=False)
        elif self.ne_only == "support":
            support = rng.choice(pool.with_entity, size=k, replace=False)
            rest = np.setdiff1d(np.arange(len(pool)), support, assume_unique=True)
            picked = np.concatenate([support, rng.choice(rest, size=k, replace=False)])
        else:
            picked = rng.choice(len(pool), size=2 * k, replace=False)
        s_idx, q_idx = picked[:k].tolist(), picked[k:].tolist()
        return Task(
            domain,
            [pool.sentences[i] for i in s_idx],
            [pool.sentences[i] for i in q_idx],
            [pool.refs[i] for i in s_idx],
            [pool.refs[i] for i in q_idx],
        )

    def state_dict(self) -> dict:
        """The generator's state: a sampler loaded with it draws the same tasks next."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict` (a resumed meta-training run)."""
        self.rng.bit_generator.state = state["rng"]

    def fixed_tasks(self, n: int) -> list[Task]:
        """``n`` tasks with the domains taken in turn (a fixed meta-validation set)."""
        return [self.sample(self.domains[i % len(self.domains)]) for i in range(n)]
