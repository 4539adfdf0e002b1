"""Stage ``metatrain@<held_out>-<method>``: meta-train one method with one domain held out.

For every K in ``shots`` it writes ``models/metatrain/<held_out>-<method>/K<k>.pt``
(DVC cache), the training log ``reports/metatrain/<held_out>-<method>/logs/K<k>.jsonl.gz``,
the learning curve ``.../curve.csv`` and the metrics ``.../metrics.json``.

Run from the repository root:
``python -m stages.metatrain --held-out Disease --method hgda``.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import shutil
import sys

import torch

from hgda_core.data import load_corpora
from hgda_core.embeddings import WordVectors
from hgda_core.io import setup_logging, write_json, write_text
from hgda_core.metatrain import JsonlGzLog, MetaTrainParams, meta_train, result_metrics
from hgda_core.models import BiLSTMConfig
from stages.common import ROOT, load_params, shots_list

log = logging.getLogger("stages.metatrain")


def curve_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, ["shots", "iteration", "train_loss", "val_loss"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--held-out", required=True)
    parser.add_argument("--method", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params()
    meta = dict(params["meta"])
    if args.held_out not in meta.pop("held_out") or args.method not in meta.pop("methods"):
        sys.exit(f"error: {args.held_out}/{args.method} is not in params.yaml meta.held_out/meta.methods")
    if params["model"].get("encoder", "bilstm") != "bilstm":
        sys.exit(f"error: model.encoder {params['model']['encoder']!r}: only the BiLSTM encoder is wired into meta-training yet")
    torch.set_num_threads(params["threads"])
    name = f"{args.held_out}-{args.method}"
    model_dir, report_dir = ROOT / "models" / "metatrain" / name, ROOT / "reports" / "metatrain" / name
    for folder in (model_dir, report_dir):
        shutil.rmtree(folder, ignore_errors=True)
    corpora = load_corpora(ROOT / "data" / "processed", params["corpora"])
    vectors = WordVectors.load(ROOT / "data" / "embeddings" / "vectors.npz")
    encoder_config = BiLSTMConfig(**{k: v for k, v in params["model"].items() if k != "encoder"})
    metrics, curve = {}, []
    for k in shots_list(params["shots"]):
        log.info("%s: meta-training with K = %d", name, k)
        train_log = JsonlGzLog()
        model, result = meta_train(
            corpora, vectors, args.held_out, args.method, k, MetaTrainParams(**meta), encoder_config,
            params["seed"], train_log,
        )
        model.save(model_dir / f"K{k}.pt", held_out=args.held_out, method=args.method, shots=k)
        train_log.write(report_dir / "logs" / f"K{k}.jsonl.gz")
        metrics[f"K{k}"] = result_metrics(result, k, list(model.classifier_domains))
        curve += [{"shots": k, **row} for row in result.curve]
        log.info("%s K=%d: val loss %.4f -> %.4f in %d iterations, %.0f s", name, k,
                 result.initial_val_loss, result.best_val_loss, result.iterations, result.seconds)
    write_json(report_dir / "metrics.json", metrics)
    write_text(report_dir / "curve.csv", curve_csv(curve))


if __name__ == "__main__":
    main()
