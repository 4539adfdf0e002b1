"""K-shot adaptation to the held-out target domain and its scoring (paper §4.2, Table 3).

One *repetition* r of a target corpus at size K (Table 3's caption: "20 distinct
samples"):

1. draw K sentences from the corpus's train split (:func:`draw_sample`);
2. for each method, copy its meta-trained tagger (the checkpoint of the run that held
   this corpus's domain out), attach a fresh CRF decoder φ for the target domain and
   fine-tune the encoder θ and that decoder on the K sentences (:func:`fine_tune`) —
   the *sequence encoder adaptation* setting of §4.2 (Li et al., 2020b): the source
   decoders and the domain head ω are not used;
3. decode the whole test split and score entities (:func:`evaluate`).

``scratch`` is the same tagger from random initialisation, trained on the K sentences
alone (what K annotated sentences give without any source domain).  ``bert_finetune``
(the paper's BioBERT baseline) is the pre-trained BERT encoder with a fresh tag head and
no meta-training; the caller passes it in ``pretrained`` like a checkpoint.

Paired design: the draw of repetition r depends only on (seed, corpus, K, r), and so do
the fresh decoder's initialisation and the dropout masks of fine-tuning — every method
sees the same sentences under the same randomness, and the methods differ only in the
starting encoder.  Differences between methods can then be tested pairwise per draw.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from hgda_core.data import Corpus, Sentence
from hgda_core.metatrain import derive_seed
from hgda_core.metrics import entity_scores
from hgda_core.models import Tagger, TaggerFactory
from hgda_core.models.tagger import SHARED_DECODER, PreparedSentences
from hgda_core.optim import OptimConfig, linear_schedule, scaled_lr, sgd

SAMPLINGS: tuple[str, ...] = ("uniform", "with_entity")
DECODER_INITS: tuple[str, ...] = ("fresh", "mean", "best_source", "shared")
"""How the target decoder starts (:func:`start_decoder`)."""
EVAL_SPLITS: tuple[str, ...] = ("test", "devel")
SCRATCH = "scratch"
BERT_FINETUNE = "bert_finetune"
"""The paper's BioBERT baseline: the pre-trained BERT, a fresh tag head, no meta-training."""
COLUMNS: tuple[str, ...] = (
    "encoder", "model", "method", "corpus", "domain", "shots", "repetition",
    "precision", "recall", "f1", "tp", "fp", "fn", "sample_entities", "sample", "test_sentences",
    "steps", "lr", "sampling", "seconds",
)
"""Columns of a score row, in order (one row per encoder, method, corpus, K, repetition);
``steps``, ``lr`` (the new decoder's initial rate, eq. 3) and ``sampling`` record the
fine-tuning protocol, for the tables' captions."""


@dataclass
class AdaptConfig(OptimConfig):
    """Section ``adapt`` of params.yaml (see there for each key; the optimiser keys are
    :class:`hgda_core.optim.OptimConfig`'s)."""

    methods: list[str] = field(default_factory=lambda: ["hgda", "hgda_nes", "metaner", "transfer", SCRATCH])
    repeats: int = 20
    steps: int = 30
    sampling: str = "uniform"
    eval_batch_size: int = 256
    test_sentences: int = 0
    decoder_init: str = "fresh"
    encoder_rate: float = 1.0
    probe_steps: int = 0
    eval_split: str = "test"

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"adapt.sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.decoder_init not in DECODER_INITS:
            raise ValueError(f"adapt.decoder_init must be one of {', '.join(DECODER_INITS)}, got {self.decoder_init!r}")
        if self.eval_split not in EVAL_SPLITS:
            raise ValueError(f"adapt.eval_split must be one of {', '.join(EVAL_SPLITS)}, got {self.eval_split!r}")
        if self.encoder_rate < 0 or self.probe_steps < 0:
            raise ValueError(f"adapt.encoder_rate and adapt.probe_steps must be >= 0, got {self.encoder_rate}, {self.probe_steps}")
        if self.repeats <= 0 or self.steps < 0:
            raise ValueError(f"adapt.repeats must be > 0 and adapt.steps >= 0, got {self.repeats}, {self.steps}")


