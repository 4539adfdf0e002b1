"""Entity-level precision, recall and F1 (paper Tables 3–5), seqeval in strict IOB2 mode.

An entity is a span ``(sentence, type, start, end)``; a prediction counts as a true
positive only when its span *and* type equal a gold span exactly (CoNLL-style, "strict"
mode: a prediction that overlaps a gold entity with a different boundary is one false
positive *and* one false negative).  Spans are read with seqeval's IOB2 scheme: an ``I``
that does not continue an entity (``O I``) opens no entity — a Viterbi path with such a
tag gets no credit for it (:mod:`hgda_core.data` repairs gold tags to IOB2 on reading).

The benchmark corpora's tags are plain ``B``/``I``/``O`` (no type); they are scored as
one type, ``ENT``.  Typed tags (``B-Disease``) keep their type.

Zero-division conventions (the values are seqeval's/scikit-learn's defaults; we ask for
them explicitly with ``zero_division=0``, which also silences seqeval's
``UndefinedMetricWarning`` — these cases are expected with K = 5 sentences, not
accidents):

* a model that predicts no entity has precision 0, hence F1 0;
* a gold set with no entity has recall 0, hence F1 0 (also when nothing is predicted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from seqeval.metrics.v1 import precision_recall_fscore_support
from seqeval.scheme import IOB2, Entities

PLAIN_TYPE = "ENT"
"""The type given to untyped ``B``/``I`` tags before scoring."""


@dataclass(frozen=True)
class EntityScores:
    """Micro-averaged entity-level scores and the counts they come from.

    ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``, F1 their harmonic mean
    (each 0 where its denominator is 0; see the module docstring).
    """

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def typed(tags: Sequence[str], entity_type: str = PLAIN_TYPE) -> list[str]:
    """Give untyped ``B``/``I`` tags the type ``entity_type``; typed tags stay as they are."""
    return [f"{t}-{entity_type}" if t in ("B", "I") else t for t in tags]


def entity_spans(sequences: Sequence[Sequence[str]]) -> set[tuple[int, str, int, int]]:
    """The strict IOB2 entities of tag sequences as ``(sentence, type, start, end)`` (end exclusive)."""
    entities = Entities([typed(s) for s in sequences], IOB2)
    return {e.to_tuple() for sent in entities.entities for e in sent}


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> EntityScores:
    """Entity-level P/R/F1 and TP/FP/FN of ``pred`` against ``gold`` (strict IOB2).

    P/R/F1 are seqeval's (``seqeval.metrics.f1_score(..., mode="strict", scheme=IOB2)``,
    micro average); the entities are extracted once and shared with the counts, so the
    counts and the scores cannot disagree.

    Args:
        gold: gold tag sequences, one per sentence.
        pred: predicted tag sequences, same number and lengths.

    Raises:
        ValueError: on a different number of sentences or a length mismatch.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    y_true, y_pred = [typed(s) for s in gold], [typed(s) for s in pred]
    ent_true, ent_pred = Entities(y_true, IOB2), Entities(y_pred, IOB2)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="micro", scheme=IOB2, zero_division=0,
        entities_true=ent_true, entities_pred=ent_pred,
    )
    true_set = {e.to_tuple() for sent in ent_true.entities for e in sent}
    pred_set = {e.to_tuple() for sent in ent_pred.entities for e in sent}
    tp = len(true_set & pred_set)
    return EntityScores(float(precision), float(recall), float(f1), tp, len(pred_set) - tp, len(true_set) - tp)


def entity_scores_by_type(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> dict[str, EntityScores]:
    """:func:`entity_scores` of each entity type alone, for every type in ``gold`` or ``pred``.

    For type X every tag of another type counts as ``O``; under strict IOB2 this changes
    no entity of type X, so the per-type TP/FP/FN add up to the micro-averaged counts.
    Plain ``B``/``I`` tags are type :data:`PLAIN_TYPE`.
    """
    y_true, y_pred = [typed(s) for s in gold], [typed(s) for s in pred]
    types = sorted({t[2:] for seq in (*y_true, *y_pred) for t in seq if t != "O"})

    def only(seqs: list[list[str]], kind: str) -> list[list[str]]:
        return [[t if t[2:] == kind else "O" for t in seq] for seq in seqs]

    return {kind: entity_scores(only(y_true, kind), only(y_pred, kind)) for kind in types}
