"""The selection evidence: summaries of the meta-training curves and fine-tuning budgets, the rule."""

from __future__ import annotations

import pandas as pd
import pytest

from hgda_core.report.selection import budget_summary, choose_budget, meta_summary, plot_budget, plot_meta_curves
from studies.select_meta import parse_setting


def _curves() -> pd.DataFrame:
    rows = []
    for setting, losses in (("a", [10.0, 6.0, 4.0, 3.0, 2.9]), ("b", [12.0, 3.2, 3.05, 3.1, 3.3])):
        rows += [{"held_out": "Disease", "method": "hgda", "shots": 10, "setting": setting, "iteration": 20 * i,
                  "val_loss": v} for i, v in enumerate(losses)]  # fmt: skip
    return pd.DataFrame(rows)


def test_meta_summary_finds_the_best_and_the_first_iteration_near_the_overall_best() -> None:
    summary = meta_summary(_curves()).set_index("setting")
    assert summary.loc["a", "best_val_loss"] == 2.9 and summary.loc["a", "best_iteration"] == 80
    assert summary.loc["b", "best_val_loss"] == 3.05 and summary.loc["b", "best_iteration"] == 40
    # within 5 % of 2.9 (the best of either setting): ≤ 3.045 → a at 60; b never
    assert summary.loc["a", "iteration_within_5pct"] == 60 and pd.isna(summary.loc["b", "iteration_within_5pct"])
    assert summary.loc["b", "initial_val_loss"] == 12.0 and summary.loc["a", "iterations"] == 80


def _budget() -> pd.DataFrame:
    rows = []
    f1 = {(30, 0.1): (0.2, 0.4), (100, 0.1): (0.30, 0.50), (200, 0.1): (0.31, 0.50), (100, 0.3): (0.1, 0.1)}
    for (steps, lr), (c1, c2) in f1.items():
        for corpus, value, draws in (("c1", c1, 2), ("c2", c2, 1)):
            for r in range(draws):
                rows.append({"shots": 10, "steps": steps, "head_default_lr": lr, "corpus": corpus, "repetition": r,
                             "f1": value + (0.02 if r == 1 else 0.0) - (0.01 if draws == 2 and r == 0 else 0.0)})  # fmt: skip
    return pd.DataFrame(rows)


def test_budget_summary_averages_draws_per_corpus_then_corpora() -> None:
    summary = budget_summary(_budget()).set_index(["steps", "head_default_lr"])
    # c1: (0.29 + 0.32) / 2 = 0.305, c2: 0.50 → 0.4025 (each corpus once, not each row)
    assert summary.loc[(100, 0.1), "devel_f1"] == pytest.approx(0.4025)
    assert summary.loc[(100, 0.1), "corpora"] == 2 and summary.loc[(100, 0.1), "draws"] == 2


def test_the_rule_takes_the_fewest_steps_within_the_tolerance_of_the_best() -> None:
    summary = budget_summary(_budget())
    chosen = choose_budget(summary).iloc[0]
    assert (chosen["steps"], chosen["head_default_lr"]) == (100, 0.1)  # 200 steps is only 0.005 better
    strict = choose_budget(summary, tolerance=0.0).iloc[0]
    assert strict["steps"] == 200


def test_plots_are_written_with_or_without_rows(tmp_path) -> None:
    for frame, name in ((_curves(), "m.png"), (pd.DataFrame(), "m0.png")):
        plot_meta_curves(frame, tmp_path / name)
    for frame, name in ((_budget(), "b.png"), (pd.DataFrame(), "b0.png")):
        plot_budget(frame, tmp_path / name)
    assert all((tmp_path / n).read_bytes().startswith(b"\x89PNG") for n in ("m.png", "m0.png", "b.png", "b0.png"))


def test_settings_parse_with_types_and_unknown_keys_are_named() -> None:
    assert parse_setting("loss_reduction=sum, default_lr=0.03,schedule_horizon=900") == {
        "loss_reduction": "sum", "default_lr": 0.03, "schedule_horizon": 900}
    with pytest.raises(ValueError, match=r"expected key=value with a key among .* got 'lr=0.1'"):
        parse_setting("lr=0.1")
