"""The real corpora of the offline mirror (``../shared/corpora``), when it is present.

Checks the figures documented in the mirror's SOURCES.md and that every mirror file
matches the committed checksums manifest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hgda_core.data import SPLITS, read_corpus
from hgda_core.download import CHECKSUMS_PATH, file_digest, read_checksums
from hgda_core.stats import compute_stats

ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPORA = ROOT.parent / "shared" / "corpora"

pytestmark = pytest.mark.skipif(
    not SHARED_CORPORA.is_dir(), reason=f"no corpus mirror at {SHARED_CORPORA}"
)


def total(name: str, domain: str) -> dict:
    """The pooled (train + devel + test) statistics of one mirror corpus."""
    corpus = read_corpus(SHARED_CORPORA / name, domain)
    return compute_stats({name: corpus}).loc[("corpus", name, "total")].to_dict()


def test_ncbi_disease_totals() -> None:
    stats = total("NCBI-disease", "Disease")
    assert stats["sentences"] == 7_287
    assert stats["tokens"] == 184_167
    assert stats["mentions"] == 6_881
    assert stats["unique_tokens"] == 10_818
    assert round(stats["pct_with_entity"], 1) == 54.2
    assert stats["repairs"] == 0


def test_linnaeus_share_of_sentences_with_entities() -> None:
    stats = total("linnaeus", "Species")
    assert stats["sentences"] == 23_155
    assert round(stats["pct_with_entity"], 1) == 13.4


def test_mirror_files_match_committed_sha256() -> None:
    checked = 0
    for corpus, sums in read_checksums(CHECKSUMS_PATH).items():
        if not (SHARED_CORPORA / corpus).is_dir():
            continue  # BC4CHEMD is not in the mirror
        for split in SPLITS:
            expected = sums[split]
            assert expected.algo == "sha256"
            assert (
                file_digest(SHARED_CORPORA / corpus / f"{split}.tsv", "sha256") == expected.digest
            )
            checked += 1
    assert checked == 21
