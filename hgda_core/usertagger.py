"""A tagger adapted to a user's own corpus: K-shot fine-tuning, the model folder, tagging.

This is what ``hgda adapt``, ``hgda tag`` and ``hgda evaluate`` run (:mod:`hgda_core.cli`),
usable without the command line::

    from hgda_core.usertagger import AdaptedTagger, adapt_tagger, read_labelled

    train = read_labelled("my.tsv")                      # typed B-X/I-X tags
    tagger = adapt_tagger(train.sentences, base="release")
    tagger.save("my-tagger")
    spans = AdaptedTagger.load("my-tagger").tag("Aspirin relieved the migraine.")

The protocol is the benchmark's K-shot adaptation (:func:`hgda_core.adapt.fine_tune`,
paper §4.2) with the defaults of params.yaml's ``adapt`` section (:data:`PROTOCOL`):
a fresh CRF decoder over the user's label set, the encoder θ and that decoder trained
for 30 full-batch SGD steps on all K sentences, the learning rate scaled by eq. 3 from
K = the number of training sentences.  The base encoder is a meta-trained checkpoint
(``release``: stage ``release``, every domain; or any ``models/metatrain`` checkpoint),
or none (random initialisation, the benchmark's ``scratch``).

A model folder (:data:`FILES`) is self-contained: weights, the word-vector rows the
model looks up, the label set, and a model card.  It is written atomically (built in a
temporary folder beside the target and renamed into place).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

import hgda_core
from hgda_core.adapt import AdaptConfig, adaptation_lr, fine_tune
from hgda_core.data import CorpusFormatError, Sentence, _split_sentences, repair_iob2
from hgda_core.embeddings import N_SPECIAL, WordVectors, fallback_keys
from hgda_core.metrics import EntityScores, entity_scores, entity_scores_by_type
from hgda_core.models import BiLSTMConfig, Tagger, build_tagger
from hgda_core.text import MAX_TOKENS, TextSentence, split_text

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the model-folder layout; :meth:`AdaptedTagger.load` reads only this one."""
CONFIG, WEIGHTS, VECTORS, CARD = "hgda-model.json", "weights.pt", "vectors.npz", "README.md"
FILES: tuple[str, ...] = (CONFIG, WEIGHTS, VECTORS, CARD)
"""The files of a model folder."""
DOMAIN = "user"
"""Name of the user's decoder φ inside the model."""
PROTOCOL = AdaptConfig(default_lr=0.1)
"""The fine-tuning protocol: params.yaml ``adapt`` defaults (30 steps, eq. 3 from 0.1 at
K = 32, momentum 0.9, weight decay 1e-6, clip 5)."""
POOL_BATCHES = 8
"""Batches of sentences pooled (and sorted by length) before decoding in :meth:`AdaptedTagger.tag_documents`."""
VOCAB_LIMIT = 20_000
"""Word-vector rows kept besides the training words': the most frequent of the base table."""
RELEASE_DIR = Path("models") / "release"
VECTORS_PATH = Path("data") / "embeddings" / "vectors.npz"


class ModelFolderError(ValueError):
    """A model folder or base checkpoint is missing, incomplete or incompatible (one line)."""


def project_root() -> Path:
    """Where ``models/release`` and ``data/embeddings`` are looked for: ``$HGDA_ROOT``, else
    the repository this package lives in."""
    return Path(os.environ.get("HGDA_ROOT") or Path(hgda_core.__file__).resolve().parents[1])


# --- the user's labelled sentences ----------------------------------------------------------


@dataclass
class LabelledFile:
    """A user's ``token<TAB>tag`` file, read and checked.

    Attributes:
        sentences: the sentences, tags typed (``B-X``/``I-X``) and repaired to IOB2.
        repairs: ``I`` tags that opened an entity and were turned into ``B`` (the reader's rule).
        plain: whether the file's tags were plain ``B``/``I``/``O`` (typed on reading).
    """

    path: Path
    sentences: list[Sentence]
    repairs: int
    plain: bool

    @property
    def mentions(self) -> dict[str, int]:
        """Mentions per type."""
        counts: dict[str, int] = {}
        for sentence in self.sentences:
            for tag in sentence.tags:
                if tag[0] == "B":
                    counts[tag[2:]] = counts.get(tag[2:], 0) + 1
        return dict(sorted(counts.items()))

    @property
    def types(self) -> list[str]:
        return list(self.mentions)


