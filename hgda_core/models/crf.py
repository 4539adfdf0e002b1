"""The tag decoders φ (paper §3.1, Appendix).

:class:`TagDecoder` is the BiLSTM's: emission scores plus a linear-chain CRF
(pytorch-crf).  :class:`LinearTagDecoder` is BERT's "fully connected layer [that]
predict[s] the tagging sequence" (Appendix): a per-word softmax over the same labels.
Both share :class:`TagHead`'s label handling and interface (``nll``, ``decode``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchcrf import CRF

BIO_LABELS: tuple[str, ...] = ("O", "B", "I")
"""The plain BIO label set of the benchmark corpora (paper footnote 2)."""


class TagHead(nn.Module):
    """What every φ_d has: the label set and a linear emission layer.

    Args:
        input_dim: size of the word representations from the encoder.
        labels: the tag strings, ``labels[0]`` must be ``"O"``.
    """

    def __init__(self, input_dim: int, labels: Sequence[str] = BIO_LABELS) -> None:
        super().__init__()
        if not labels or labels[0] != "O":
            raise ValueError(f"labels must start with 'O', got {list(labels)}")
        self.labels = tuple(labels)
        self.label_index = {label: i for i, label in enumerate(self.labels)}
        self.emission = nn.Linear(input_dim, len(self.labels))

    def emissions(self, hidden: Tensor) -> Tensor:
        """Emission scores in float32 (the encoder may run in bfloat16 under AMP)."""
        return self.emission(hidden.float())

    def nll(self, hidden: Tensor, tag_ids: Tensor, mask: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, hidden: Tensor, mask: Tensor) -> list[list[str]]:
        raise NotImplementedError

    def encode_tags(self, tags: Sequence[Sequence[str]], max_len: int) -> Tensor:
        """Tag strings → padded label ids (B, max_len); padding is label 0."""
        out = torch.zeros(len(tags), max_len, dtype=torch.long)
        for i, seq in enumerate(tags):
            try:
                out[i, : len(seq)] = torch.tensor([self.label_index[t] for t in seq])
            except KeyError as err:
                raise ValueError(f"tag {err.args[0]!r} is not in this decoder's labels {self.labels}") from None
        return out


class TagDecoder(TagHead):
    """φ_d of the BiLSTM: a linear emission layer and a CRF over one domain's labels."""

    def __init__(self, input_dim: int, labels: Sequence[str] = BIO_LABELS) -> None:
        super().__init__(input_dim, labels)
        self.crf = CRF(len(self.labels), batch_first=True)

    def nll(self, hidden: Tensor, tag_ids: Tensor, mask: Tensor) -> Tensor:
        """L^lab: CRF negative log-likelihood, averaged over the sentences of the batch."""
        return -self.crf(self.emissions(hidden), tag_ids, mask=mask, reduction="mean")

    def decode(self, hidden: Tensor, mask: Tensor) -> list[list[str]]:
        """Viterbi decoding to tag strings (one list per sentence, unpadded)."""
        paths = self.crf.decode(self.emissions(hidden), mask=mask)
        return [[self.labels[i] for i in path] for path in paths]


class LinearTagDecoder(TagHead):
    """φ_d of BERT (Appendix): a fully connected layer and a softmax per word.

    L^lab is the summed cross-entropy of a sentence's words, averaged over sentences —
    the same scale as the CRF's sentence negative log-likelihood, so eq. 2's hardness
    ratios mean the same with either decoder.  Decoding takes each word's most likely
    tag; no IOB2 repair is applied (an ``I`` after ``O`` simply starts no entity under
    seqeval's strict IOB2 scoring).
    """

    def nll(self, hidden: Tensor, tag_ids: Tensor, mask: Tensor) -> Tensor:
        logits = self.emissions(hidden)
        losses = F.cross_entropy(logits.transpose(1, 2), tag_ids, reduction="none")  # (B, L)
        return (losses * mask.to(losses.dtype)).sum(1).mean()

    def decode(self, hidden: Tensor, mask: Tensor) -> list[list[str]]:
        best = self.emissions(hidden).argmax(-1).tolist()
        lengths = mask.sum(1).tolist()
        return [[self.labels[i] for i in row[:n]] for row, n in zip(best, lengths)]


TAG_HEADS: dict[str, type[TagHead]] = {"crf": TagDecoder, "linear": LinearTagDecoder}
"""Decoder kinds by name (``model.bert.tag_head``; the BiLSTM always uses ``crf``)."""
