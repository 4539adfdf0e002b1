"""The tag decoder φ (paper §3.1): emission scores plus a linear-chain CRF (pytorch-crf)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torchcrf import CRF

BIO_LABELS: tuple[str, ...] = ("O", "B", "I")
"""The plain BIO label set of the benchmark corpora (paper footnote 2)."""


class TagDecoder(nn.Module):
    """φ_d: a linear emission layer and a CRF over the label set of one domain.

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
        self.crf = CRF(len(self.labels), batch_first=True)

    def encode_tags(self, tags: Sequence[Sequence[str]], max_len: int) -> Tensor:
        """Tag strings → padded label ids (B, max_len); padding is label 0."""
        out = torch.zeros(len(tags), max_len, dtype=torch.long)
        for i, seq in enumerate(tags):
            try:
                out[i, : len(seq)] = torch.tensor([self.label_index[t] for t in seq])
            except KeyError as err:
                raise ValueError(f"tag {err.args[0]!r} is not in this decoder's labels {self.labels}") from None
        return out

    def nll(self, hidden: Tensor, tag_ids: Tensor, mask: Tensor) -> Tensor:
        """L^lab: CRF negative log-likelihood, averaged over the sentences of the batch."""
        return -self.crf(self.emission(hidden), tag_ids, mask=mask, reduction="mean")

    def decode(self, hidden: Tensor, mask: Tensor) -> list[list[str]]:
        """Viterbi decoding to tag strings (one list per sentence, unpadded)."""
        paths = self.crf.decode(self.emission(hidden), mask=mask)
        return [[self.labels[i] for i in path] for path in paths]
