"""Corpus statistics (paper Table 2): per split, per corpus and per domain.

For every corpus and split, for every corpus over train + devel + test, and for every
domain (the corpora of one entity type pooled), :func:`compute_stats` counts:

- ``sentences`` and ``tokens``;
- ``unique_tokens``: distinct case-sensitive token strings over the union of the pooled
  splits (Table 2, "No. unique tokens");
- ``mentions`` (entity spans) and ``mean_mention_length`` (tokens per mention);
- ``pct_with_entity``: percentage of sentences with at least one entity (Table 2,
  "% sentences with NEs"; these are the HGDA-NEs sentences of §3.2);
- ``repairs``: IOB2 repairs made while reading (see :func:`hgda_core.data.repair_iob2`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hgda_core.data import SPLITS, Corpus, CorpusSplit, Sentence

METRICS: tuple[str, ...] = (
    "sentences",
    "tokens",
    "unique_tokens",
    "mentions",
    "mean_mention_length",
    "pct_with_entity",
    "repairs",
)
"""The statistics columns, in order."""

COUNT_METRICS = frozenset({"sentences", "tokens", "unique_tokens", "mentions", "repairs"})
"""The integer-valued metrics."""

TOTAL = "total"
"""The ``split`` label of rows pooling train, devel and test."""

INDEX: tuple[str, ...] = ("scope", "name", "split")
"""Index levels of the statistics frame; ``scope`` is ``corpus`` or ``domain``."""


@dataclass
class Counts:
    """Raw counts of a set of sentences; pooled with ``+``."""

    sentences: int = 0
    tokens: int = 0
    vocabulary: set[str] = field(default_factory=set)
    mentions: int = 0
    mention_tokens: int = 0
    with_entity: int = 0
    repairs: int = 0

    @classmethod
    def of_split(cls, split: CorpusSplit) -> Counts:
        """Count one split of a corpus."""
        counts = cls(repairs=split.repairs)
        for sentence in split:
            counts.add(sentence)
        return counts

    def add(self, sentence: Sentence) -> None:
        """Count one more sentence."""
        self.sentences += 1
        self.tokens += len(sentence)
        self.vocabulary.update(sentence.tokens)
        lengths = sentence.mention_lengths()
        self.mentions += len(lengths)
        self.mention_tokens += sum(lengths)
        self.with_entity += sentence.has_entity

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.sentences + other.sentences,
            self.tokens + other.tokens,
            self.vocabulary | other.vocabulary,
            self.mentions + other.mentions,
            self.mention_tokens + other.mention_tokens,
            self.with_entity + other.with_entity,
            self.repairs + other.repairs,
        )

    def summary(self) -> dict[str, int | float]:
        """The :data:`METRICS` of these counts (0 for a ratio over nothing)."""
        return {
            "sentences": self.sentences,
            "tokens": self.tokens,
            "unique_tokens": len(self.vocabulary),
            "mentions": self.mentions,
            "mean_mention_length": _ratio(self.mention_tokens, self.mentions),
            "pct_with_entity": 100.0 * _ratio(self.with_entity, self.sentences),
            "repairs": self.repairs,
        }


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def pooled(parts: Iterable[Counts]) -> Counts:
    """Pool several counts into one (vocabularies are united, not summed)."""
    total = Counts()
    for part in parts:
        total = total + part
    return total


def corpus_counts(corpus: Corpus) -> dict[str, Counts]:
    """Counts per split of a corpus, plus ``total`` over its splits."""
    counts = {split: Counts.of_split(corpus.splits[split]) for split in SPLITS}
    counts[TOTAL] = pooled(counts.values())
    return counts


def domain_counts(
    per_corpus: Mapping[str, dict[str, Counts]], corpora: Mapping[str, Corpus]
) -> dict[str, dict[str, Counts]]:
    """Counts per domain, pooling per split the corpora of each domain (first-seen order)."""
    members: dict[str, list[str]] = {}
    for name, corpus in corpora.items():
        members.setdefault(corpus.domain, []).append(name)
    return {
        domain: {key: pooled(per_corpus[n][key] for n in names) for key in (*SPLITS, TOTAL)}
        for domain, names in members.items()
    }


def compute_stats(corpora: Mapping[str, Corpus]) -> pd.DataFrame:
    """Statistics of every corpus (per split and total) and every domain.

    Args:
        corpora: name → corpus; each corpus's ``domain`` decides its domain.

    Returns:
        A frame indexed by (``scope``, ``name``, ``split``) with a ``domain`` column and
        the :data:`METRICS` columns; corpus rows come first, in the order given.
    """
    per_corpus = {name: corpus_counts(c) for name, c in corpora.items()}
    per_domain = domain_counts(per_corpus, corpora)
    rows: list[dict[str, Any]] = []
    for scope, table in (("corpus", per_corpus), ("domain", per_domain)):
        for name, by_split in table.items():
            domain = corpora[name].domain if scope == "corpus" else name
            for split, counts in by_split.items():
                key = {"scope": scope, "name": name, "split": split, "domain": domain}
                rows.append({**key, **counts.summary()})
    return pd.DataFrame(rows).set_index(list(INDEX))


def corpus_totals(stats: pd.DataFrame) -> pd.DataFrame:
    """The corpus rows over train + devel + test, indexed by corpus name."""
    return stats.xs(("corpus", TOTAL), level=("scope", "split"))


def stats_to_dict(stats: pd.DataFrame, decimals: int = 2) -> dict[str, Any]:
    """Nested plain dict ``{corpora|domains: {name: {split: {metric: value}}}}`` for JSON.

    Floats are rounded to ``decimals``; the ``domain`` column is dropped.
    """
    out: dict[str, Any] = {"corpora": {}, "domains": {}}
    for (scope, name, split), row in stats[list(METRICS)].iterrows():
        key = "corpora" if scope == "corpus" else "domains"
        out[key].setdefault(name, {})[split] = {m: _plain(m, row[m], decimals) for m in METRICS}
    return out


def _plain(metric: str, value: Any, decimals: int) -> int | float:
    """A JSON-friendly Python number for one metric."""
    return int(value) if metric in COUNT_METRICS else round(float(value), decimals)
