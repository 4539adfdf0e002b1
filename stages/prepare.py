"""Stage ``prepare``: validate the raw corpora, save them processed, write Table 2.

Reads the ``corpora`` and ``domains`` sections of params.yaml.  For each corpus, reads
``data/raw/<name>/`` strictly (:func:`hgda_core.data.read_corpus`) and writes
``data/processed/<name>.pkl``; then writes ``reports/table2.md``, ``reports/table2.tex``
and the metrics file ``reports/corpus_stats.json`` (per corpus and split, per corpus
total, per domain).

Run from the repository root: ``python -m stages.prepare``.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from hgda_core.data import Corpus, read_corpus, save_corpus
from hgda_core.io import setup_logging, write_json, write_text
from hgda_core.stats import compute_stats, stats_to_dict
from hgda_core.tables import load_paper_table2, render_table2
from stages.common import ROOT, domain_of, load_params

RAW_DIR = ROOT / "data" / "raw"
PROCESSED_DIR = ROOT / "data" / "processed"
REPORTS_DIR = ROOT / "reports"

log = logging.getLogger("stages.prepare")


def read_and_save(name: str, domain: str) -> Corpus:
    """Read ``data/raw/<name>`` and save ``data/processed/<name>.pkl``."""
    start = time.perf_counter()
    corpus = read_corpus(RAW_DIR / name, domain, name)
    save_corpus(corpus, PROCESSED_DIR / f"{name}.pkl")
    sizes = ", ".join(f"{split} {len(cs):,}" for split, cs in corpus.splits.items())
    log.info("%s (%s): %s sentences; %.1f s", name, domain, sizes, time.perf_counter() - start)
    return corpus


def write_reports(corpora: Mapping[str, Corpus]) -> None:
    """Write Table 2 (Markdown and LaTeX) and the statistics metrics file."""
    stats = compute_stats(corpora)
    markdown, latex = render_table2(stats, load_paper_table2())
    write_text(REPORTS_DIR / "table2.md", markdown)
    write_text(REPORTS_DIR / "table2.tex", latex)
    write_json(REPORTS_DIR / "corpus_stats.json", stats_to_dict(stats))
    log.info("wrote reports/table2.md, reports/table2.tex, reports/corpus_stats.json")


def main() -> None:
    """Entry point: exit 1 with a one-line error on a bad domain map or corpus file."""
    setup_logging()
    params = load_params()
    shutil.rmtree(PROCESSED_DIR, ignore_errors=True)
    try:
        domains = domain_of(params["corpora"], params["domains"])
        corpora = {name: read_and_save(name, domain) for name, domain in domains.items()}
    except ValueError as err:  # CorpusFormatError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    write_reports(corpora)


if __name__ == "__main__":
    main()