def draw_sample(
    corpus_name: str,
    k: int,
    repetition: int,
    n_train: int,
    seed: int,
    sampling: str = "uniform",
    has_entity: Sequence[bool] | None = None,
) -> list[int]:
    """The K train-sentence indices of draw ``repetition`` (sorted, without replacement).

    The draw depends only on ``(seed, corpus_name, k, repetition)`` — not on the method —
    so that every method is adapted on the same sentences (paired design).

    Args:
        corpus_name: the target corpus.
        k: number of sentences |T'|.
        repetition: r = 0, 1, ...
        n_train: size of the corpus's train split.
        seed: master seed.
        sampling: ``uniform`` — any K sentences, as a user's random annotation would
            give (most have no entity, Table 2); ``with_entity`` — only sentences with at
            least one entity (the HGDA-NEs reading of §3.2 applied to T').
        has_entity: per train sentence, whether it holds an entity; required by
            ``with_entity`` (see :func:`draw_for`).

    Raises:
        ValueError: an unknown sampling, or fewer eligible sentences than K.
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    if k <= 0:
        raise ValueError(f"K must be positive, got {k}")
    if sampling == "uniform":
        pool = np.arange(n_train)
        what = "train split"
    else:
        if has_entity is None or len(has_entity) != n_train:
            raise ValueError("sampling 'with_entity' needs has_entity, one flag per train sentence")
        pool = np.flatnonzero(np.asarray(has_entity, dtype=bool))
        what = "train sentences with an entity"
    if len(pool) < k:
        raise ValueError(f"corpus {corpus_name}: {what} has {len(pool)} sentences, fewer than K = {k}")
    rng = np.random.default_rng(derive_seed(seed, "adapt-draw", corpus_name, k, repetition))
    return sorted(int(i) for i in rng.choice(pool, size=k, replace=False))


def draw_for(corpus: Corpus, k: int, repetition: int, seed: int, sampling: str = "uniform") -> list[int]:
    """:func:`draw_sample` on the train split of ``corpus``."""
    train = corpus["train"]
    flags = [s.has_entity for s in train] if sampling == "with_entity" else None
    return draw_sample(corpus.name, k, repetition, len(train), seed, sampling, flags)


def _copy_sharing_frozen(model: Tagger) -> Tagger:
    """A deep copy of ``model`` that shares its frozen tensors and word-vector table.

    The frozen word embedding (vocabulary × 200 floats) is never updated, so each copy
    can share it instead of duplicating it; every trainable tensor is copied.
    """
    memo: dict[int, object] = {id(p): p for p in model.parameters() if not p.requires_grad}
    for shared in ("vectors", "_word_ids"):  # the table, and the memo of its look-ups
        value = getattr(model.encoder, shared, None)
        if value is not None:
            memo[id(value)] = value
    return copy.deepcopy(model, memo)


def source_decoder_names(model: Tagger, domain: str) -> list[str]:
    """The source domains' decoders of ``model`` (not ``domain``'s, not the shared start)."""
    return [name for name in model.decoders if name not in (domain, SHARED_DECODER)]


def start_decoder(model: Tagger, domain: str, sentences: Sequence[Sentence], how: str) -> str:
    """Set the state of ``model``'s (new) decoder for ``domain`` by ``how``; return what
    it started from.

    - ``fresh``: as :meth:`Tagger.add_decoder` initialised it (the paper's reading of §4.2);
    - ``mean``: the parameter-wise mean of the source decoders;
    - ``best_source``: the source decoder with the lowest L^lab on the K ``sentences``
      (the only labelled data of the new domain; dropout off, no gradient);
    - ``shared``: the decoder start that meta-training learned (``meta.inner_decoder:
      shared``).

    A model without what ``how`` needs (``scratch``, BERT fine-tuning, a checkpoint with no
    shared start, source decoders of another tag set) keeps the fresh decoder: the
    starts differ only where a method has something to start from.
    """
    target = model.decoders[domain]
    names = source_decoder_names(model, domain)
    fits = [n for n in names if model.decoders[n].labels == target.labels]
    if how == "mean" and fits:
        states = [model.decoders[n].state_dict() for n in fits]
        target.load_state_dict({key: torch.stack([st[key].float() for st in states]).mean(0).to(states[0][key].dtype)
                                for key in states[0]})
        return "mean"
    if how == "best_source" and fits:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            losses = {}
            for name in fits:
                batch = model.task_batch(sentences, [], name)
                losses[name] = float(model(batch, batch.support, None)[0])
        model.train(was_training)
        best = min(fits, key=lambda n: (losses[n], n))
        target.load_state_dict(model.decoders[best].state_dict())
        return best
    if how == "shared" and SHARED_DECODER in model.decoders and model.decoders[SHARED_DECODER].labels == target.labels:
        target.load_state_dict(model.decoders[SHARED_DECODER].state_dict())
        return SHARED_DECODER
    return "fresh"


def fine_tune(
    model: Tagger,
    domain: str,
    sentences: Sequence[Sentence],
    steps: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 1e-6,
    grad_clip: float | None = 5.0,
    seed: int = 0,
    theta_lr: float | None = None,
    labels: Sequence[str] | None = None,
    on_step: Callable[[int, Tagger], None] | None = None,
    decoder_init: str = "fresh",
    encoder_rate: float = 1.0,
    probe_steps: int = 0,
) -> Tagger:
    """Adapt a copy of ``model`` to ``domain`` on the K ``sentences`` (sequence encoder adaptation, §4.2).

    A new CRF decoder φ is attached for ``domain`` (replacing one of that name, if any)
    and started by ``decoder_init`` (:func:`start_decoder`; ``fresh`` is the paper's
    reading).  Then, optionally, ``probe_steps`` steps train the decoder alone (linear
    probing), and ``steps`` full-batch SGD steps train the encoder θ and the decoder
    together on the CRF loss L^lab of the K sentences, with the Appendix's momentum,
    weight decay, gradient clipping and a linear learning-rate schedule per phase, dropout
    on.  The source decoders and the domain head ω are not in the optimiser and get no
    gradient.

    Args:
        model: the meta-trained (or freshly built) tagger; never modified.
        domain: the target domain.
        sentences: the adaptation set T' (K sentences).
        steps: number of joint SGD steps.
        lr: the decoder's initial learning rate (eq. 3 gives it from K: :func:`adaptation_lr`).
        momentum, weight_decay, grad_clip: Appendix values 0.9, 1e-6, 5.
        seed: seeds the new decoder and the dropout masks; the global torch generator
            is left as it was.
        theta_lr: the encoder's own initial rate (BERT: 1e-5 scaled by eq. 3, Appendix);
            None: the encoder's rate is ``lr``.
        labels: the new decoder's tag set (``O`` first; e.g. typed ``B-Chemical``
            tags of a user's corpus); None: the model's own labels.
        on_step: called as ``on_step(i, model)`` after step i = 1..probe_steps + steps
            (e.g. to score the trajectory; it must leave the weights as it found them).
        decoder_init: ``fresh``, ``mean``, ``best_source`` or ``shared``.
        encoder_rate: the encoder's rate as a multiple of its own (``theta_lr`` or
            ``lr``); 0 freezes the encoder.
        probe_steps: decoder-only steps before the joint ones.

    Returns:
        The adapted copy, in eval mode.
    """
    if not sentences:
        raise ValueError("fine_tune needs at least one sentence")
    adapted = _copy_sharing_frozen(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        decoder = adapted.add_decoder(domain, labels)
        start_decoder(adapted, domain, sentences, decoder_init)
        encoder = [p for p in adapted.encoder.parameters() if p.requires_grad]
        head = list(decoder.parameters())
        batch = adapted.task_batch(sentences, [], domain)
        adapted.train()
        done = 0
        phases = [(probe_steps, 0.0), (steps, encoder_rate)]
        for n_steps, rate in phases:
            if n_steps == 0:
                continue
            trained = encoder if rate > 0 else []
            for p in encoder:
                p.requires_grad_(rate > 0)
            groups = [{"params": head}]
            if trained:
                groups.insert(0, {"params": trained, "lr": rate * (lr if theta_lr is None else theta_lr)})
            optimizer = sgd(groups, lr, momentum, weight_decay)
            scheduler = linear_schedule(optimizer, n_steps)
            params = trained + head
            for _ in range(n_steps):
                optimizer.zero_grad(set_to_none=True)
                loss, _ = adapted(batch, batch.support, None)
                loss.backward()
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                optimizer.step()
                scheduler.step()
                done += 1
                if on_step is not None:
                    on_step(done, adapted)
        for p in encoder:
            p.requires_grad_(True)
    return adapted.eval()


def adaptation_lr(config: AdaptConfig, k: int, default_lr: float | None = None) -> float:
    """Eq. 3: the fine-tuning learning rate for K sentences (from ``default_lr`` if given)."""
    return scaled_lr(config.default_lr if default_lr is None else default_lr, k, config.reference_k)


def scored_test_indices(corpus: Corpus, size: int, seed: int, split: str = "test") -> list[int]:
    """Indices of the ``split`` sentences scored: all when ``size`` is 0 or covers the
    split, else a seeded sample of ``size`` — the same for every method, K and draw (the
    ``bert_cpu`` profile's reduction; stated in the tables' captions)."""
    n = len(corpus[split])
    if size <= 0 or size >= n:
        return list(range(n))
    rng = np.random.default_rng(derive_seed(seed, f"{split}-subset", corpus.name, size))
    return sorted(int(i) for i in rng.choice(n, size=size, replace=False))


def scored_test(corpus: Corpus, config: AdaptConfig, seed: int) -> list[Sentence]:
    """The sentences every method is scored on (:func:`scored_test_indices`): of the test
    split, or of the devel split for a choice of protocol (``eval_split: devel``: the
    held-out domain of a selection run is a source domain of the benchmark, whose test
    split is never read for a choice)."""
    split = config.eval_split
    return [corpus[split][i] for i in scored_test_indices(corpus, config.test_sentences, seed, split)]


def evaluate(
    model: Tagger, domain: str, test_sentences: Sequence[Sentence], batch_size: int = 256,
    prepared: PreparedSentences | None = None,
) -> dict:
    """Entity-level P/R/F1 and TP/FP/FN of ``model``'s Viterbi tags on ``test_sentences``
    (``prepared``: the same sentences already collated by :meth:`Tagger.prepare`)."""
    pred = model.predict(test_sentences if prepared is None else prepared, domain, batch_size)
    return entity_scores([s.tags for s in test_sentences], pred).as_dict()


def scratch_builder(factory: TaggerFactory) -> Callable[[int], Tagger]:
    """``seed → tagger``: a tagger of ``factory``'s architecture from random
    initialisation (seeded), with no decoder yet."""

    def build(seed: int) -> Tagger:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return factory([], [])

    return build


def run_adaptation(
    corpus: Corpus,
    k: int,
    methods: Sequence[str],
    pretrained: Mapping[str, Tagger],
    config: AdaptConfig,
    seed: int,
    model_label: str,
    scratch: Callable[[int], Tagger] | None = None,
    encoder: str = "bilstm",
    on_row: Callable[[dict], None] | None = None,
    repetitions: Sequence[int] | None = None,
    theta_lr: float | None = None,
    prepared: PreparedSentences | None = None,
) -> list[dict]:
    """Adapt every method to ``corpus`` with K sentences, ``config.repeats`` times.

    Args:
        corpus: the target corpus (train: the draws; test: the scores).
        k: |T'|.
        methods: method names, in row order; ``scratch`` needs ``scratch``, the others a
            tagger in ``pretrained``.
        pretrained: method → meta-trained tagger (held-out domain = ``corpus.domain``);
            only copied, never modified.
        config: the ``adapt`` params.
        seed: master seed (draws, decoders and dropout derive from it, not the method).
        model_label: human name of the encoder, written in the ``model`` column.
        scratch: ``seed → fresh tagger`` (:func:`scratch_builder`).
        encoder: value of the ``encoder`` column.
        on_row: called with each row as soon as it is scored (progress, logging).
        repetitions: the draws r to run (default: all ``config.repeats``); a draw
            depends only on (seed, corpus, K, r), so any subset gives the same rows.
        theta_lr: the encoder's own default learning rate (BERT: 1e-5 at K = 32),
            scaled by eq. 3; None: θ uses ``config.default_lr`` like the decoder.
        prepared: :func:`scored_test` of ``corpus`` already collated by
            :meth:`Tagger.prepare` (a stage reuses it across calls); None: collated
            here, once for every method and draw of the call.

    Returns:
        One row per repetition × method (repetitions outer), keys :data:`COLUMNS`.
    """
    for method in methods:
        if method == SCRATCH and scratch is None:
            raise ValueError("method 'scratch' needs a scratch builder")
        if method != SCRATCH and method not in pretrained:
            raise ValueError(f"no meta-trained tagger for method {method!r} (target {corpus.name})")
    train = corpus["train"]
    test = scored_test(corpus, config, seed)
    lr = adaptation_lr(config, k)
    encoder_lr = None if theta_lr is None else adaptation_lr(config, k, theta_lr)
    rows: list[dict] = []
    for r in range(config.repeats) if repetitions is None else repetitions:
        sample = draw_for(corpus, k, r, seed, config.sampling)
        sentences = [train[i] for i in sample]
        tune_seed = derive_seed(seed, "adapt-tune", corpus.name, k, r)
        for method in methods:
            start = time.perf_counter()
            if method == SCRATCH:
                assert scratch is not None
                base = scratch(derive_seed(seed, "adapt-scratch", corpus.name, k, r))
            else:
                base = pretrained[method]
            adapted = fine_tune(
                base, corpus.domain, sentences, config.steps, lr, config.momentum,
                config.weight_decay, config.grad_clip, tune_seed, encoder_lr,
                decoder_init=config.decoder_init, encoder_rate=config.encoder_rate, probe_steps=config.probe_steps,
            )
            if prepared is None:  # collation depends on the vocabulary, not the weights
                prepared = adapted.prepare(test, config.eval_batch_size)
            scores = evaluate(adapted, corpus.domain, test, config.eval_batch_size, prepared)
            row = {
                "encoder": encoder,
                "model": model_label,
                "method": method,
                "corpus": corpus.name,
                "domain": corpus.domain,
                "shots": k,
                "repetition": r,
                **{key: round(v, 6) if isinstance(v, float) else v for key, v in scores.items()},
                "sample_entities": sum(s.n_mentions for s in sentences),
                "sample": " ".join(map(str, sample)),
                "test_sentences": len(test),
                "steps": config.steps,
                "lr": round(lr, 6),
                "sampling": config.sampling,
                "seconds": round(time.perf_counter() - start, 3),
            }
            rows.append({c: row[c] for c in COLUMNS})
            if on_row is not None:
                on_row(rows[-1])
    return rows


def summarise(rows: Sequence[dict]) -> dict:
    """Mean and sample std of F1, P and R per encoder, method, corpus and K.

    Keys: ``out[encoder][method][corpus]["K<k>"]``.
    """
    groups: dict[tuple[str, str, str, int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["encoder"], row["method"], row["corpus"], int(row["shots"])), []).append(row)
    out: dict = {}
    for (encoder, method, corpus, k), group in groups.items():
        entry: dict = {"n": len(group)}
        for metric in ("f1", "precision", "recall"):
            values = np.array([float(g[metric]) for g in group])
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            entry[metric] = {"mean": round(float(values.mean()), 4), "std": round(std, 4)}
        out.setdefault(encoder, {}).setdefault(method, {}).setdefault(corpus, {})[f"K{k}"] = entry
    return out
