"""`hgda adapt` from a held-out meta-trained checkpoint vs from scratch
(stage ``compare_bases`` of ``studies/dvc.yaml``).

For each corpus of ``--corpora`` (default the two Disease corpora), K of ``--shots`` and
draw r < ``--draws``, the K train sentences of draw r (:func:`hgda_core.adapt.draw_for`,
the benchmark's draws) are adapted on with :func:`hgda_core.usertagger.adapt_tagger` —
exactly what ``hgda adapt`` runs — once from
``models/metatrain/bilstm/<domain>-<method>/K<k>.pt`` (the checkpoint that held the
corpus's domain out) and once from random initialisation (``--base none``), and both are
scored on the whole test split.  Rows go to stdout as JSON lines and to ``--out``.

Run once the main pipeline's checkpoints are in the workspace (``dvc pull``, or ``dvc repro
metatrain`` with Disease held out, ``hgda`` and the K asked):
``python -m studies.compare_bases --shots 10 50 --draws 5 --out reports/own_corpus_bases.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hgda_core.adapt import draw_for
from hgda_core.data import Sentence, load_corpus
from hgda_core.embeddings import WordVectors
from hgda_core.io import write_json
from hgda_core.usertagger import adapt_tagger
from stages.common import ROOT, domain_of, load_params


def compare(corpora: list[str], shots: list[int], draws: int, method: str = "hgda", root: Path = ROOT) -> list[dict]:
    params = load_params(root)
    domains = domain_of(corpora, params["domains"])
    vectors = WordVectors.load(root / "data" / "embeddings" / "vectors.npz")
    rows = []
    for name in corpora:
        corpus, domain = load_corpus(root / "data" / "processed" / f"{name}.pkl"), domains[name]

        def typed(s: Sentence) -> Sentence:
            return Sentence(s.tokens, tuple(t if t == "O" else f"{t}-{domain}" for t in s.tags))

        test = [typed(s) for s in corpus["test"]]
        for k in shots:
            checkpoint = root / "models" / "metatrain" / "bilstm" / f"{domain}-{method}" / f"K{k}.pt"
            for r in range(draws):
                sample = [typed(corpus["train"][i]) for i in draw_for(corpus, k, r, params["seed"])]
                for base in (checkpoint, None):
                    start = time.perf_counter()
                    tagger = adapt_tagger(sample, base=base, vectors=vectors, seed=params["seed"])
                    row = {"corpus": name, "K": k, "draw": r, "base": f"{domain}-{method}" if base else "none",
                           "mentions": sum(s.n_mentions for s in sample), **tagger.evaluate(test)["micro"],
                           "seconds": round(time.perf_counter() - start, 1)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpora", nargs="+", default=["NCBI-disease", "BC5CDR-disease"])
    parser.add_argument("--shots", nargs="+", type=int, default=[10, 50])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--method", default="hgda")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = compare(args.corpora, args.shots, args.draws, args.method)
    if args.out:
        write_json(args.out, rows)


if __name__ == "__main__":
    main()
