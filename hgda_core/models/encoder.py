"""Sentence encoders θ (paper §3.1): the interface and the BiLSTM encoder of the Appendix.

An encoder turns a list of tokenised sentences into one vector per *word*.  It owns its
own batching (:meth:`SentenceEncoder.collate`), so that a sub-word encoder (BERT) can
implement the same interface and still return word-level representations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hgda_core.embeddings import WordVectors


def reversal_index(lengths: Tensor, max_len: int) -> Tensor:
    """(B, max_len) time indices that reverse each row within its length and keep the
    padding in place: ``t → len − 1 − t`` for ``t < len``, ``t → t`` after.  The map is
    its own inverse."""
    t = torch.arange(max_len, device=lengths.device)[None, :]
    lengths = lengths.to(t.device)[:, None]
    return torch.where(t < lengths, lengths - 1 - t, t)


def _bidirectional_padded(lstm: nn.LSTM, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`bidirectional_lstm` on one padded group of rows (see there)."""
    batch, max_len, _ = x.shape
    hidden = lstm.hidden_size
    # [w_ih, w_hh, b_ih, b_hh] forward, then reversed; read by name each call, so that
    # torch.func.functional_call's fast weights are the ones used
    weights = [getattr(lstm, name) for name in lstm._flat_weights_names]
    h0 = x.new_zeros(1, batch, hidden)
    index = reversal_index(lengths, max_len)
    forward, _, _ = torch._VF.lstm(x, (h0, h0), weights[:4], True, 1, 0.0, lstm.training, False, True)
    x_rev = x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    backward_rev, _, _ = torch._VF.lstm(x_rev, (h0, h0), weights[4:], True, 1, 0.0, lstm.training, False, True)
    last_step = (lengths - 1).view(batch, 1, 1).expand(-1, 1, hidden)
    last = torch.cat([forward.gather(1, last_step)[:, 0], backward_rev.gather(1, last_step)[:, 0]], dim=-1)
    backward = backward_rev.gather(1, index.unsqueeze(-1).expand(-1, -1, hidden))
    mask = (torch.arange(max_len, device=x.device)[None, :] < lengths[:, None]).unsqueeze(-1)
    return torch.cat([forward, backward], dim=-1) * mask, last


GROUP_COST = 150
"""The fixed cost of one padded LSTM run, in row-steps (:func:`length_groups`)."""