def read_labelled(path: str | Path, entity_type: str | None = None, need_entity: bool = False) -> LabelledFile:
    """Read a ``token<TAB>tag`` file (the corpus reader's checks, :mod:`hgda_core.data`).

    Tags are typed IOB2 (``B-Chemical``, ``I-Chemical``, several types) or plain
    ``B``/``I``/``O``; plain tags get the type ``entity_type``.  An ``I`` that does not
    continue an entity of its type becomes ``B`` and is counted (:attr:`LabelledFile.repairs`).

    Raises:
        CorpusFormatError: the reader's defects; plain tags without ``entity_type``; plain
            and typed tags mixed; a binary file; with ``need_entity``, a file without any entity.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusFormatError(f"{path}: file not found; expected a token<TAB>tag file")
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if b"\x00" in head:
        nul = head.index(b"\x00")
        line = head[:nul].count(b"\n") + 1
        raise CorpusFormatError(f"{path}:{line}: binary file (NUL byte at offset {nul}); "
                                "expected a UTF-8 token<TAB>tag file")
    if entity_type is not None and (not entity_type or any(c.isspace() for c in entity_type)):
        raise CorpusFormatError(f"entity type {entity_type!r}: expected a name without spaces")
    sentences: list[Sentence] = []
    repairs, kinds = 0, {}
    for line_no, pairs in _split_sentences(path):
        tags = []
        for offset, (_, tag) in enumerate(pairs):
            if tag != "O":
                kind = "plain" if len(tag) == 1 else "typed"
                kinds.setdefault(kind, line_no + offset)
                if len(kinds) > 1:
                    raise CorpusFormatError(
                        f"{path}:{line_no + offset}: {kind} tag {tag!r} in a file whose line "
                        f"{kinds['typed' if kind == 'plain' else 'plain']} has a "
                        f"{'typed' if kind == 'plain' else 'plain'} one; expected one scheme: "
                        "B-<type>/I-<type>/O or B/I/O"
                    )
                if kind == "plain":
                    if entity_type is None:
                        raise CorpusFormatError(
                            f"{path}:{line_no + offset}: plain tag {tag!r} and no entity type; "
                            "expected B-<type>/I-<type> tags, or give the type (--type NAME)"
                        )
                    tag = f"{tag}-{entity_type}"
            tags.append(tag)
        fixed, n = repair_iob2(tags)
        repairs += n
        sentences.append(Sentence(tuple(tok for tok, _ in pairs), fixed))
    if need_entity and not any(s.has_entity for s in sentences):
        raise CorpusFormatError(
            f"{path}:1: no entity in {len(sentences)} sentence(s); expected at least one B tag to learn from"
        )
    return LabelledFile(path, sentences, repairs, "plain" in kinds)


def label_set(types: Iterable[str]) -> tuple[str, ...]:
    """The decoder's tags: ``O``, then ``B-X``, ``I-X`` per type in alphabetical order."""
    return ("O", *(f"{p}-{t}" for t in sorted(set(types)) for p in "BI"))


# --- spans ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """An entity mention found in a document.

    Attributes:
        start, end: character offsets into the document text (end exclusive);
            ``text == document[start:end]``.
        type: the entity type.
        text: the mention as it appears in the document.
        sentence: index of its sentence in the document.
        tokens: its token range ``(first, last + 1)`` within that sentence.
    """

    start: int
    end: int
    type: str
    text: str
    sentence: int
    tokens: tuple[int, int]

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "type": self.type, "text": self.text, "sentence": self.sentence}


def iob2_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities ``(type, first, last + 1)`` of one typed tag sequence, strict IOB2.

    Same reading as the scorer (:func:`hgda_core.metrics.entity_spans`, seqeval strict):
    ``B-X`` opens an entity, ``I-X`` continues one of type X, and an ``I`` that continues
    nothing opens nothing.
    """
    out: list[tuple[str, int, int]] = []
    kind, start = None, 0
    for i, tag in enumerate(tags):
        if kind is not None and tag == f"I-{kind}":
            continue
        if kind is not None:
            out.append((kind, start, i))
            kind = None
        if tag[0] == "B":
            kind, start = tag[2:], i
    if kind is not None:
        out.append((kind, start, len(tags)))
    return out


