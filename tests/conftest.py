"""Shared fixtures: small synthetic corpora per domain and a tiny BiLSTM-CRF tagger."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from hgda_core.data import Corpus, CorpusSplit, Sentence
from hgda_core.embeddings import WordVectors
from hgda_core.models import BiLSTMConfig, Tagger, build_tagger

# Tiny models are fastest on one thread, and a second thread collapses when another
# process shares the two cores.
torch.set_num_threads(1)

FILLER = "the of a in and patients with was were to by for on this that is cells study".split()
LEXICON = {
    "Disease": ["cancer", "diabetes", "asthma", "colitis", "ataxia"],
    "Drug": ["aspirin", "heparin", "cisplatin", "morphine", "insulin"],
    "Gene": ["BRCA1", "p53", "IL-2", "TNF", "NF-kappaB"],
    "Species": ["human", "mouse", "rat", "yeast", "Escherichia"],
}


def synthetic_sentences(domain: str, n: int, seed: int, entity_share: float = 0.6) -> list[Sentence]:
    """Sentences of filler words where the domain's lexicon words are tagged B (or B I)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tokens, tags = [], []
        for _ in range(rng.randint(4, 12)):
            tokens.append(rng.choice(FILLER))
            tags.append("O")
        if rng.random() < entity_share:
            pos = rng.randrange(len(tokens))
            word = rng.choice(LEXICON[domain])
            tokens.insert(pos, word)
            tags.insert(pos, "B")
            if rng.random() < 0.3:
                tokens.insert(pos + 1, "disease" if domain == "Disease" else "protein")
                tags.insert(pos + 1, "I")
        out.append(Sentence(tuple(tokens), tuple(tags)))
    return out


def synthetic_corpus(name: str, domain: str, n: int = 60, seed: int = 0) -> Corpus:
    corpus = Corpus(name, domain)
    for i, split in enumerate(("train", "devel", "test")):
        corpus.splits[split] = CorpusSplit(synthetic_sentences(domain, n, seed * 10 + i))
    return corpus


@pytest.fixture(scope="session")
def tiny_corpora() -> dict[str, list[Corpus]]:
    """Four domains, one synthetic corpus each (60 sentences per split)."""
    return {d: [synthetic_corpus(f"{d.lower()}-corpus", d, seed=i)] for i, d in enumerate(LEXICON)}


@pytest.fixture(scope="session")
def tiny_vectors() -> WordVectors:
    words = sorted(set(FILLER) | {w for ws in LEXICON.values() for w in ws} | {"disease", "protein"})
    rng = np.random.default_rng(0)
    return WordVectors.build(words, rng.normal(size=(len(words), 8)).astype(np.float32))


TINY = BiLSTMConfig(char_dim=4, char_cnn=4, char_lstm=4, hidden=6, dropout=0.0)


@pytest.fixture
def make_tagger(tiny_vectors: WordVectors) -> Callable[..., Tagger]:
    """Factory of tiny taggers: seeded, no dropout unless asked."""

    def make(domains=("Disease", "Gene", "Species"), seed: int = 0, config: BiLSTMConfig = TINY) -> Tagger:
        torch.manual_seed(seed)
        return build_tagger(tiny_vectors, config, list(domains), list(domains))

    return make


SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789-")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder: filler words are one piece, every other word splits into characters."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = SPECIALS + sorted(set(FILLER)) + CHARS + [f"##{c}" for c in CHARS]
    BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def workspace(tmp_path: Path, tiny_corpora, tiny_vectors, monkeypatch: pytest.MonkeyPatch):
    """A repository-like folder for the stages: every tiny corpus under data/processed, the
    tiny vectors under data/embeddings; cells run in this process (``HGDA_JOBS=1``) into
    its own ``cells/``; torch's thread count is restored afterwards."""
    from hgda_core.data import save_corpus

    threads = torch.get_num_threads()
    monkeypatch.setenv("HGDA_EXECUTOR", "local")
    monkeypatch.setenv("HGDA_JOBS", "1")
    monkeypatch.delenv("HGDA_CELLS", raising=False)
    for corpora in tiny_corpora.values():
        for corpus in corpora:
            save_corpus(corpus, tmp_path / "data" / "processed" / f"{corpus.name}.pkl")
    tiny_vectors.save(tmp_path / "data" / "embeddings" / "vectors.npz")
    yield tmp_path
    torch.set_num_threads(threads)