def length_groups(lengths: Sequence[int], max_groups: int = 4) -> list[list[int]]:
    """Rows split into up to ``max_groups`` groups of similar length (longest first).

    A padded LSTM run costs about one unit per time step (the recurrence is sequential),
    one per padded row-step (the arithmetic) and :data:`GROUP_COST` units per run (the
    fixed cost of the kernels, measured here); the split of the rows sorted by length
    into equal-count groups that minimises the sum is chosen.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    best: tuple[float, list[list[int]]] = (float("inf"), [order])
    for g in range(1, min(max_groups, len(order)) + 1):
        size = -(-len(order) // g)
        groups = [order[i : i + size] for i in range(0, len(order), size)]
        cost = sum(lengths[grp[0]] * (1 + len(grp)) + GROUP_COST for grp in groups)
        if cost < best[0]:
            best = (cost, groups)
    return best[1]


def bidirectional_lstm(lstm: nn.LSTM, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """A one-layer bidirectional ``batch_first`` LSTM over padded rows of given lengths.

    The same function as ``lstm`` on a :func:`pack_padded_sequence` of ``x``, computed as
    two unidirectional runs over *padded* rows: the forward run reads each row from its
    start (padding comes after the real steps, so it cannot reach them); the backward run
    reads each row reversed within its length (:func:`reversal_index`), which puts the
    padding after the real steps too.  Padded runs go through one fused oneDNN kernel per
    direction instead of the per-time-step kernels of packed sequences; rows are run in
    groups of similar length (:func:`length_groups`) so that little padding is computed.
    The difference from the packed run is float rounding only (``tests/test_models.py``
    checks outputs and gradients).

    Returns:
        ``(out, last)``: the outputs (B, L, 2H), zero at padded steps as
        :func:`pad_packed_sequence` gives them, and the final states (B, 2H) — the
        forward state at each row's last real step, the backward state at its first.
    """
    lengths = lengths.to(x.device)
    groups = length_groups(lengths.tolist())
    if len(groups) == 1:
        return _bidirectional_padded(lstm, x, lengths)
    max_len = x.shape[1]
    outs, lasts = [], []
    for group in groups:
        rows = torch.tensor(group, device=x.device)
        n = int(lengths[group[0]])
        out, last = _bidirectional_padded(lstm, x[rows, :n], lengths[rows])
        outs.append(nn.functional.pad(out, (0, 0, 0, max_len - n)))
        lasts.append(last)
    inverse = torch.empty(len(lengths), dtype=torch.long, device=x.device)
    inverse[torch.tensor([i for g in groups for i in g], device=x.device)] = torch.arange(len(lengths), device=x.device)
    return torch.cat(outs)[inverse], torch.cat(lasts)[inverse]


RNN_IMPLS: tuple[str, ...] = ("padded", "packed")
"""How :class:`BiLSTMEncoder` runs its LSTMs when gradients are recorded: ``padded``
(:func:`bidirectional_lstm`, the default; the fused kernels' backward pass is where
packed sequences lose most time) or ``packed`` (``pack_padded_sequence``; the
benchmark's reference).  Without gradients (decoding) the packed run is used: measured
here, it is as fast or faster for the large batches of decoding."""


class SentenceEncoder(nn.Module):
    """Interface of a sentence encoder θ.

    Subclasses set :attr:`output_dim` and implement :meth:`collate` and :meth:`forward`.
    ``forward(batch)`` returns word representations ``(B, L, output_dim)``; the
    returned batch carries ``mask`` ``(B, L)`` marking real words.
    """

    output_dim: int
    kind: str = ""
    """The ``model.encoder`` value that selects this encoder (saved in checkpoints)."""

    def collate(self, sentences: Sequence[Sequence[str]]) -> Any:
        """Turn token lists into the tensors :meth:`forward` takes."""
        raise NotImplementedError

    def frozen_state_keys(self) -> list[str]:
        """State-dict keys (relative to the encoder) not worth saving in checkpoints."""
        return []


@dataclass
class TokenBatch:
    """A padded batch for :class:`BiLSTMEncoder`.

    Characters are encoded once per distinct word of the batch (``char_ids``) and
    gathered back per token through ``word_to_type``.
    """

    word_ids: Tensor  # (B, L) indices into the word-vector table
    mask: Tensor  # (B, L) bool
    lengths: Tensor  # (B,) sentence lengths (CPU, int64)
    char_ids: Tensor  # (U, C) characters of the U distinct words
    char_lengths: Tensor  # (U,)
    word_to_type: Tensor  # (B, L) index of each token's word in [0, U)

    def to(self, device: torch.device | str) -> "TokenBatch":
        return TokenBatch(
            self.word_ids.to(device),
            self.mask.to(device),
            self.lengths,
            self.char_ids.to(device),
            self.char_lengths,
            self.word_to_type.to(device),
        )


@dataclass
class BiLSTMConfig:
    """Sizes of the BiLSTM encoder (paper Appendix, "Detailed experimental setups").

    Word vectors (200) + character CNN (50) + character LSTM (50) give the 300-d input
    of a BiLSTM with 128 units per direction (output 256).
    """

    char_dim: int = 30
    char_cnn: int = 50
    char_cnn_width: int = 3
    char_lstm: int = 50
    hidden: int = 128
    dropout: float = 0.2
    train_embeddings: bool = False
    max_word_chars: int = 30


CHAR_PAD, CHAR_UNK, _CHAR_OFFSET, _CHAR_RANGE = 0, 1, 2, 256


def char_index(ch: str) -> int:
    """Character id: code points below 256 map to themselves (+2), others to unknown."""
    code = ord(ch)
    return code + _CHAR_OFFSET if code < _CHAR_RANGE else CHAR_UNK


class BiLSTMEncoder(SentenceEncoder):
    """Word vectors + char CNN + char LSTM → BiLSTM (paper Appendix).

    Args:
        vectors: the word-vector table (BioWordVec or trained fastText), frozen unless
            ``config.train_embeddings``.
        config: layer sizes and dropout.
    """

    kind = "bilstm"

    def __init__(self, vectors: WordVectors, config: BiLSTMConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or BiLSTMConfig()
        self.vectors = vectors
        table = torch.from_numpy(np.ascontiguousarray(vectors.vectors, dtype=np.float32))
        self.word_embedding = nn.Embedding.from_pretrained(
            table, freeze=not config.train_embeddings, padding_idx=0
        )
        self.char_embedding = nn.Embedding(_CHAR_RANGE + _CHAR_OFFSET, config.char_dim, padding_idx=0)
        self.char_cnn = nn.Conv1d(
            config.char_dim, config.char_cnn, config.char_cnn_width, padding=config.char_cnn_width // 2
        )
        self.char_lstm = nn.LSTM(config.char_dim, config.char_lstm // 2, batch_first=True, bidirectional=True)
        input_dim = vectors.dim + config.char_cnn + config.char_lstm
        self.lstm = nn.LSTM(input_dim, config.hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(config.dropout)
        self.output_dim = 2 * config.hidden
        self.rnn_impl = "padded"  # see RNN_IMPLS; not a hyper-parameter: both compute the same function
        self._word_ids: dict[str, int] = {}  # memo of vectors.lookup (its fallback chain is slow)

    def word_id(self, token: str) -> int:
        """Row of ``token`` in the word-vector table (memoised :meth:`WordVectors.lookup`)."""
        i = self._word_ids.get(token)
        if i is None:
            i = self._word_ids[token] = self.vectors.lookup(token)
        return i

    def frozen_state_keys(self) -> list[str]:
        return [] if self.config.train_embeddings else ["word_embedding.weight"]

    def collate(self, sentences: Sequence[Sequence[str]]) -> TokenBatch:
        """Pad a list of token lists; characters are encoded once per distinct word."""
        lengths = [len(s) for s in sentences]
        if not lengths or min(lengths) == 0:
            raise ValueError("every sentence must hold at least one token")
        batch, max_len = len(sentences), max(lengths)
        types: dict[str, int] = {}
        word_rows: list[list[int]] = []
        type_rows: list[list[int]] = []
        pad = [0] * max_len
        for tokens in sentences:
            tail = pad[: max_len - len(tokens)]
            word_rows.append([self.word_id(t) for t in tokens] + tail)
            type_rows.append([types.setdefault(t, len(types)) for t in tokens] + tail)
        word_ids, word_to_type = torch.tensor(word_rows), torch.tensor(type_rows)
        max_chars = self.config.max_word_chars
        char_lengths = [min(len(w), max_chars) for w in types]
        width = max(char_lengths)
        char_ids = torch.tensor(
            [[char_index(c) for c in word[:max_chars]] + [CHAR_PAD] * (width - n) for word, n in zip(types, char_lengths)]
        )
        lengths_t = torch.tensor(lengths)
        mask = torch.arange(max_len)[None, :] < lengths_t[:, None]
        return TokenBatch(word_ids, mask, lengths_t, char_ids, torch.tensor(char_lengths), word_to_type)

    def _packed(self) -> bool:
        """Whether the LSTMs run on packed sequences (see :data:`RNN_IMPLS`)."""
        return self.rnn_impl == "packed" or not torch.is_grad_enabled()

    def _char_features(self, batch: TokenBatch) -> Tensor:
        """(U, char_cnn + char_lstm) features of the distinct words."""
        chars = self.char_embedding(batch.char_ids)  # (U, C, char_dim)
        cnn = self.char_cnn(chars.transpose(1, 2))  # (U, char_cnn, C)
        pad = batch.char_ids.eq(CHAR_PAD)[:, None, :]
        cnn = cnn.masked_fill(pad, float("-inf")).max(dim=2).values
        if self._packed():
            packed = pack_padded_sequence(chars, batch.char_lengths, batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.char_lstm(packed)  # h_n: (2, U, char_lstm/2)
            lstm = torch.cat([h_n[0], h_n[1]], dim=-1)
        else:
            _, lstm = bidirectional_lstm(self.char_lstm, chars, batch.char_lengths)
        return torch.cat([cnn, lstm], dim=-1)

    def forward(self, batch: TokenBatch) -> Tensor:
        """Word representations (B, L, 256) of the batch."""
        words = self.word_embedding(batch.word_ids)
        chars = self._char_features(batch)[batch.word_to_type]
        x = self.dropout(torch.cat([words, chars], dim=-1))
        if self._packed():
            packed = pack_padded_sequence(x, batch.lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        else:
            out, _ = bidirectional_lstm(self.lstm, x, batch.lengths)
        return self.dropout(out)