@dataclass
class TaggedDocument:
    """A document with its sentences, their tags and the entity spans."""

    name: str
    text: str
    sentences: list[TextSentence]
    tags: list[list[str]]
    spans: list[Span] = field(default_factory=list)


def document_spans(text: str, sentences: Sequence[TextSentence], tags: Sequence[Sequence[str]]) -> list[Span]:
    """Character spans of the entities of tagged sentences (offsets exact into ``text``)."""
    spans = []
    for index, (sentence, seq) in enumerate(zip(sentences, tags)):
        for kind, first, last in iob2_entities(seq):
            start, end = sentence.offsets[first][0], sentence.offsets[last - 1][1]
            spans.append(Span(start, end, kind, text[start:end], index, (first, last)))
    return spans


# --- word vectors kept in a model folder ------------------------------------------------------


def keep_vectors(vectors: WordVectors, sentences: Iterable[Sequence[str]], limit: int = VOCAB_LIMIT) -> WordVectors:
    """The rows a saved model keeps: ``<pad>``, ``<unk>``, the ``limit`` most frequent words
    of the table (its order; 0: every row) and every row a token of ``sentences`` — or one
    of its :func:`~hgda_core.embeddings.fallback_keys` — looks up.

    A word outside the kept rows embeds as ``<unk>`` (a zero vector: the character
    CNN/LSTM then carries it), as any word outside the base table always did.
    """
    if limit <= 0 or limit + N_SPECIAL >= len(vectors):
        return vectors
    rows = set(range(N_SPECIAL + limit))
    for tokens in sentences:
        for token in tokens:
            for key in fallback_keys(token):
                i = vectors.index.get(key)
                if i is not None:
                    rows.add(i)
    order = sorted(rows)
    return WordVectors([vectors.words[i] for i in order], vectors.vectors[order])


def load_vectors(path: str | Path) -> WordVectors:
    """The base word-vector table (``data/embeddings/vectors.npz`` of stage ``embed``)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFolderError(
            f"{path}: word vectors not found; build them with `dvc repro embed` or pass --vectors PATH"
        )
    return WordVectors.load(path)


# --- base models ------------------------------------------------------------------------------


def release_checkpoint(root: Path | None = None, k: int | None = None) -> Path:
    """The release base model ``models/release/K<k>.pt`` (stage ``release``): the one of
    K closest to ``k`` when several exist.

    Raises:
        ModelFolderError: none was built.
    """
    folder = (root or project_root()) / RELEASE_DIR
    found = sorted(folder.glob("K*.pt")) if folder.is_dir() else []
    found = [p for p in found if p.stem[1:].isdigit()]
    if not found:
        raise ModelFolderError(
            f"{folder}: no release base model; build it with `dvc repro release` in {folder.parents[1]}, "
            "or pass --base PATH|none"
        )
    return min(found, key=lambda p: abs(int(p.stem[1:]) - (k or 0)))


def load_base(path: str | Path, vectors: WordVectors) -> Tagger:
    """A meta-trained BiLSTM checkpoint (``models/metatrain/bilstm/<Domain>-<method>/K<k>.pt``
    or ``models/release/K<k>.pt``) on the given word vectors.

    Raises:
        ModelFolderError: not a file, not a checkpoint, a BERT checkpoint, or word
            vectors other than those the checkpoint was trained with.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFolderError(f"{path}: base checkpoint not found; expected a .pt file of stage metatrain or release")
    try:
        ckpt = Tagger.read_checkpoint(path)
        kind, config = ckpt.get("encoder_kind", "bilstm"), ckpt["encoder_config"]
    except Exception as err:  # torch/pickle raise many kinds
        raise ModelFolderError(f"{path}: not a tagger checkpoint ({type(err).__name__}); expected a .pt file "
                               "written by Tagger.save (stage metatrain or release)") from None
    if kind != "bilstm":
        raise ModelFolderError(f"{path}: a {kind} checkpoint; `hgda adapt` adapts BiLSTM checkpoints")
    trained_with = ckpt.get("vectors_fingerprint")
    if trained_with is not None and trained_with != vectors.fingerprint:
        raise ModelFolderError(f"{path}: trained with word vectors {trained_with[:12]}, given {vectors.fingerprint[:12]}; "
                               "pass the vectors it was trained with (--vectors)")
    model = build_tagger(vectors, BiLSTMConfig(**config), ckpt["decoder_domains"], ckpt["classifier_domains"],
                         ckpt["labels"])
    try:
        model.load_trainable_state(ckpt["state"])
    except (RuntimeError, ValueError) as err:
        raise ModelFolderError(f"{path}: checkpoint does not fit the word vectors ({str(err).splitlines()[0][:160]})") from None
    return model


