"""Entity-level scores: a known prediction gives hand-computed P/R/F1 and TP/FP/FN."""

from __future__ import annotations

import warnings

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from hgda_core.metrics import entity_scores, entity_spans, typed

# Gold entities (sentence, start, end): (0,0,2) (0,3,4) (0,6,7) (1,1,4) (3,0,1) — 5.
GOLD = [
    ["B", "I", "O", "B", "O", "O", "B"],
    ["O", "B", "I", "I", "O"],
    ["O", "O", "O"],
    ["B", "O"],
]
# Predicted: (0,0,2) exact → TP; (0,3,5) overlaps (0,3,4) with a longer boundary → FP
# and FN in strict mode; (0,6,7) missed → FN; sentence 1 "O I I" (I after O) opens no
# entity in strict IOB2 → FN; (2,0,1) in a sentence without entities → FP; (3,0,1) → TP.
PRED = [
    ["B", "I", "O", "B", "I", "O", "O"],
    ["O", "O", "I", "I", "O"],
    ["B", "O", "O"],
    ["B", "O"],
]


def test_hand_computed_scores_strict_iob2() -> None:
    s = entity_scores(GOLD, PRED)
    assert (s.tp, s.fp, s.fn) == (2, 2, 3)
    assert s.precision == pytest.approx(2 / 4)
    assert s.recall == pytest.approx(2 / 5)
    assert s.f1 == pytest.approx(2 * 0.5 * 0.4 / (0.5 + 0.4))


def test_scores_are_seqevals_strict_mode() -> None:
    y_true, y_pred = [typed(t) for t in GOLD], [typed(t) for t in PRED]
    s = entity_scores(GOLD, PRED)
    assert s.precision == pytest.approx(precision_score(y_true, y_pred, mode="strict", scheme=IOB2))
    assert s.recall == pytest.approx(recall_score(y_true, y_pred, mode="strict", scheme=IOB2))
    assert s.f1 == pytest.approx(f1_score(y_true, y_pred, mode="strict", scheme=IOB2))
    # The default (conlleval) mode reads "O I I" as a predicted entity (a 5th one, wrong
    # boundary); strict IOB2 reads no entity there.
    assert precision_score(y_true, y_pred) == pytest.approx(2 / 5)


def test_i_after_o_opens_no_entity() -> None:
    assert entity_spans([["O", "I", "I", "O", "B", "I"]]) == {(0, "ENT", 4, 6)}


def test_typed_tags_keep_their_type() -> None:
    gold = [["B-Disease", "I-Disease", "O", "B-Chemical"]]
    pred = [["B-Disease", "I-Disease", "O", "B-Disease"]]  # right span, wrong type
    s = entity_scores(gold, pred)
    assert (s.tp, s.fp, s.fn) == (1, 1, 1)
    assert (s.precision, s.recall, s.f1) == pytest.approx((0.5, 0.5, 0.5))
    assert typed(["B", "I", "O", "B-X", "I-X"]) == ["B-ENT", "I-ENT", "O", "B-X", "I-X"]


def test_zero_division_conventions_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # seqeval's UndefinedMetricWarning would fail here
        none_predicted = entity_scores(GOLD, [["O"] * len(t) for t in GOLD])
        no_gold = entity_scores([["O", "O"]], [["B", "O"]])
        nothing = entity_scores([["O", "O"]], [["O", "O"]])
    assert none_predicted.as_dict() == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 5}
    assert no_gold.as_dict() == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 1, "fn": 0}
    assert nothing.as_dict() == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 0}


def test_perfect_prediction() -> None:
    s = entity_scores(GOLD, GOLD)
    assert (s.precision, s.recall, s.f1, s.tp, s.fp, s.fn) == (1.0, 1.0, 1.0, 5, 0, 0)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="3 gold sentences but 2 predicted"):
        entity_scores(GOLD[:3], PRED[:2])
    with pytest.raises(ValueError, match="sentence 0: 7 gold tags but 6 predicted"):
        entity_scores(GOLD[:1], [PRED[0][:6]])
