"""The sequence labeller h(θ, φ) with its domain classifier f(θ, ω) (paper §3.1, §3.3).

Parameters fall into the paper's three groups, named by their module prefix:

* θ — ``encoder.*``: the sentence encoder, shared across domains;
* φ — ``decoders.<domain>.*``: one CRF tag decoder per domain (the paper's *sequence
  encoder adaptation* setting, §4.2: only θ is shared and adapted);
* ω — ``domain_head.*``: a fully connected layer that predicts the source domain of a
  sentence from its mean-pooled encoding.

The classification loss reaches θ through :func:`scale_gradient`, so one backward pass
of ``L_lab + L_cls`` yields ∇θ(L_lab + λ·L_cls), ∇φ L_lab and ∇ω L_cls at once — the
three gradients of Algorithm 2 lines 6–8.  A negative scale is MetaNER's gradient
reversal (adversarial domain discriminator).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hgda_core.data import Sentence
from hgda_core.io import atomic_write
from hgda_core.models.crf import BIO_LABELS, TAG_HEADS, TagHead
from hgda_core.models.encoder import SentenceEncoder

GROUPS: tuple[str, ...] = ("theta", "phi", "omega")
SHARED_DECODER = "_shared"
"""The name of the decoder start that meta-training learns for new domains
(``meta.inner_decoder: shared``); not a source domain's decoder."""
KERNELS: tuple[str, ...] = ("fast", "reference")
"""How a tagger computes (:meth:`Tagger.set_kernels`); the same function either way."""
_PREFIX_GROUP = {"encoder.": "theta", "decoders.": "phi", "domain_head.": "omega"}


def param_group(name: str) -> str:
    """The paper's parameter group (θ, φ or ω) of a parameter name."""
    for prefix, group in _PREFIX_GROUP.items():
        if name.startswith(prefix):
            return group
    raise KeyError(f"parameter {name!r} belongs to no group")


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """Identity forward; multiplies the gradient by ``scale`` backward (−λ: reversal)."""
    return x if scale == 1.0 else _ScaleGradient.apply(x, scale)


@dataclass
class TaskBatch:
    """Support and query sentences of one task, collated once (rows: support, then query).

    Built by :meth:`Tagger.task_batch`; the loss functions choose the rows they use.
    """

    inputs: Any
    tag_ids: Tensor
    domain: str
    n_support: int
    domain_label: Tensor | None

    @property
    def support(self) -> slice:
        return slice(0, self.n_support)

    @property
    def query(self) -> slice:
        return slice(self.n_support, self.tag_ids.shape[0])


@dataclass
class PreparedSentences:
    """Sentences collated for :meth:`Tagger.predict`: ``batches[j]`` holds the sentences
    ``order[j * batch_size : (j + 1) * batch_size]`` (sorted by length)."""

    order: list[int]
    batches: list[Any]