def scratch_base(vectors: WordVectors, config: BiLSTMConfig | None = None, seed: int = 0) -> Tagger:
    """A tagger of the base architecture from random initialisation (``--base none``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_tagger(vectors, config or BiLSTMConfig(), [], [])


# --- the adapted tagger -----------------------------------------------------------------------


def _dataset_summary(sentences: Sequence[Sentence]) -> dict[str, Any]:
    mentions: dict[str, int] = {}
    for s in sentences:
        for tag in s.tags:
            if tag[0] == "B":
                mentions[tag[2:]] = mentions.get(tag[2:], 0) + 1
    return {"sentences": len(sentences), "tokens": sum(map(len, sentences)), "mentions": dict(sorted(mentions.items()))}


def _as_sentences(sentences: Sequence[Sequence[str]] | Sequence[Sentence]) -> list[Sentence]:
    return [s if isinstance(s, Sentence) else Sentence(tuple(s), ("O",) * len(s)) for s in sentences]


class AdaptedTagger:
    """A BiLSTM-CRF tagger with one decoder over a user's typed labels.

    Args:
        model: the tagger, with a decoder named :data:`DOMAIN`.
        info: what the model card tells: base, training data, protocol, dev scores.
    """

    def __init__(self, model: Tagger, info: dict[str, Any] | None = None) -> None:
        if DOMAIN not in model.decoders:
            raise ValueError(f"the model has no decoder {DOMAIN!r}")
        self.model = model.eval()
        self.info = dict(info or {})

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.model.decoders[DOMAIN].labels)

    @property
    def types(self) -> list[str]:
        """Entity types the model predicts."""
        return sorted({label[2:] for label in self.labels if label != "O"})

    # predicting

    def predict(self, sentences: Sequence[Sequence[str]] | Sequence[Sentence], batch_size: int = 256) -> list[list[str]]:
        """Tags of tokenised sentences (token lists or :class:`Sentence`)."""
        rows = _as_sentences(sentences)
        if not rows:
            return []
        return self.model.predict(rows, DOMAIN, batch_size)

    def tag(self, text: str, max_tokens: int = MAX_TOKENS) -> list[Span]:
        """Entity spans of a raw text (sentences and tokens by :func:`hgda_core.text.split_text`)."""
        sentences = split_text(text, max_tokens)
        return document_spans(text, sentences, self.predict([s.tokens for s in sentences]))

    def tag_documents(
        self, documents: Iterable[tuple[str, str] | tuple[str, str, Sequence[TextSentence] | None]],
        batch_size: int = 256, max_tokens: int = MAX_TOKENS,
    ) -> Iterator[TaggedDocument]:
        """Tag documents in order, ``batch_size`` sentences at a time across document
        boundaries (a long document spans several batches, many short ones share one).

        Sentences are pooled over documents until :data:`POOL_BATCHES` batches are full
        and sorted by length within the pool (:meth:`Tagger.predict`), so that batches
        hold sentences of similar length (little padding) whatever the document sizes.

        Args:
            documents: ``(name, text)``, or ``(name, text, sentences)`` with the
                sentences already split (pre-tokenised input; None: split the text).
            batch_size: sentences per decoding batch.
            max_tokens: see :func:`hgda_core.text.split_text`.
        """
        pending: list[TaggedDocument] = []
        queued = 0

        def flush() -> Iterator[TaggedDocument]:
            tags = self.predict([s.tokens for doc in pending for s in doc.sentences], batch_size)
            pos = 0
            for doc in pending:
                doc.tags = tags[pos : pos + len(doc.sentences)]
                pos += len(doc.sentences)
                doc.spans = document_spans(doc.text, doc.sentences, doc.tags)
                yield doc
            pending.clear()

        for item in documents:
            name, text = item[0], item[1]
            given = item[2] if len(item) > 2 else None  # type: ignore[misc]
            sentences = list(given) if given is not None else split_text(text, max_tokens)
            pending.append(TaggedDocument(name, text, sentences, []))
            queued += len(sentences)
            if queued >= batch_size * POOL_BATCHES:
                yield from flush()
                queued = 0
        if pending:
            yield from flush()

    # scoring

    def evaluate(self, sentences: Sequence[Sentence], batch_size: int = 256) -> dict[str, Any]:
        """Strict entity-level scores (seqeval IOB2) of the model on typed gold sentences.

        Returns:
            ``{"micro": {precision, recall, f1, tp, fp, fn}, "types": {type: {...,
            "known": bool}}, "unknown_types": [...], "sentences": n}``; a gold type the
            model does not know is scored like any other (all its mentions are misses).
        """
        pred = self.predict(sentences, batch_size)
        gold = [list(s.tags) for s in sentences]
        micro = entity_scores(gold, pred)
        known = set(self.types)
        per_type = {
            kind: {**_rounded(scores), "known": kind in known}
            for kind, scores in entity_scores_by_type(gold, pred).items()
        }
        gold_types = {t[2:] for s in gold for t in s if t != "O"}
        return {
            "sentences": len(sentences),
            "micro": _rounded(micro),
            "types": per_type,
            "unknown_types": sorted(gold_types - known),
        }

    # the model folder

    def save(self, folder: str | Path) -> Path:
        """Write the model folder atomically: built beside ``folder``, then renamed into
        place (an existing model folder there is replaced; anything else is refused).

        Raises:
            ModelFolderError: ``folder`` exists and is neither empty nor a model folder.
        """
        folder = Path(folder)
        if folder.exists() and not _replaceable(folder):
            raise ModelFolderError(f"{folder}: exists and is not an hgda model folder; expected a new or empty folder")
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
        try:
            self._write(tmp)
            if folder.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
                os.replace(folder, old / folder.name)
                os.replace(tmp, folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    def _write(self, folder: Path) -> None:
        encoder = self.model.encoder
        encoder.vectors.save(folder / VECTORS)
        self.model.save(folder / WEIGHTS)
        config = {
            "format": "hgda-model",
            "format_version": FORMAT_VERSION,
            "hgda_version": hgda_core.__version__,
            "encoder": "bilstm",
            "encoder_config": asdict(encoder.config),
            "labels": list(self.labels),
            "types": self.types,
            "vector_rows": len(encoder.vectors),
            **{k: v for k, v in self.info.items() if k != "card"},
        }
        (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (folder / CARD).write_text(model_card(self), encoding="utf-8")
        for path in folder.iterdir():
            path.chmod(0o644)
        folder.chmod(0o755)

    @classmethod
    def load(cls, folder: str | Path) -> "AdaptedTagger":
        """Read a model folder written by :meth:`save`.

        Raises:
            ModelFolderError: not a folder, not a model folder, an incompatible format
                version, a missing or damaged file.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise ModelFolderError(f"{folder}: model folder not found; expected a folder written by `hgda adapt`")
        config_path = folder / CONFIG
        if not config_path.is_file():
            raise ModelFolderError(f"{folder}: not an hgda model folder (no {CONFIG}); expected a folder written by `hgda adapt`")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            version = config["format_version"]
        except (ValueError, KeyError, TypeError):
            raise ModelFolderError(f"{config_path}: damaged model configuration; expected the JSON written by `hgda adapt`") from None
        if version != FORMAT_VERSION:
            raise ModelFolderError(
                f"{folder}: model format version {version}; this hgda {hgda_core.__version__} reads version "
                f"{FORMAT_VERSION} (re-run `hgda adapt` with this version)"
            )
        missing = [name for name in (WEIGHTS, VECTORS) if not (folder / name).is_file()]
        if missing:
            raise ModelFolderError(f"{folder}: incomplete model folder, missing {', '.join(missing)}; re-run `hgda adapt`")
        try:
            vectors = WordVectors.load(folder / VECTORS)
            ckpt = Tagger.read_checkpoint(folder / WEIGHTS)
            model = build_tagger(vectors, BiLSTMConfig(**config["encoder_config"]), [], ckpt["classifier_domains"])
            model.add_decoder(DOMAIN, config["labels"])
            model.load_trainable_state(ckpt["state"])
        except Exception as err:  # numpy, torch and pickle raise many kinds
            raise ModelFolderError(
                f"{folder}: damaged model folder ({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}); "
                "re-run `hgda adapt`"
            ) from None
        return cls(model, {k: v for k, v in config.items() if k in _INFO_KEYS})


