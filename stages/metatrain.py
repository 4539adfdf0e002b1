"""Stage ``metatrain@<encoder>-<held_out>-<method>``: meta-train one method with one domain held out.

For every K in ``shots`` it writes ``models/metatrain/<encoder>/<held_out>-<method>/K<k>.pt``
(DVC cache), the training log ``reports/metatrain/<encoder>/<held_out>-<method>/logs/K<k>.jsonl.gz``,
the learning curve ``.../curve.csv`` and the metrics ``.../metrics.json``; ``<encoder>``
is ``model.encoder`` (``bilstm`` or ``bert``).  With BERT on a CPU the ``bert_cpu``
profile's ``meta`` reductions apply (:func:`stages.common.effective_params`).

With ``meta.snapshots`` the weights at those iterations are kept beside the final
checkpoint, as ``K<k>-it<n>.pt`` (the budget study's checkpoints).

Run from the repository root:
``python -m stages.metatrain --held-out Disease --method hgda``.  ``--shots 10`` trains
only K = 10 (a K of ``shots``) and keeps the folder's other K: its checkpoint, log, rows
of ``curve.csv`` and entry of ``metrics.json`` replace only K = 10's, so a long grid can
land one K at a time (record it afterwards with ``dvc commit metatrain``).

A run is resumable: after every meta-validation its whole state is saved to
``models/resume/<encoder>/<held_out>-<method>-K<k>.pt``, and a stopped run (killed,
out of time) started again with the same params continues from there, to the outputs
of an uninterrupted run; ``metrics.json`` lists the iterations it resumed after
(``resumed_at``).  ``--restart`` discards a saved state.  The file is removed when
the run ends.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import multiprocessing
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hgda_core.data import Corpus, load_corpora
from hgda_core.device import resolve_device, use_amp
from hgda_core.embeddings import WordVectors
from hgda_core.io import csv_text, setup_logging, write_json, write_text
from hgda_core.metatrain import JsonlGzLog, MetaTrainParams, meta_train, result_metrics
from hgda_core.models import ModelSpec, TaggerFactory
from stages.common import ROOT, effective_params, load_params, shots_list

log = logging.getLogger("stages.metatrain")


CURVE_COLUMNS = ("shots", "iteration", "train_loss", "val_loss")


@dataclass
class _Run:
    """What each K's training needs, loaded once before workers fork."""

    held_out: str
    method: str
    params: dict[str, Any]
    meta: MetaTrainParams
    corpora: dict[str, Corpus]
    factory: TaggerFactory
    theta_lr: float | None
    device: torch.device
    amp: bool
    model_dir: Path
    report_dir: Path
    state_dir: Path
    state_key: dict[str, Any]


_RUN: _Run | None = None  # set in the parent, inherited by forked workers


def state_file(state_dir: Path, name: str, k: int) -> Path:
    """Where the run ``name`` (``<held_out>-<method>``) keeps its resumable state for K."""
    return state_dir / f"{name}-K{k}.pt"


def train_k(k: int) -> tuple[dict, list[dict]]:
    """Meta-train for one K; save its checkpoint and log; return its metrics and curve."""
    assert _RUN is not None
    run = _RUN
    torch.set_num_threads(run.params["threads"])
    name = f"{run.held_out}-{run.method}"
    log.info("%s: meta-training with K = %d", name, k)
    train_log = JsonlGzLog(every=run.meta.log_every)
    model, result = meta_train(
        run.corpora, run.factory, run.held_out, run.method, k, run.meta, run.params["seed"], train_log,
        theta_lr=run.theta_lr, device=run.device, amp=run.amp,
        state_file=state_file(run.state_dir, name, k), state_key=run.state_key,
    )
    model.save(run.model_dir / f"K{k}.pt", held_out=run.held_out, method=run.method, shots=k)
    for iteration, state in sorted(result.snapshots.items()):
        model.load_trainable_state(state)
        model.save(run.model_dir / f"K{k}-it{iteration}.pt", held_out=run.held_out, method=run.method, shots=k)
    train_log.write(run.report_dir / "logs" / f"K{k}.jsonl.gz")
    log.info("%s K=%d: val loss %.4f -> %.4f in %d iterations, %.0f s", name, k,
             result.initial_val_loss, result.best_val_loss, result.iterations, result.seconds)
    return result_metrics(result, k, list(model.classifier_domains)), [{"shots": k, **row} for row in result.curve]


