"""Models: sentence encoders θ, CRF tag decoders φ, and the tagger that joins them."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hgda_core.embeddings import WordVectors
from hgda_core.models.crf import BIO_LABELS, TagDecoder
from hgda_core.models.encoder import BiLSTMConfig, BiLSTMEncoder, SentenceEncoder
from hgda_core.models.tagger import GROUPS, Tagger, param_group, scale_gradient

__all__ = [
    "BIO_LABELS", "BiLSTMConfig", "BiLSTMEncoder", "GROUPS", "SentenceEncoder", "TagDecoder",
    "Tagger", "build_tagger", "load_tagger", "param_group", "scale_gradient",
]


def build_tagger(
    vectors: WordVectors,
    config: BiLSTMConfig,
    decoder_domains: Sequence[str],
    classifier_domains: Sequence[str],
    labels: Sequence[str] = BIO_LABELS,
) -> Tagger:
    """A BiLSTM-CRF tagger with one decoder per domain and a domain head."""
    return Tagger(BiLSTMEncoder(vectors, config), decoder_domains, classifier_domains, labels)


def load_tagger(path: str | Path, vectors: WordVectors) -> Tagger:
    """Rebuild a tagger saved by :meth:`Tagger.save` (word vectors are given, not saved)."""
    ckpt = Tagger.read_checkpoint(path)
    model = build_tagger(
        vectors, BiLSTMConfig(**ckpt["encoder_config"]), ckpt["decoder_domains"],
        ckpt["classifier_domains"], ckpt["labels"],
    )
    model.load_trainable_state(ckpt["state"])
    return model