_INFO_KEYS = ("base", "train", "dev", "dev_scores", "protocol", "seed", "created", "adapt_seconds")


def _replaceable(folder: Path) -> bool:
    return folder.is_dir() and (not any(folder.iterdir()) or (folder / CONFIG).is_file())


def _rounded(scores: EntityScores) -> dict[str, float | int]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.as_dict().items()}


def adapt_tagger(
    sentences: Sequence[Sentence],
    base: str | Path | Tagger | None = "release",
    vectors: WordVectors | str | Path | None = None,
    dev: Sequence[Sentence] | None = None,
    protocol: AdaptConfig = PROTOCOL,
    seed: int = 13,
    vocab_limit: int = VOCAB_LIMIT,
    scratch_config: BiLSTMConfig | None = None,
    root: Path | None = None,
) -> AdaptedTagger:
    """Fine-tune a base encoder and a fresh decoder over the typed labels of ``sentences``.

    Args:
        sentences: the K training sentences, typed IOB2 tags (:func:`read_labelled`).
        base: ``"release"`` (stage ``release``), a checkpoint path, a :class:`Tagger`, or
            ``None``/``"none"`` (random initialisation, ``scratch``).
        vectors: the base's word-vector table (default ``data/embeddings/vectors.npz``
            of :func:`project_root`); a :class:`Tagger` base brings its own.
        dev: labelled sentences scored after training (written in the model card).
        protocol: steps, eq. 3's default rate, momentum, weight decay, clip.
        seed: seeds the new decoder, the dropout masks and a scratch initialisation.
        vocab_limit: see :func:`keep_vectors`.
        scratch_config: the architecture of a scratch base (default the paper's).

    Raises:
        ValueError: no sentence, no entity, or a bad base (:class:`ModelFolderError`).
    """
    if not sentences:
        raise ValueError("no training sentence; expected at least one labelled sentence")
    summary = _dataset_summary(sentences)
    if not summary["mentions"]:
        raise ValueError(f"no entity in the {len(sentences)} training sentence(s); expected at least one B tag")
    if any(tag in ("B", "I") for s in sentences for tag in s.tags):
        raise ValueError("plain B/I tags; expected typed B-<type>/I-<type> tags (read_labelled gives them)")
    start = time.perf_counter()
    if isinstance(base, Tagger):
        model, base_name = base, "given Tagger"
    else:
        table = vectors if isinstance(vectors, WordVectors) else load_vectors(vectors or (root or project_root()) / VECTORS_PATH)
        if base is None or str(base) == "none":
            model, base_name = scratch_base(table, scratch_config, seed), "none (random initialisation)"
        else:
            path = release_checkpoint(root, len(sentences)) if str(base) == "release" else Path(base)
            model, base_name = load_base(path, table), str(path)
            if str(base) == "release":
                base_name = f"release ({path})"
    labels = label_set(summary["mentions"])
    lr = adaptation_lr(protocol, len(sentences))
    log.info("fine-tuning %s on %d sentences (%s), %d steps, lr %.4f", base_name, len(sentences),
             ", ".join(f"{n} {t}" for t, n in summary["mentions"].items()), protocol.steps, lr)
    adapted = fine_tune(model, DOMAIN, sentences, protocol.steps, lr, protocol.momentum, protocol.weight_decay,
                        protocol.grad_clip, seed, labels=labels)
    compact = _compact(adapted, keep_vectors(adapted.encoder.vectors, [s.tokens for s in sentences], vocab_limit))
    info: dict[str, Any] = {
        "base": base_name,
        "train": summary,
        "protocol": {"method": "K-shot fine-tuning (hgda_core.adapt.fine_tune, paper §4.2)", "K": len(sentences),
                     "steps": protocol.steps, "lr": round(lr, 6), "lr_rule": f"eq. 3: {protocol.default_lr} * sqrt(K / {protocol.reference_k})",
                     "momentum": protocol.momentum, "weight_decay": protocol.weight_decay, "grad_clip": protocol.grad_clip},
        "seed": seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tagger = AdaptedTagger(compact, info)
    if dev:
        tagger.info["dev"] = _dataset_summary(dev)
        tagger.info["dev_scores"] = tagger.evaluate(dev)
    tagger.info["adapt_seconds"] = round(time.perf_counter() - start, 2)
    return tagger


def _compact(adapted: Tagger, vectors: WordVectors) -> Tagger:
    """The adapted encoder and user decoder alone (no source decoders), on ``vectors``."""
    config = adapted.encoder.config
    if config.train_embeddings:
        raise ValueError("a base with trained word embeddings is not supported (model.train_embeddings: false)")
    model = build_tagger(vectors, config, [], [])
    model.add_decoder(DOMAIN, adapted.decoders[DOMAIN].labels)
    state = {k: v for k, v in adapted.trainable_state().items() if k.startswith(("encoder.", f"decoders.{DOMAIN}."))}
    state.update({k: v for k, v in model.state_dict().items() if k.startswith("domain_head.")})
    model.load_trainable_state(state)
    return model.eval()


def model_card(tagger: AdaptedTagger) -> str:
    """The model folder's ``README.md``: base, data, protocol, dev scores, version."""
    info = tagger.info
    train = info.get("train", {})
    lines = [
        "# hgda tagger", "",
        f"Adapted with `hgda adapt` (hgda_core {hgda_core.__version__}) on {info.get('created', '?')}.", "",
        f"- Entity types: {', '.join(tagger.types)}",
        f"- Base model: {info.get('base', '?')}",
        f"- Training sentences: {train.get('sentences', '?')} ({train.get('tokens', '?')} tokens)"
        + (f" from {train['file']}" if train.get("file") else ""),
        "- Mentions per type: " + ", ".join(f"{t} {n}" for t, n in train.get("mentions", {}).items()),
    ]
    protocol = info.get("protocol", {})
    if protocol:
        lines.append(
            f"- Protocol: {protocol['method']}: a fresh CRF decoder over {len(tagger.labels)} tags, encoder and "
            f"decoder trained {protocol['steps']} full-batch SGD steps, lr {protocol['lr']} ({protocol['lr_rule']}, "
            f"K = {protocol['K']}), momentum {protocol['momentum']}, weight decay {protocol['weight_decay']}, "
            f"gradient clip {protocol['grad_clip']}, linear decay; seed {info.get('seed')}"
        )
    lines.append(f"- Word vectors: {len(tagger.model.encoder.vectors)} rows kept (other words embed as <unk>)")
    scores = info.get("dev_scores")
    if scores:
        lines += ["", f"## Dev scores ({scores['sentences']} sentences, strict entity level)", "",
                  "| type | P | R | F1 | TP | FP | FN |", "|---|---|---|---|---|---|---|"]
        rows = [*scores["types"].items(), ("micro", scores["micro"])]
        lines += [f"| {t} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['tp']} | {s['fp']} | {s['fn']} |"
                  for t, s in rows]
    else:
        lines += ["", "No dev set was given (`hgda adapt --dev FILE` scores one)."]
    lines += ["", "Use: `hgda tag --model <this folder> FILE...`, `hgda evaluate --model <this folder> --test FILE`.", ""]
    return "\n".join(lines)
