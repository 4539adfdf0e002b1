"""Choose the fine-tuning protocol (rates and steps) on SOURCE-domain devel data only
(stages ``select_lr`` and ``select_lr_bert`` of ``studies/dvc.yaml``).

The paper gives eq. 3 for its meta-training rates but no fine-tuning schedule, and its
BERT rate (1e-5 at K = 32) is stated for SGD.  This tool measures candidate rates the
way the adaptation stage uses them, without touching the held-out domain or any test
split: for a held-out domain, the starting model — a meta-trained checkpoint
(``models/metatrain/<encoder>/<held_out>-<method>/K<k>.pt``) or, for ``bert_finetune``,
the pre-trained BERT — is adapted (fresh tag decoder, ``adapt.steps`` steps or each of
``--steps``) to K train sentences of each *source* corpus and scored on a seeded subset
of that corpus's devel split.  Rows go to ``reports/lr_selection.csv`` (or ``--out``;
appended; one per candidate, corpus and draw), a summary to the log.  ``--checkpoint``
adapts another meta-trained checkpoint (e.g. one of :mod:`studies.select_meta`).

Run from the repository root, e.g.::

    python -m studies.select_lr --method bert_finetune --encoder bert --held-out Disease \\
        --k 10 --theta-lrs 1e-5,1e-3,1e-2 --head-lrs 0.1 --repeats 2 --devel 150 \\
        --corpora BC5CDR-chem,JNLPBA,s800

The adaptation budget (steps × rate of the BiLSTM, every K)::

    python -m studies.select_lr --method hgda --held-out Disease --k 10 --steps 30,100,200,400 \
        --head-lrs 0.03,0.1,0.3 --repeats 3 --devel 300 --out reports/selection/adapt_budget.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import torch

from hgda_core.adapt import BERT_FINETUNE, AdaptConfig, run_adaptation
from hgda_core.data import Corpus, CorpusSplit, load_corpora
from hgda_core.embeddings import WordVectors
from hgda_core.io import csv_text, setup_logging, write_text
from hgda_core.models import ModelSpec, load_model
from stages.common import ROOT, load_params

log = logging.getLogger("studies.select_lr")
OUT = ROOT / "reports" / "lr_selection.csv"
# One budget_selection.png panel per K: mean source-devel F1 against steps, a line per rate.
FIELDS = ("encoder", "method", "held_out", "corpus", "shots", "theta_default_lr", "head_default_lr",
          "steps", "repetition", "devel_sentences", "precision", "recall", "f1", "checkpoint")  # fmt: skip


def devel_as_target(corpus: Corpus) -> Corpus:
    """The corpus with its devel split in the place the adaptation code scores (``test``)."""
    return Corpus(corpus.name, corpus.domain, {"train": corpus.splits["train"],
                                               "test": CorpusSplit(corpus.splits["devel"].sentences)})  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True, help="a meta-trained method, or bert_finetune")
    parser.add_argument("--encoder", choices=("bilstm", "bert"), help="default: params model.encoder")
    parser.add_argument("--held-out", required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--theta-lrs", default="", help="comma-separated encoder default rates (BERT); empty: = head")
    parser.add_argument("--head-lrs", required=True, help="comma-separated default rates of the new decoder")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--devel", type=int, default=200, help="devel sentences scored per corpus (seeded subset)")
    parser.add_argument("--corpora", default="", help="comma-separated source corpora (default: every source corpus)")
    parser.add_argument("--steps", default="", help="comma-separated fine-tuning steps (default: adapt.steps)")
    parser.add_argument("--checkpoint", default="", help="a checkpoint to adapt instead of the stage's K<k>.pt")
    parser.add_argument("--out", default=str(OUT.relative_to(ROOT)), help="CSV the rows are appended to")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params()
    torch.set_num_threads(params["threads"])
    model_params = dict(params["model"], encoder=args.encoder or params["model"]["encoder"])
    spec = ModelSpec.from_params(model_params)
    vectors = WordVectors.load(ROOT / "data" / "embeddings" / "vectors.npz") if spec.encoder == "bilstm" else None
    corpora = load_corpora(ROOT / "data" / "processed", params["corpora"])
    chosen = [c for c in args.corpora.split(",") if c] or [n for n, c in corpora.items() if c.domain != args.held_out]
    sources = [devel_as_target(corpora[c]) for c in chosen if corpora[c].domain != args.held_out]
    if len(sources) < len(chosen):
        raise SystemExit(f"error: --corpora must be source corpora, not of the held-out domain {args.held_out}")
    if args.method == BERT_FINETUNE:
        base = spec.factory(vectors)([], [])
    elif args.checkpoint:
        base = load_model(ROOT / args.checkpoint, vectors)
    else:
        path = ROOT / "models" / "metatrain" / spec.encoder / f"{args.held_out}-{args.method}" / f"K{args.k}.pt"
        base = load_model(path, vectors)
    label = getattr(base.encoder, "label", spec.encoder)
    thetas = [float(x) for x in args.theta_lrs.split(",") if x] or [None]
    steps = [int(x) for x in args.steps.split(",") if x] or [int(params["adapt"]["steps"])]
    grid = [(theta, float(head), n) for theta in thetas for head in args.head_lrs.split(",") for n in steps]
    rows = []
    for theta, head, n_steps in grid:
        config = dataclasses.replace(AdaptConfig(**params["adapt"]), default_lr=head, repeats=args.repeats,
                                     test_sentences=args.devel, steps=n_steps)  # fmt: skip
        for corpus in sources:
            start = time.perf_counter()
            scored = run_adaptation(corpus, args.k, [args.method], {args.method: base}, config, params["seed"],
                                    label, encoder=spec.encoder, theta_lr=theta)  # fmt: skip
            for row in scored:
                rows.append({"encoder": spec.encoder, "method": args.method, "held_out": args.held_out,
                             "corpus": corpus.name, "shots": args.k, "theta_default_lr": theta or head,
                             "head_default_lr": head, "steps": config.steps, "repetition": row["repetition"],
                             "devel_sentences": row["test_sentences"], **{m: row[m] for m in ("precision", "recall", "f1")},
                             "checkpoint": args.checkpoint})  # fmt: skip
            f1 = [r["f1"] for r in scored]
            log.info("theta %s head %s steps %d %s: devel F1 %s (%.0f s)", theta or head, head, n_steps,
                     corpus.name, " ".join(f"{v:.3f}" for v in f1), time.perf_counter() - start)  # fmt: skip
        out_path = ROOT / args.out
        previous = out_path.read_text(encoding="utf-8") if out_path.is_file() else ""
        if previous and previous.split("\n", 1)[0] != ",".join(FIELDS):
            raise SystemExit(f"error: {args.out}:1: the header is not {','.join(FIELDS)!r}; choose another --out")
        write_text(out_path, previous + csv_text(rows, FIELDS, header=not previous))  # each candidate lands
        rows = []
    log.info("appended the rows to %s", args.out)


if __name__ == "__main__":
    main()
