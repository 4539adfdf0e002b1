"""Choose the meta-training step size on SOURCE-domain devel data only
(stage ``select_meta`` of ``studies/dvc.yaml``).

The paper leaves two things open that together set how far one meta-training iteration
moves the weights: the loss reduction over a task's sentences (``meta.loss_reduction``:
the mean, or the sum that pytorch-crf and many BiLSTM-CRF codes use, ≈ K× larger steps
before clipping) and, through eq. 3, the base rate (``meta.default_lr``).  This tool
meta-trains one method with one domain held out under each candidate setting for a fixed
number of iterations (no early stopping: the whole curve is the evidence) and records
the meta-validation loss — the mean L^lab on fixed tasks of the *source* domains' devel
splits, the same for every setting — against iterations.  The held-out domain is never
read.  Rows go to ``reports/selection/meta_curves.csv`` (appended; a setting's earlier
rows for the same held-out domain, method and K are replaced); the checkpoints at the end
(and at ``--snapshots``) to ``models/selection/``, for the adapted F1 of
:mod:`studies.select_lr`.

Run from the repository root, e.g.::

    python -m studies.select_meta --held-out Disease --method hgda --k 10 --iterations 400 \\
        --settings "loss_reduction=mean,default_lr=0.01;loss_reduction=sum,default_lr=0.01"
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
from pathlib import Path

import torch

from hgda_core.data import load_corpora
from hgda_core.embeddings import WordVectors
from hgda_core.io import csv_text, setup_logging, write_text
from hgda_core.metatrain import MetaTrainParams, meta_train
from hgda_core.models import ModelSpec
from stages.common import ROOT, load_params

log = logging.getLogger("studies.select_meta")
OUT = ROOT / "reports" / "selection" / "meta_curves.csv"
MODELS = ROOT / "models" / "selection"
FIELDS = ("held_out", "method", "shots", "setting", "loss_reduction", "default_lr", "schedule_horizon",
          "iteration", "train_loss", "val_loss", "seconds")  # fmt: skip
KNOBS = {"loss_reduction": str, "default_lr": float, "schedule_horizon": int}


def parse_setting(text: str) -> dict:
    """``"loss_reduction=sum,default_lr=0.01"`` → ``{"loss_reduction": "sum", "default_lr": 0.01}``."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in KNOBS:
            raise ValueError(f"setting {text!r}: expected key=value with a key among {', '.join(KNOBS)}, got {item!r}")
        out[key] = KNOBS[key](value)
    return out


def setting_name(setting: dict, meta: MetaTrainParams) -> str:
    """A short label, e.g. ``sum-0.01-h1500``."""
    return f"{meta.loss_reduction}-{meta.default_lr:g}-h{meta.horizon}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held-out", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--iterations", type=int, required=True, help="iterations per setting (no early stopping)")
    parser.add_argument("--settings", required=True, help="';'-separated settings of key=value pairs")
    parser.add_argument("--snapshots", default="", help="comma-separated iterations whose weights are kept too")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params()
    torch.set_num_threads(params["threads"])
    spec = ModelSpec.from_params(params["model"])
    vectors = WordVectors.load(ROOT / "data" / "embeddings" / "vectors.npz")
    corpora = load_corpora(ROOT / "data" / "processed", params["corpora"])
    base = {k: v for k, v in params["meta"].items() if k not in ("held_out", "methods", "workers")}
    snapshots = tuple(int(i) for i in args.snapshots.split(",") if i)
    for text in args.settings.split(";"):
        setting = parse_setting(text)
        meta = dataclasses.replace(
            MetaTrainParams(**base), **setting, max_iterations=args.iterations, patience=args.iterations + 1,
            snapshots=snapshots,
        )
        # The horizon is the protocol's, not the study's shorter run: resolve it first.
        meta.schedule_horizon = setting.get("schedule_horizon", base.get("schedule_horizon", 0)) or base["max_iterations"]
        name = setting_name(setting, meta)
        log.info("%s-%s K=%d %s: %d iterations", args.held_out, args.method, args.k, name, args.iterations)
        model, result = meta_train(corpora, spec.factory(vectors), args.held_out, args.method, args.k, meta,
                                   params["seed"])  # fmt: skip
        stem = f"{args.held_out}-{args.method}-K{args.k}-{name}"
        model.save(MODELS / f"{stem}.pt", held_out=args.held_out, method=args.method, shots=args.k)
        for iteration, state in sorted(result.snapshots.items()):
            model.load_trainable_state(state)
            model.save(MODELS / f"{stem}-it{iteration}.pt", held_out=args.held_out, method=args.method, shots=args.k)
        rows = [{"held_out": args.held_out, "method": args.method, "shots": args.k, "setting": name,
                 "loss_reduction": meta.loss_reduction, "default_lr": meta.default_lr,
                 "schedule_horizon": meta.horizon, **point, "seconds": round(result.seconds, 1)}
                for point in result.curve]  # fmt: skip
        key = (args.held_out, args.method, str(args.k), name)
        kept = []
        if OUT.is_file():
            with open(OUT, newline="", encoding="utf-8") as fh:
                kept = [r for r in csv.DictReader(fh) if (r["held_out"], r["method"], r["shots"], r["setting"]) != key]
        write_text(OUT, csv_text(kept + rows, FIELDS))
        log.info("%s: val loss %.4f -> best %.4f at %d (%.0f s); rows in %s", name, result.initial_val_loss,
                 result.best_val_loss, result.best_iteration, result.seconds, Path(OUT).relative_to(ROOT))  # fmt: skip


if __name__ == "__main__":
    main()
