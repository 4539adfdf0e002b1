"""Models: sentence encoders θ, tag decoders φ, and the tagger that joins them.

:func:`build_model` and :func:`load_model` pick the encoder from the ``model`` section
of params.yaml: ``encoder: bilstm`` (the Appendix's BiLSTM-CRF, sizes at the top of the
section) or ``encoder: bert`` (the sub-section ``bert``: model folder, truncation, tag
head; the BERT rows of Table 3 starred).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hgda_core.embeddings import WordVectors
from hgda_core.models.crf import BIO_LABELS, TAG_HEADS, LinearTagDecoder, TagDecoder, TagHead
from hgda_core.models.encoder import BiLSTMConfig, BiLSTMEncoder, SentenceEncoder
from hgda_core.models.tagger import GROUPS, Tagger, param_group, scale_gradient

__all__ = [
    "BIO_LABELS", "BiLSTMConfig", "BiLSTMEncoder", "ENCODERS", "GROUPS", "LinearTagDecoder", "ModelSpec",
    "SentenceEncoder", "TAG_HEADS", "TagDecoder", "TagHead", "Tagger", "TaggerFactory", "build_model",
    "build_tagger", "load_model", "load_tagger", "param_group", "scale_gradient",
]

ENCODERS: tuple[str, ...] = ("bilstm", "bert")

TaggerFactory = Callable[[Sequence[str], Sequence[str]], Tagger]
"""``(decoder_domains, classifier_domains) → a new tagger`` (seeded by the caller)."""


def build_tagger(
    vectors: WordVectors,
    config: BiLSTMConfig,
    decoder_domains: Sequence[str],
    classifier_domains: Sequence[str],
    labels: Sequence[str] = BIO_LABELS,
) -> Tagger:
    """A BiLSTM-CRF tagger with one decoder per domain and a domain head."""
    return Tagger(BiLSTMEncoder(vectors, config), decoder_domains, classifier_domains, labels)


def load_tagger(path: str | Path, vectors: WordVectors, ckpt: dict | None = None) -> Tagger:
    """Rebuild a BiLSTM tagger saved by :meth:`Tagger.save` (word vectors are given, not
    saved; ``ckpt``: the checkpoint's contents, if already read).

    Raises:
        ValueError: when the checkpoint records the fingerprint of other word vectors.
    """
    ckpt = ckpt if ckpt is not None else Tagger.read_checkpoint(path)
    trained_with = ckpt.get("vectors_fingerprint")
    if trained_with is not None and trained_with != vectors.fingerprint:
        raise ValueError(
            f"{path}: trained with word vectors {trained_with[:12]}, given {vectors.fingerprint[:12]} "
            f"({len(vectors)} words); load it with the vectors it was trained with (data/embeddings of its run)"
        )
    model = build_tagger(
        vectors, BiLSTMConfig(**ckpt["encoder_config"]), ckpt["decoder_domains"],
        ckpt["classifier_domains"], ckpt["labels"],
    )
    model.load_trainable_state(ckpt["state"])
    return model


@dataclass
class ModelSpec:
    """The ``model`` section of params.yaml, split by encoder.

    Attributes:
        encoder: ``bilstm`` or ``bert``.
        bilstm: the BiLSTM sizes (the section's top-level keys).
        bert: the ``bert`` sub-section (see params.yaml): model folder, max length,
            dropout, attention, label, plus ``tag_head`` and ``default_lr``.
    """

    encoder: str
    bilstm: BiLSTMConfig
    bert: dict[str, Any]

    @classmethod
    def from_params(cls, model: Mapping[str, Any]) -> "ModelSpec":
        encoder = model.get("encoder", "bilstm")
        if encoder not in ENCODERS:
            raise ValueError(f"model.encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
        bilstm = BiLSTMConfig(**{k: v for k, v in model.items() if k not in ("encoder", "bert")})
        return cls(encoder, bilstm, dict(model.get("bert") or {}))

    @property
    def theta_lr(self) -> float | None:
        """The encoder's own default learning rate (BERT: 1e-5 at K = 32, Appendix), or
        None when θ shares the section's default (BiLSTM)."""
        return float(self.bert.get("default_lr", 1e-5)) if self.encoder == "bert" else None

    def bert_config(self) -> Any:
        from hgda_core.models.bert import BertEncoderConfig

        names = {f.name for f in fields(BertEncoderConfig)}
        return BertEncoderConfig(**{k: v for k, v in self.bert.items() if k in names})

    def factory(self, vectors: WordVectors | None, pretrained: bool = True) -> TaggerFactory:
        """A :data:`TaggerFactory` for this encoder.

        Args:
            vectors: the word vectors (BiLSTM only).
            pretrained: BERT: load the folder's pre-trained weights (False: random
                initialisation of the same architecture, e.g. ``scratch``).
        """
        if self.encoder == "bilstm":
            if vectors is None:
                raise ValueError("the BiLSTM encoder needs word vectors")
            return lambda dec, cls: build_tagger(vectors, self.bilstm, dec, cls)
        from transformers import AutoConfig

        from hgda_core.models.bert import BertEncoder, resolve_model_path

        config, head = self.bert_config(), self.bert.get("tag_head", "linear")
        if pretrained:
            prototype = BertEncoder(config)  # read the folder once; each tagger copies it
            return lambda dec, cls: Tagger(copy.deepcopy(prototype), dec, cls, BIO_LABELS, head)
        architecture = AutoConfig.from_pretrained(resolve_model_path(config.model_path), local_files_only=True)

        def build(dec: Sequence[str], cls: Sequence[str]) -> Tagger:
            return Tagger(BertEncoder(config, architecture), dec, cls, BIO_LABELS, head)

        return build


def build_model(
    model: Mapping[str, Any],
    vectors: WordVectors | None,
    decoder_domains: Sequence[str],
    classifier_domains: Sequence[str],
    pretrained: bool = True,
) -> Tagger:
    """A tagger for the ``model`` params section (see :class:`ModelSpec`)."""
    return ModelSpec.from_params(model).factory(vectors, pretrained)(decoder_domains, classifier_domains)


def load_model(path: str | Path, vectors: WordVectors | None) -> Tagger:
    """Rebuild any tagger saved by :meth:`Tagger.save`, BiLSTM or BERT (from its checkpoint)."""
    ckpt = Tagger.read_checkpoint(path)
    if ckpt.get("encoder_kind", "bilstm") == "bert":
        from hgda_core.models.bert import load_bert_tagger

        return load_bert_tagger(path, ckpt)
    if vectors is None:
        raise ValueError(f"{path}: a BiLSTM checkpoint needs the word vectors")
    return load_tagger(path, vectors, ckpt)