def _kept_outputs(report_dir: Path, replaced: list[int]) -> tuple[dict, list[dict]]:
    """The metrics entries and curve rows of the K not in ``replaced`` (``--shots``)."""
    metrics_path, curve_path = report_dir / "metrics.json", report_dir / "curve.csv"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    curve = []
    if curve_path.is_file():
        with open(curve_path, newline="", encoding="utf-8") as fh:
            curve = [row for row in csv.DictReader(fh) if int(row["shots"]) not in replaced]
    return {key: value for key, value in metrics.items() if int(key[1:]) not in replaced}, curve


def worker_count(meta: dict[str, Any], device: torch.device) -> int:
    """Take ``workers`` out of the ``meta`` section (it is not a :class:`MetaTrainParams`
    field) and return how many K train at once: ``meta.workers`` on the CPU, 1 on a GPU
    (a CUDA context does not survive a fork)."""
    workers = int(meta.pop("workers", 1))
    return workers if device.type == "cpu" else 1


def run(params: dict[str, Any], held_out: str, method: str, root: Path = ROOT, only: list[int] | None = None,
        restart: bool = False) -> None:
    """Train every K of ``shots`` (``only``: these K, keeping the others' outputs); with
    ``meta.workers`` > 1, several K at once.  A saved state of a stopped run of the same
    params is resumed (module docstring) unless ``restart``.

    Each K is seeded on its own (:func:`hgda_core.metatrain.derive_seed`), so the outputs
    do not depend on the number of workers, nor on which K are trained together.
    """
    global _RUN
    params = effective_params(params)
    meta = dict(params["meta"])
    if held_out not in meta.pop("held_out") or method not in meta.pop("methods"):
        raise ValueError(f"{held_out}/{method} is not in params.yaml meta.held_out/meta.methods")
    spec = ModelSpec.from_params(params["model"])
    device = resolve_device(params.get("device", "auto"))
    workers = worker_count(meta, device)
    name = f"{held_out}-{method}"
    model_dir = root / "models" / "metatrain" / spec.encoder / name
    report_dir = root / "reports" / "metatrain" / spec.encoder / name
    state_dir = root / "models" / "resume" / spec.encoder
    shots = shots_list(params["shots"])
    if only:
        if not set(only) <= set(shots):
            raise ValueError(f"--shots {only} must be among params.yaml shots {shots}")
        shots = [k for k in shots if k in only]
        kept_metrics, kept_curve = _kept_outputs(report_dir, shots)
        for k in shots:
            for path in model_dir.glob(f"K{k}.pt"):
                path.unlink()
            for path in model_dir.glob(f"K{k}-it*.pt"):
                path.unlink()
    else:
        kept_metrics, kept_curve = {}, []
        for folder in (model_dir, report_dir):
            shutil.rmtree(folder, ignore_errors=True)
    if restart:
        for k in shots:
            state_file(state_dir, name, k).unlink(missing_ok=True)
    vectors = WordVectors.load(root / "data" / "embeddings" / "vectors.npz") if spec.encoder == "bilstm" else None
    _RUN = _Run(
        held_out, method, params, MetaTrainParams(**meta),
        load_corpora(root / "data" / "processed", params["corpora"]),
        spec.factory(vectors), spec.theta_lr, device, use_amp(device, params.get("amp", True)),
        model_dir, report_dir, state_dir,
        {"encoder": spec.encoder, "model": params["model"], "corpora": list(params["corpora"])},
    )
    log.info("%s: encoder %s on %s", name, spec.encoder, device)
    try:
        if workers > 1 and len(shots) > 1:
            # Largest K first: it takes longest.
            order = sorted(shots, reverse=True)
            with multiprocessing.get_context("fork").Pool(min(workers, len(shots))) as pool:
                done = dict(zip(order, pool.map(train_k, order, chunksize=1)))
        else:
            done = {k: train_k(k) for k in shots}
    finally:
        _RUN = None
    metrics = {**kept_metrics, **{f"K{k}": done[k][0] for k in shots}}
    curve = kept_curve + [row for k in shots for row in done[k][1]]
    write_json(report_dir / "metrics.json", dict(sorted(metrics.items(), key=lambda kv: int(kv[0][1:]))))
    write_text(report_dir / "curve.csv", csv_text(sorted(curve, key=lambda row: int(row["shots"])), CURVE_COLUMNS))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--held-out", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--shots", default="", help="comma-separated K of `shots` to train (default: all)")
    parser.add_argument("--restart", action="store_true", help="discard the saved state of a stopped run")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        only = [int(k) for k in args.shots.split(",") if k.strip()]
        run(load_params(), args.held_out, args.method, only=only or None, restart=args.restart)
    except ValueError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
