"""The protocol selection's nested design: no run reads its target domain, devel scores only."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from hgda_core.metatrain import MetaTrainParams
from studies import select_protocol as study
from tests.conftest import TINY

GRID = {
    "shots": 3, "method": "hgda", "iterations": 2, "draws": 2, "devel_sentences": 5, "sampling": "with_entity",
    "meta": {"literal": {}, "shared": {"inner_decoder": "shared"}},
    "adapt": {"fresh": {}, "shared": {"decoder_init": "shared"}},
    "pairs": [["literal", "fresh"], ["shared", "shared"], ["scratch", "fresh"]],
}


def test_each_combination_leaves_one_target_out() -> None:
    combos = study.combinations(["Species", "Disease", "Gene", "Drug"])
    assert len(combos) == 12
    for combo in combos:
        assert len({*combo.sources, combo.validation, combo.target}) == 4
    assert sorted(c.target for c in combos) == sorted(["Disease", "Drug", "Gene", "Species"] * 3)
    assert study.Combination(("Disease", "Drug"), "Gene", "Species") in combos
    with pytest.raises(ValueError, match="needs four domains"):
        study.combinations(["Disease", "Gene", "Species"])


@pytest.fixture
def layout(workspace, tiny_corpora):
    tmp_path = workspace
    fast = dataclasses.asdict(MetaTrainParams(tasks_per_batch=2, eval_every=2, val_tasks=2))
    params = {
        "shots": [3], "seed": 13, "threads": 1,
        "corpora": [c.name for cs in tiny_corpora.values() for c in cs],
        "domains": {d: [c.name for c in cs] for d, cs in tiny_corpora.items()},
        "model": {"encoder": "bilstm", **dataclasses.asdict(TINY)},
        "meta": {"held_out": ["Disease"], "methods": ["hgda"], **fast},
        "adapt": {"methods": ["hgda", "scratch"], "repeats": 2, "steps": 2, "default_lr": 0.01, "eval_batch_size": 32},
    }
    return tmp_path, params


def test_no_cell_reads_its_target_and_scores_are_on_devel(layout) -> None:
    root, params = layout
    meta_cells, adapt_cells = study.plan(params, GRID, root)
    corpus_domain = {c: d for d, cs in params["domains"].items() for c in cs}
    assert len(meta_cells) == 6 * 2  # source pairs × meta-training settings (shared by the two validation domains)
    assert len(adapt_cells) == 12 * 3  # combinations × pairs (one corpus per domain, one block of 2 draws)
    for cell, labels in adapt_cells:
        assert corpus_domain[cell.spec["corpus"]] == labels["validation"] != labels["target"]
        assert cell.spec["adapt"]["eval_split"] == "devel" and cell.spec["adapt"]["sampling"] == "with_entity"
        if labels["meta_cell"]:
            meta = next(m for m in meta_cells if m.key == labels["meta_cell"])
            read = {corpus_domain[c] for c in meta.spec["corpora"]}
            assert read == set(labels["sources"].split("+")) and labels["target"] not in read
            assert meta.spec["meta"]["max_iterations"] == 2 and meta.spec["held_out"] is None
    frame = study.run(params, GRID, root, progress=False)
    assert len(frame) == 12 * 3 * 2
    assert set(frame["meta_setting"]) == {"literal", "shared", "scratch"}
    assert (frame[frame["meta_setting"] != "scratch"]["meta_iterations"].astype(int) == 2).all()
    text = (root / "reports" / "selection" / "protocol.md").read_text()
    assert text.count("## Target ") == 4 and "Best: `" in text and "seconds per iteration" in text
    # a second run finds every cell stored
    again = study.run(params, GRID, root, progress=False)
    pd.testing.assert_frame_equal(frame.drop(columns="seconds"), again.drop(columns="seconds"))


def test_summary_averages_corpora_then_combinations_and_subtracts_scratch() -> None:
    rows = []
    for sources, validation, f1s in (("A+B", "C", {"c1": (0.2, 0.4), "c2": (0.6, 0.6)}), ("A+C", "B", {"b1": (0.1, 0.1)})):
        for corpus, values in f1s.items():
            for r, f1 in enumerate(values):
                rows.append({"target": "D", "sources": sources, "validation": validation, "meta_setting": "literal",
                             "adapt_setting": "fresh", "corpus": corpus, "f1": f1, "meta_seconds": 10.0, "meta_iterations": 5})
                rows.append({"target": "D", "sources": sources, "validation": validation, "meta_setting": "scratch",
                             "adapt_setting": "fresh", "corpus": corpus, "f1": f1 / 2, "meta_seconds": "", "meta_iterations": ""})
    rows.append({**rows[0], "adapt_setting": "mean", "f1": 0.6375})  # scratch has no mean start: its fresh one (0.1375)
    text = study.summary(pd.DataFrame(rows))
    assert "| literal | mean | 0.637 | +0.500* | 1 |" in text
    # combination A+B→C: (0.3 + 0.6) / 2 = 0.45; A+C→B: 0.1; mean 0.275; scratch half of it
    assert "| literal | fresh | 0.275 | +0.138 | 2 |" in text
    assert "| scratch | fresh | 0.138 |  | 2 |" in text
    assert "| literal | 2.00 |" in text