class Tagger(nn.Module):
    """h(θ, φ) and f(θ, ω): encoder, per-domain CRF decoders and a domain head.

    Args:
        encoder: the sentence encoder θ.
        decoder_domains: domains that get a tag decoder φ_d.
        classifier_domains: the classes of the domain head ω (the source domains).
        labels: tag set of every decoder.
        tag_head: the decoders' kind, ``crf`` (BiLSTM, Appendix) or ``linear`` (BERT's
            fully connected tag layer, Appendix); see :data:`TAG_HEADS`.

    Attributes:
        amp: run the encoder under bfloat16 autocast when on a CUDA device (mixed
            precision); decoders and losses stay float32.
    """

    def __init__(
        self,
        encoder: SentenceEncoder,
        decoder_domains: Sequence[str],
        classifier_domains: Sequence[str],
        labels: Sequence[str] = BIO_LABELS,
        tag_head: str = "crf",
    ) -> None:
        super().__init__()
        if tag_head not in TAG_HEADS:
            raise ValueError(f"tag_head must be one of {', '.join(TAG_HEADS)}, got {tag_head!r}")
        self.encoder = encoder
        self.labels = tuple(labels)
        self.tag_head = tag_head
        self.decoders = nn.ModuleDict({d: TAG_HEADS[tag_head](encoder.output_dim, labels) for d in decoder_domains})
        self.classifier_domains = tuple(classifier_domains)
        self.domain_head = nn.Linear(encoder.output_dim, max(1, len(classifier_domains)))
        self.amp = False
        self.kernels = "fast"

    def set_kernels(self, kernels: str) -> "Tagger":
        """``fast`` (the default) or ``reference``: the BiLSTM's packed-sequence LSTMs and
        pytorch-crf's own loss and Viterbi — the same functions computed the plain way,
        kept for the equivalence tests and the benchmark's ratios.  Decoders added later
        follow it."""
        if kernels not in KERNELS:
            raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, got {kernels!r}")
        self.kernels = kernels
        if hasattr(self.encoder, "rnn_impl"):
            self.encoder.rnn_impl = "padded" if kernels == "fast" else "packed"
        for decoder in self.decoders.values():
            if hasattr(decoder, "impl"):
                decoder.impl = "fast" if kernels == "fast" else "torchcrf"
        return self

    @property
    def device(self) -> torch.device:
        """Where the weights are (every batch is moved there)."""
        return self.domain_head.weight.device

    def add_decoder(self, domain: str, labels: Sequence[str] | None = None) -> TagHead:
        """Attach a fresh (randomly initialised) decoder φ for a new domain (§4.2)."""
        decoder = TAG_HEADS[self.tag_head](self.encoder.output_dim, labels or self.labels).to(self.device)
        self.decoders[domain] = decoder
        self.set_kernels(self.kernels)
        return decoder

    def encode(self, inputs: Any) -> Tensor:
        """θ: word representations; under bfloat16 autocast when :attr:`amp` is on CUDA."""
        if self.amp and self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.encoder(inputs).float()
        return self.encoder(inputs)

    def task_batch(self, support: Sequence[Sentence], query: Sequence[Sentence], domain: str) -> TaskBatch:
        """Collate support + query once, with tag ids and the domain label, on :attr:`device`."""
        sentences = list(support) + list(query)
        device = self.device
        inputs = self.encoder.collate([s.tokens for s in sentences]).to(device)
        tag_ids = self.decoders[domain].encode_tags([s.tags for s in sentences], inputs.mask.shape[1]).to(device)
        label = None
        if domain in self.classifier_domains:
            label = torch.tensor(self.classifier_domains.index(domain), device=device)
        return TaskBatch(inputs, tag_ids, domain, len(support), label)

    def forward(
        self, batch: TaskBatch, lab_rows: slice | None, cls_rows: slice | None, cls_grad_scale: float = 1.0
    ) -> tuple[Tensor, Tensor]:
        """L^lab on ``lab_rows`` and L^cls on ``cls_rows`` from one encoder pass (eq. 1).

        Args:
            batch: the collated task.
            lab_rows: rows scored by the CRF decoder of ``batch.domain`` (None: skip).
            cls_rows: rows scored by the domain head (None, or no label: skip).
            cls_grad_scale: factor on the gradient L^cls sends into θ: λ for HGDA,
                −λ for MetaNER's gradient reversal.

        Returns:
            ``(L_lab, L_cls)``, each a mean over its sentences (0 when skipped).
        """
        hidden = self.encode(batch.inputs)
        mask = batch.inputs.mask
        zero = hidden.new_zeros(())
        lab = zero
        if lab_rows is not None:
            lab = self.decoders[batch.domain].nll(hidden[lab_rows], batch.tag_ids[lab_rows], mask[lab_rows])
        cls = zero
        if cls_rows is not None and batch.domain_label is not None:
            m = mask[cls_rows].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden[cls_rows] * m).sum(1) / m.sum(1).clamp_min(1.0)
            logits = self.domain_head(scale_gradient(pooled, cls_grad_scale))
            cls = F.cross_entropy(logits, batch.domain_label.expand(logits.shape[0]))
        return lab, cls

    def prepare(self, sentences: Sequence[Sentence], batch_size: int = 256) -> "PreparedSentences":
        """Collate ``sentences`` for :meth:`predict` once, in batches of similar length.

        The result can be decoded by any tagger whose encoder collates the same way (the
        same word vectors or tokenizer): the adaptation grid decodes one test split with
        every adapted model of a corpus.
        """
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        batches = [self.encoder.collate([sentences[i].tokens for i in order[start : start + batch_size]])
                   for start in range(0, len(order), batch_size)]
        return PreparedSentences(order, batches)

    @torch.no_grad()
    def predict(
        self, sentences: "Sequence[Sentence] | PreparedSentences", domain: str, batch_size: int = 256
    ) -> list[list[str]]:
        """Viterbi tag sequences for ``sentences`` (or a :meth:`prepare` d set) with the
        decoder of ``domain``, in the order given."""
        prepared = sentences if isinstance(sentences, PreparedSentences) else self.prepare(sentences, batch_size)
        was_training = self.training
        self.eval()
        decoder = self.decoders[domain]
        out: list[list[str]] = []
        for batch in prepared.batches:
            inputs = batch.to(self.device)
            out.extend(decoder.decode(self.encode(inputs), inputs.mask))
        self.train(was_training)
        result: list[list[str]] = [[] for _ in prepared.order]
        for pos, i in enumerate(prepared.order):
            result[i] = out[pos]
        return result

    def trainable_state(self) -> dict[str, Tensor]:
        """The state dict without frozen tensors (e.g. fixed word vectors)."""
        frozen = {f"encoder.{k}" for k in self.encoder.frozen_state_keys()}
        return {k: v for k, v in self.state_dict().items() if k not in frozen}

    def save(self, path: str | Path, **meta: Any) -> None:
        """Save the checkpoint (trainable state, domains, labels, encoder config and, for a
        BiLSTM, the fingerprint of its word vectors, which are not saved), atomically."""
        payload = {
            "state": {k: v.cpu() for k, v in self.trainable_state().items()},
            "decoder_domains": list(self.decoders.keys()),
            "classifier_domains": list(self.classifier_domains),
            "labels": list(self.labels),
            "tag_head": self.tag_head,
            "encoder_kind": getattr(self.encoder, "kind", type(self.encoder).__name__),
            "encoder_config": dataclasses.asdict(getattr(self.encoder, "config")),
            "meta": meta,
        }
        vectors = getattr(self.encoder, "vectors", None)
        if vectors is not None and hasattr(vectors, "fingerprint"):
            payload["vectors_fingerprint"] = vectors.fingerprint
        with atomic_write(path, "wb") as fh:
            torch.save(payload, fh)

    @staticmethod
    def read_checkpoint(path: str | Path) -> dict[str, Any]:
        """The raw checkpoint dictionary written by :meth:`save`."""
        return torch.load(path, map_location="cpu", weights_only=False)

    def load_trainable_state(self, state: dict[str, Tensor]) -> None:
        """Load a state saved by :meth:`trainable_state` (frozen tensors stay as built)."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        frozen = {f"encoder.{k}" for k in self.encoder.frozen_state_keys()}
        if unexpected or set(missing) - frozen:
            raise ValueError(f"checkpoint mismatch: missing {sorted(set(missing) - frozen)}, unexpected {unexpected}")
