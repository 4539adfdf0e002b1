"""The learning-rate tool scores on a source corpus's devel split, never a test split."""

from __future__ import annotations

import csv
import io

from hgda_core.io import csv_text
from studies.select_lr import FIELDS, devel_as_target


def test_devel_split_takes_the_place_of_test(tiny_corpora) -> None:
    corpus = tiny_corpora["Gene"][0]
    target = devel_as_target(corpus)
    assert target["test"] == corpus["devel"] and target["train"] == corpus["train"]
    assert set(target.splits) == {"train", "test"}  # the corpus's own test split is not there
    assert target["test"] is not corpus["test"] and (target.name, target.domain) == (corpus.name, corpus.domain)


def test_rows_append_with_one_header() -> None:
    row = dict.fromkeys(FIELDS, "x")
    text = csv_text([row], FIELDS, header=True) + csv_text([row], FIELDS, header=False)
    assert list(csv.DictReader(io.StringIO(text))) == [row, row]
