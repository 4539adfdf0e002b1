"""Stage ``embed``: word vectors for the BiLSTM encoder (paper Appendix: 200-d BioWordVec).

Reads ``params.yaml`` (``corpora``, ``seed``, section ``embed``) and
``data/processed/<corpus>.pkl``; writes ``data/embeddings/vectors.npz`` (a
:class:`~hgda_core.embeddings.WordVectors` table over every token of every split) and
``reports/embeddings.json`` (source, vocabulary size, seconds, per-corpus coverage).

``embed.vectors`` empty: fastText is trained on the train + devel text (no test text, no
labels); otherwise that word2vec file (BioWordVec) is read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hgda_core import embeddings as emb
from hgda_core.data import SPLITS, Corpus, load_corpora
from hgda_core.io import setup_logging, write_json
from stages.common import ROOT, load_params

COVERAGE_SPLITS = {"all": SPLITS, "test": ("test",)}  # coverage is reported for these
log = logging.getLogger("stages.embed")


@dataclass
class EmbedParams:
    """Section ``embed`` of params.yaml (see there for each key)."""

    vectors: str = ""
    dim: int = 200
    epochs: int = 5
    window: int = 5
    min_count: int = 1
    workers: int = 1
    sg: int = 1
    limit: int = 0


def build_vectors(
    corpora: dict[str, Corpus], cfg: EmbedParams, seed: int, root: Path = ROOT
) -> tuple[emb.WordVectors, dict[str, Any]]:
    """The lookup table over every token of every split, and the report's body."""
    vocab = emb.corpus_vocabulary(
        s.tokens for c in corpora.values() for sp in SPLITS for s in c[sp]
    )
    log.info("vocabulary: %d token types in %d corpora (all splits)", len(vocab), len(corpora))
    start = time.perf_counter()
    trained = None
    if cfg.vectors:
        wv, matches = emb.load_pretrained(root / cfg.vectors, vocab, cfg.dim, cfg.limit or None)
        report: dict[str, Any] = {"source": cfg.vectors, "matches": matches}
        timing = "loading_seconds"
    else:
        text = emb.training_text(corpora.values())
        n_tokens = sum(map(len, text))
        log.info("training fastText on %d sentences, %d tokens", len(text), n_tokens)
        model = emb.train_fasttext(
            text, cfg.dim, cfg.epochs, cfg.window, cfg.min_count, seed, cfg.workers, cfg.sg
        )
        wv, trained = emb.from_fasttext(model, vocab), model.wv.key_to_index
        report = {"source": "fasttext(trained on train+devel)", "training_sentences": len(text),
                  "training_tokens": n_tokens, "fasttext_vocabulary": len(trained)}
        timing = "training_seconds"
    report[timing] = round(time.perf_counter() - start, 1)
    report.update(params={**asdict(cfg), "seed": seed}, dim=wv.dim,
                  vocabulary_size=len(wv) - emb.N_SPECIAL, coverage={})
    log.info("%d vectors of dim %d in %.1f s", len(wv), wv.dim, report[timing])
    for name, c in corpora.items():
        by_split = {k: [s.tokens for sp in v for s in c[sp]] for k, v in COVERAGE_SPLITS.items()}
        cov = emb.coverage(wv, by_split, trained)
        report["coverage"][name] = {k: {m: round(x, 4) for m, x in e.items()}
                                    for k, e in cov.items()}
        log.info("%s coverage: %s", name, report["coverage"][name]["all"])
    return wv, report


def main(root: Path = ROOT) -> None:
    setup_logging()
    logging.getLogger("gensim").setLevel(logging.WARNING)
    params = load_params(root)
    cfg = EmbedParams(**(params.get("embed") or {}))
    corpora = load_corpora(root / "data" / "processed", params["corpora"])
    wv, report = build_vectors(corpora, cfg, params["seed"], root)
    wv.save(root / "data" / "embeddings" / "vectors.npz")
    write_json(root / "reports" / "embeddings.json", report)
    log.info("wrote data/embeddings/vectors.npz and reports/embeddings.json")


if __name__ == "__main__":
    main()
