"""Measuring speed as a share of what the CPU can do: model-FLOP utilisation (issue 12).

* :func:`matmul_rate` — the single-thread rate of large fp32 matrix products on this
  machine, measured in the same run as everything else: the yardstick.
* :func:`count_flops` — the floating-point operations of one call, counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions,
  forward and backward).  The count is taken on the *reference* kernels
  (:meth:`hgda_core.models.Tagger.set_kernels`): packed sequences run the LSTMs as
  matrix products over the real time steps only, so the count is the model's own work
  (no padding), and it is the same for the fast kernels, which compute the same function.
* :func:`utilisation` — FLOPs / seconds / the yardstick: the model-FLOP utilisation.
* :func:`timed` — best-of-n wall time (after a warm-up), the figure every ratio uses.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Best-of-``repeat`` wall time of ``fn`` in seconds (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    """One fused LSTM layer (oneDNN): the input and recurrent products of every step."""
    steps = input_shape[0] if len(input_shape) == 2 else input_shape[0] * input_shape[1]
    gates, inputs = w_ih_shape
    return 2 * steps * gates * (inputs + w_hh_shape[1])


def _rnn_layer_backward_flops(*args, **kwargs) -> int:  # noqa: ANN002
    """Its backward pass: the gradients of the inputs and of the weights, 2× forward."""
    return 2 * _rnn_layer_flops(*args, **kwargs)


_CUSTOM = {
    torch.ops.aten.mkldnn_rnn_layer: _rnn_layer_flops,
    torch.ops.aten.mkldnn_rnn_layer_backward: _rnn_layer_backward_flops,
}
"""Kernels :class:`FlopCounterMode` does not know: torch runs an LSTM whose rows all
have one length (packed or not) through oneDNN's fused layer."""


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call of ``fn`` (forward and any backward inside)."""
    counter = FlopCounterMode(display=False, custom_mapping=_CUSTOM)
    with counter:
        fn()
    return int(counter.get_total_flops())


def matmul_rate(shapes: tuple[tuple[int, int, int], ...] = ((1024, 1024, 1024), (500, 300, 512)), repeat: int = 5) -> dict:
    """GFLOP/s of fp32 ``(m, k) @ (k, n)`` products on the current torch threads.

    Returns:
        ``{"m×k·k×n": GFLOP/s, ...}`` and ``"best"``, the highest of them (the yardstick).
    """
    out: dict = {}
    generator = torch.Generator().manual_seed(0)
    for m, k, n in shapes:
        a, b = torch.randn(m, k, generator=generator), torch.randn(k, n, generator=generator)
        reps = max(1, int(2e9 // (2 * m * k * n)))  # about 2 GFLOP per timing
        seconds = timed(lambda: [a @ b for _ in range(reps)], repeat) / reps
        out[f"{m}x{k}.{k}x{n}"] = round(2 * m * k * n / seconds / 1e9, 1)
    out["best"] = max(v for v in out.values())
    return out


def utilisation(flops: float, seconds: float, rate_gflops: float) -> float:
    """Model-FLOP utilisation: ``flops / seconds`` as a share of ``rate_gflops``."""
    return flops / seconds / (rate_gflops * 1e9)


def _row(name: str, figure: dict, unit: str, label: str, target: str) -> str:
    ref, new = figure["reference"], figure["new"]
    return (f"| {name} | {ref[unit]:,.1f} | {new[unit]:,.1f} | {label} | {figure['speedup']:.2f}× | {target} "
            f"| {ref['utilisation']:.0%} → {new['utilisation']:.0%} |")


TARGETS = {"decode": "≥ 1.3×", "fine_tune": {"K5": "≥ 3.5×", "K10": "≥ 2.4×", "K20": "—", "K50": "≥ 1.3×"},
           "meta_iteration": {"K5": "—", "K10": "≥ 1.6×", "K50": "—"}}
"""The speed-up each figure aims at (issue 12)."""


def bench_markdown(results: dict) -> str:
    """``reports/bench.md``: the ``bilstm`` section of ``reports/bench.json`` as a table
    (reference, new, ratio, model-FLOP utilisation of each)."""
    rate = results["matmul_gflops"]
    lines = [
        "# Benchmark: the BiLSTM-CRF's training and decoding",
        "",
        f"One torch thread ({results['machine']}). Utilisation: model FLOPs (counted on the reference kernels) per "
        f"second, as a share of the single-thread fp32 matrix-product rate measured in the same run, "
        f"{rate['best']:.1f} GFLOP/s (" + ", ".join(f"{k}: {v}" for k, v in rate.items() if k != "best") + "). "
        "Reference: packed-sequence LSTMs, pytorch-crf's loss and Viterbi, the test split collated at each "
        "evaluation; new: the project's kernels (`Tagger.set_kernels`). Written by `python -m benchmarks.bench`.",
        "",
        "| Operation | Reference | New | Unit | New / reference | Target | Utilisation (ref → new) |",
        "| :--- | ---: | ---: | :--- | ---: | :--- | ---: |",
    ]
    decode = results["decode"]
    lines.append(_row(f"decoding, {decode['setting']['sentences']} sentences, batch 256", decode, "sentences_per_s",
                      "sentences/s", TARGETS["decode"]))
    for key, figure in results["fine_tune"].items():
        s = figure["setting"]
        lines.append(_row(f"fine-tuning, K = {key[1:]} ({s['starting_models']} models × {s['draws']} draws × {s['steps']} steps)",
                          figure, "sentence_steps_per_s", "sentence-steps/s", TARGETS["fine_tune"].get(key, "—")))
    for key, figure in results["meta_iteration"].items():
        lines.append(_row(f"meta-training iteration, K = {key[1:]} (m = 8, 1 inner step)", figure, "tasks_per_s",
                          "tasks/s", TARGETS["meta_iteration"].get(key, "—")))
    lines += ["", f"Decoding gives identical tags: {decode['identical_tags']}; collating its sentences takes "
              f"{decode['collate_seconds']:.3f} s (done once per test split in the adaptation grid)."]
    if all("max_relative_weight_difference" in v for v in results["fine_tune"].values()):
        lines[-1] += (" Largest relative weight difference (per tensor, ‖new − reference‖ / ‖reference‖) after "
                      "fine-tuning: " + ", ".join(f"K = {k[1:]}: {v['max_relative_weight_difference']:.1e}"
                                                 for k, v in results["fine_tune"].items()) + ".")
    cell = results.get("real_cell")
    if cell:
        lines += ["", f"## One real cell: {cell['corpus']}, K = {cell['K']} ({cell['runs']} runs: every method × every "
                  f"draw, {cell['steps']} steps each, scored on the whole test split)", "",
                  f"Wall time {cell['seconds']['reference']:.0f} s (reference) and {cell['seconds']['new']:.0f} s (new): "
                  f"{cell['speedup']:.2f}×. Largest per-row F1 difference: {cell['max_row_f1_difference']:.4f}.", "",
                  "| Method | Mean F1, reference | Mean F1, new | Difference |", "| :--- | ---: | ---: | ---: |"]
        lines += [f"| {m} | {v['reference']:.4f} | {v['new']:.4f} | {v['difference']:+.4f} |" for m, v in cell["mean_f1"].items()]
    return "\n".join(lines) + "\n"
