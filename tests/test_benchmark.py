"""The benchmark's yardsticks: FLOP counts, utilisation, and both implementations measured."""

from __future__ import annotations

import copy

import pytest
import torch

from hgda_core.adapt import AdaptConfig
from hgda_core.benchmark import bench_markdown, count_flops, matmul_rate, timed, utilisation
from benchmarks import bench


def test_count_flops_of_a_matrix_product_and_its_backward():
    a, b = torch.randn(7, 5, requires_grad=True), torch.randn(5, 3)
    assert count_flops(lambda: a @ b) == 2 * 7 * 5 * 3
    assert count_flops(lambda: (a @ b).sum().backward()) == 2 * (2 * 7 * 5 * 3)  # forward + ∇a


def test_count_flops_of_packed_lstms_counts_real_steps_only():
    """The count the benchmark uses: packed sequences, so padding adds nothing."""
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(4, 3, batch_first=True, bidirectional=True)

    def flops(lengths):
        x = torch.randn(len(lengths), max(lengths), 4)
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
        return count_flops(lambda: lstm(packed))

    assert flops([5, 1]) == flops([5]) + flops([1]) < flops([5, 5]) == 2 * flops([5])
    per_step = 2 * 2 * (4 * 12 + 3 * 12)  # two directions, input and recurrent products, 4 gates of 3
    assert flops([5]) == 5 * per_step


def test_utilisation_and_rate():
    assert utilisation(50e9, 2.0, 50.0) == pytest.approx(0.5)
    rate = matmul_rate(((64, 64, 64),), repeat=1)
    assert rate["best"] == rate["64x64.64x64"] > 0
    assert timed(lambda: None, 2) >= 0


def test_bench_measures_both_kernels_and_finds_the_same_tags_and_weights(make_tagger, tiny_corpora):
    corpus = tiny_corpora["Disease"][0]
    model = make_tagger()
    decode = bench.decode_figures(model, corpus["test"], "Gene", rate=50.0, repeat=1)
    assert decode["identical_tags"] and set(decode) >= {"reference", "new", "speedup", "flops"}
    assert decode["reference"]["utilisation"] > 0
    config = AdaptConfig(steps=3)
    cell = bench.fine_tune_cell([make_tagger(seed=s) for s in range(2)], corpus, 5, config, draws=1, rate=50.0)
    assert cell["max_relative_weight_difference"] < 1e-3
    assert cell["flops"] == cell["step_flops"] * 3 * 2
    assert cell["new"]["sentence_steps_per_s"] == pytest.approx(5 * 3 * 2 / cell["new"]["seconds"], rel=1e-2)


def _figure(ref_s, new_s, unit):
    return {"reference": {"seconds": ref_s, unit: 10 / ref_s, "utilisation": 0.1},
            "new": {"seconds": new_s, unit: 10 / new_s, "utilisation": 0.25}, "speedup": round(ref_s / new_s, 2)}


def test_bench_markdown_table_shows_reference_new_ratio_and_utilisation():
    results = {
        "machine": "x86_64, 1 torch thread(s)", "matmul_gflops": {"1024x1024.1024x1024": 90.0, "best": 90.0},
        "decode": {**_figure(2.0, 1.0, "sentences_per_s"), "identical_tags": True, "collate_seconds": 0.1,
                   "setting": {"sentences": 2048}},
        "fine_tune": {"K5": {**_figure(3.0, 1.0, "sentence_steps_per_s"), "max_relative_weight_difference": 1e-6,
                             "setting": {"starting_models": 5, "draws": 2, "steps": 30}}},
        "meta_iteration": {"K10": _figure(1.6, 1.0, "tasks_per_s")},
    }
    md = bench_markdown(results)
    assert "| decoding, 2048 sentences, batch 256 | 5.0 | 10.0 | sentences/s | 2.00× | ≥ 1.3× | 10% → 25% |" in md
    assert "| fine-tuning, K = 5 (5 models × 2 draws × 30 steps) | 3.3 | 10.0 | sentence-steps/s | 3.00× | ≥ 3.5× |" in md
    assert "| meta-training iteration, K = 10 (m = 8, 1 inner step) | 6.2 | 10.0 | tasks/s | 1.60× | ≥ 1.6× |" in md
    assert "90.0 GFLOP/s" in md and "real cell" not in md


def test_readme_shows_the_committed_benchmark_table():
    """The README's table is reports/bench.md's, row for row (regenerate both together)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    table = []
    for line in (root / "reports" / "bench.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert len(table) > 3 and "\n".join(table) in readme
