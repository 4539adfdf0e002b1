"""Stage ``release``: meta-train the release base model on every domain (none held out).

The benchmark's meta-training (stage ``metatrain``) always holds one domain out so that
the adaptation scores of Table 3 are on an unseen domain.  A user's new entity type is
unseen by construction, so the base model that ``hgda adapt --base release`` starts from
is meta-trained on all four domains — every configured corpus — for one K
(``release.shots``) with one method (``release.method``), always with the BiLSTM
encoder of the ``model`` section (``model.encoder`` selects the benchmark's encoder; the
release model is for ``hgda adapt``, which adapts BiLSTM checkpoints).

Writes ``models/release/K<k>.pt`` (DVC cache), the training log
``reports/release/logs/K<k>.jsonl.gz``, the learning curve ``reports/release/curve.csv``
and ``reports/release/metrics.json`` (with the wall time).  Like ``metatrain`` it is
resumable: a stopped run continues from ``models/resume/release-K<k>.pt``.

Run from the repository root: ``dvc repro release`` (or ``python -m stages.release``).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hgda_core.data import load_corpora
from hgda_core.device import resolve_device, use_amp
from hgda_core.embeddings import WordVectors
from hgda_core.io import csv_text, setup_logging, write_json, write_text
from hgda_core.metatrain import JsonlGzLog, MetaTrainParams, meta_train, result_metrics
from hgda_core.models import ModelSpec
from stages.common import ROOT, effective_params, load_params
from hgda_core.grid import CURVE_COLUMNS

log = logging.getLogger("stages.release")

_NOT_META = ("held_out", "methods", "snapshots")
"""Keys of ``meta`` that select benchmark runs, not how one run trains."""


def run(params: dict[str, Any], root: Path = ROOT, progress: bool = True) -> dict:
    """Meta-train ``release.method`` with K = ``release.shots`` on every domain.

    Returns:
        The metrics record written to ``reports/release/metrics.json``.
    """
    params = effective_params(params)
    release = params["release"]
    k, method = release["shots"], release["method"]
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"release.shots must be one positive integer, got {k!r}")
    # Always the BiLSTM (`hgda adapt` adapts BiLSTM checkpoints), whatever model.encoder
    # the benchmark runs with: the model section's BiLSTM sizes.
    spec = ModelSpec("bilstm", ModelSpec.from_params(params["model"]).bilstm, {})
    torch.set_num_threads(params["threads"])
    device = resolve_device(params.get("device", "auto"))
    meta = MetaTrainParams(**{key: v for key, v in params["meta"].items() if key not in _NOT_META})
    vectors = WordVectors.load(root / "data" / "embeddings" / "vectors.npz")
    corpora = load_corpora(root / "data" / "processed", params["corpora"])
    train_log = JsonlGzLog(every=meta.log_every)
    log.info("release: %s, K = %d, every domain of %s on %s", method, k, ", ".join(corpora), device)
    start = time.perf_counter()
    model, result = meta_train(
        corpora, spec.factory(vectors), None, method, k, meta, params["seed"], train_log,
        progress=progress, device=device, amp=use_amp(device, params.get("amp", True)),
        state_file=root / "models" / "resume" / f"release-K{k}.pt",
        state_key={"model": params["model"], "corpora": list(corpora)},
    )
    seconds = time.perf_counter() - start
    model.save(root / "models" / "release" / f"K{k}.pt", held_out=None, method=method, shots=k,
               corpora=list(corpora))
    report = root / "reports" / "release"
    train_log.write(report / "logs" / f"K{k}.jsonl.gz")
    metrics = {**result_metrics(result, k, list(model.classifier_domains)), "method": method,
               "corpora": list(corpora), "wall_seconds": round(seconds, 1)}
    write_json(report / "metrics.json", {f"K{k}": metrics})
    write_text(report / "curve.csv", csv_text([{"shots": k, **row} for row in result.curve], CURVE_COLUMNS))
    log.info("release K=%d: val loss %.4f -> %.4f in %d iterations, %.0f s wall", k,
             result.initial_val_loss, result.best_val_loss, result.iterations, seconds)
    return metrics


def main() -> None:
    setup_logging()
    try:
        run(load_params())
    except ValueError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
