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


def crf_log_likelihood(crf: CRF, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
    """Per-sentence log-likelihood log p(y | x) of a linear-chain CRF, (B,).

    The same function as pytorch-crf's ``CRF.forward(..., reduction="none")`` on a
    ``batch_first`` CRF (whose parameters ``crf`` holds), with fewer operations per time
    step: the path score is gathered for all steps at once, and the forward algorithm's
    step is one broadcast add and one ``logsumexp`` over emission-plus-transition scores
    built once for the batch; each sentence's log-partition is read at its last step
    instead of masking every step.  Rows must be left-aligned (``mask[:, 0]`` true).
    """
    batch, length, _ = emissions.shape
    lengths = mask.sum(1)
    maskf = mask.to(emissions.dtype)
    last = (lengths - 1).unsqueeze(1)
    emitted = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)  # (B, L)
    score = crf.start_transitions[tags[:, 0]] + (emitted * maskf).sum(1)
    if length > 1:
        score = score + (crf.transitions[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]).sum(1)
    score = score + crf.end_transitions[tags.gather(1, last).squeeze(1)]
    steps = emissions.unsqueeze(2) + crf.transitions  # (B, L, from, to)
    alpha = crf.start_transitions + emissions[:, 0]
    alphas = [alpha]
    for t in range(1, length):
        alpha = torch.logsumexp(alpha.unsqueeze(2) + steps[:, t], dim=1)
        alphas.append(alpha)
    final = torch.stack(alphas, 1).gather(1, last.unsqueeze(-1).expand(-1, 1, alpha.shape[-1])).squeeze(1)
    return score - torch.logsumexp(final + crf.end_transitions, dim=1)


@torch.no_grad()
def viterbi_decode(crf: CRF, emissions: Tensor, mask: Tensor) -> list[list[int]]:
    """Best tag sequence of each sentence, as pytorch-crf's ``CRF.decode`` gives it.

    The forward pass keeps, per step, the best previous tag of every tag; the
    back-tracking then follows those pointers for the whole batch at once (one gather
    per step) instead of one indexing per sentence and step.  Each row's path starts at
    its own last real step (left-aligned rows, ``mask[:, 0]`` true).
    """
    batch, length, _ = emissions.shape
    lengths = mask.sum(1)
    score = crf.start_transitions + emissions[:, 0]
    pointers = []
    for t in range(1, length):
        best, previous = (score.unsqueeze(2) + crf.transitions).max(dim=1)
        step = mask[:, t].unsqueeze(1)
        score = torch.where(step, best + emissions[:, t], score)
        pointers.append(torch.where(step, previous, torch.arange(score.shape[1], device=score.device)))
    tag = (score + crf.end_transitions).argmax(dim=1)
    path = [tag]
    for pointer in reversed(pointers):  # padded steps point to the tag itself
        tag = pointer.gather(1, tag.unsqueeze(1)).squeeze(1)
        path.append(tag)
    tags = torch.stack(path[::-1], 1).tolist()
    return [row[:n] for row, n in zip(tags, lengths.tolist())]


CRF_IMPLS: tuple[str, ...] = ("fast", "torchcrf")
"""How :class:`TagDecoder` computes its loss and Viterbi paths: ``fast``
(:func:`crf_log_likelihood`, :func:`viterbi_decode`; the default) or ``torchcrf``
(pytorch-crf's own methods; the reference of the tests and the benchmark)."""


class TagDecoder(TagHead):
    """φ_d of the BiLSTM: a linear emission layer and a CRF over one domain's labels.

    The CRF's parameters are pytorch-crf's (``self.crf``); :attr:`impl` chooses who
    computes with them (:data:`CRF_IMPLS`).
    """

    def __init__(self, input_dim: int, labels: Sequence[str] = BIO_LABELS) -> None:
        super().__init__(input_dim, labels)
        self.crf = CRF(len(self.labels), batch_first=True)
        self.impl = "fast"

    def nll(self, hidden: Tensor, tag_ids: Tensor, mask: Tensor) -> Tensor:
        """L^lab: CRF negative log-likelihood, averaged over the sentences of the batch."""
        emissions = self.emissions(hidden)
        if self.impl == "torchcrf":
            return -self.crf(emissions, tag_ids, mask=mask, reduction="mean")
        return -crf_log_likelihood(self.crf, emissions, tag_ids, mask).mean()

    def decode(self, hidden: Tensor, mask: Tensor) -> list[list[str]]:
        """Viterbi decoding to tag strings (one list per sentence, unpadded)."""
        emissions = self.emissions(hidden)
        paths = self.crf.decode(emissions, mask=mask) if self.impl == "torchcrf" else viterbi_decode(self.crf, emissions, mask)
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
