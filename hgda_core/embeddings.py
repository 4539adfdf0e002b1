"""Word vectors for the BiLSTM sentence encoder (paper Appendix: 200-d BioWordVec).

The paper feeds 200-d BioWordVec token embeddings (Yijia et al., 2019) to the BiLSTM.
BioWordVec is a 13 GB download that this project's machines cannot reach, so the offline
default trains 200-d fastText vectors — the same model family as BioWordVec, which is
fastText with sub-word n-grams — on the unlabelled text of the corpora.  Where the
BioWordVec file is at hand, :func:`load_pretrained` reads it instead.

Either way the result is a :class:`WordVectors` lookup table: row 0 is ``<pad>``, row 1
is ``<unk>`` (both zero vectors, see :class:`WordVectors`), then the vocabulary.

Vocabulary vs. training text.  The table's vocabulary is every token string of every
split (train, devel *and* test) of the corpora in use, so that each test token has a row.
This is lookup-table coverage, not training on test: fastText is trained on the train
and devel text only (:func:`training_text`; no labels), and a test-only word's row is
built from the character n-grams learnt on that text, exactly as fastText would build it
on the fly at prediction time.  No test text reaches the training of the vectors.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Container, Iterable, Mapping, Sequence

import numpy as np

from hgda_core.data import Corpus
from hgda_core.io import atomic_write

log = logging.getLogger(__name__)

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
N_SPECIAL = 2

_DIGIT_RE = re.compile(r"\d")
_BINARY_SUFFIXES = {".bin"}
_TEXT_SUFFIXES = {".txt", ".vec"}


class EmbeddingFormatError(ValueError):
    """A word-vector file does not have the expected format (one-line message)."""


def normalise_digits(token: str) -> str:
    """Replace every digit by ``0`` (``"IL-12"`` → ``"IL-00"``)."""
    return _DIGIT_RE.sub("0", token)


def fallback_keys(token: str) -> list[str]:
    """The keys tried, in order, for a token: exact, lowercase, digits → ``0``.

    Digit normalisation is tried on the token and then on its lowercase form; duplicates
    are dropped, so ``"p53"`` gives ``["p53", "p00"]``.
    """
    keys: list[str] = []
    for key in (token, token.lower(), normalise_digits(token), normalise_digits(token.lower())):
        if key not in keys:
            keys.append(key)
    return keys


@dataclass(eq=False)
class WordVectors:
    """A word-vector lookup table for the encoder's embedding layer.

    Row 0 is ``<pad>`` and row 1 is ``<unk>``; both are zero vectors.  A zero ``<unk>``
    says "no lexical information": the encoder's character CNN/LSTM (paper Appendix) is
    then the only signal for the word, instead of a mean vector that would pretend the
    word is an average one.  With the fastText default every corpus token has a row, so
    ``<unk>`` is only hit by text outside the corpora.

    Args:
        words: row → word; ``words[0] == "<pad>"``, ``words[1] == "<unk>"``, then the
            vocabulary (by descending corpus frequency, then alphabetically).
        vectors: float32 array ``[len(words), dim]``.
    """

    words: list[str]
    vectors: np.ndarray
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.words = list(self.words)
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise ValueError(
                f"vectors of shape {self.vectors.shape} for {len(self.words)} words; "
                "expected [len(words), dim]"
            )
        if self.words[:N_SPECIAL] != [PAD, UNK]:
            raise ValueError(f"first words are {self.words[:N_SPECIAL]}; expected {[PAD, UNK]}")
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("duplicate words in the vocabulary")

    @classmethod
    def build(cls, words: Sequence[str], vectors: np.ndarray) -> WordVectors:
        """Prepend the zero ``<pad>`` and ``<unk>`` rows to ``words`` and their vectors."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(words):
            raise ValueError(f"vectors of shape {vectors.shape} for {len(words)} words")
        zeros = np.zeros((N_SPECIAL, vectors.shape[1]), dtype=np.float32)
        return cls([PAD, UNK, *words], np.concatenate([zeros, vectors]))

    @property
    def dim(self) -> int:
        """Vector size."""
        return int(self.vectors.shape[1])

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the words and the vectors' bytes: which table a checkpoint was
        trained with (:meth:`hgda_core.models.Tagger.save` records it)."""
        digest = hashlib.sha256()
        digest.update("\n".join(self.words).encode())
        digest.update(str(self.vectors.shape).encode())
        digest.update(np.ascontiguousarray(self.vectors, dtype=np.float32).tobytes())
        return digest.hexdigest()

    def __len__(self) -> int:
        return len(self.words)

    def lookup(self, token: str) -> int:
        """Row of ``token``: exact, then lowercase, then digits → ``0``, else ``<unk>`` (1)."""
        i = self.index.get(token)
        if i is not None and i >= N_SPECIAL:
            return i
        for key in fallback_keys(token)[1:]:
            i = self.index.get(key)
            if i is not None and i >= N_SPECIAL:
                return i
        return UNK_ID

    def ids(self, tokens: Iterable[str]) -> list[int]:
        """Rows of a token sequence (see :meth:`lookup`)."""
        return [self.lookup(t) for t in tokens]

    def save(self, path: str | Path) -> None:
        """Write one compressed ``.npz`` (``words``: unicode array, ``vectors``), atomically."""
        with atomic_write(path, "wb") as fh:
            np.savez_compressed(fh, words=np.array(self.words, dtype=np.str_), vectors=self.vectors)

    @classmethod
    def load(cls, path: str | Path) -> WordVectors:
        """Read a table written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                words, vectors = npz["words"].tolist(), npz["vectors"]
        except (OSError, ValueError, KeyError) as err:
            raise EmbeddingFormatError(
                f"{path}: not a word-vector table ({err}); expected an .npz with arrays "
                "'words' and 'vectors' written by WordVectors.save"
            ) from None
        return cls(words, vectors)


def corpus_vocabulary(sentences: Iterable[Sequence[str]]) -> list[str]:
    """Every token string, by descending frequency then alphabetically.

    ``<pad>`` and ``<unk>`` are left out (such a token maps to ``<unk>``).
    """
    counts = Counter(tok for sentence in sentences for tok in sentence)
    for special in (PAD, UNK):
        counts.pop(special, None)
    return sorted(counts, key=lambda w: (-counts[w], w))


def training_text(
    corpora: Iterable[Corpus], splits: Sequence[str] = ("train", "devel")
) -> list[list[str]]:
    """The unlabelled sentences the vectors are trained on: train + devel, no test.

    A sentence found more than once (BC5CDR-chem and BC5CDR-disease share their text) is
    kept once, at its first place, so that no corpus weighs double.
    """
    seen: set[tuple[str, ...]] = set()
    text: list[list[str]] = []
    for corpus in corpora:
        for split in splits:
            for sentence in corpus[split]:
                if sentence.tokens not in seen:
                    seen.add(sentence.tokens)
                    text.append(list(sentence.tokens))
    return text


# --- pretrained vectors (BioWordVec) -------------------------------------------------


def _is_binary(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in {".gz", ".bz2"}:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _BINARY_SUFFIXES:
        return True
    if suffixes and suffixes[-1] in _TEXT_SUFFIXES:
        return False
    raise EmbeddingFormatError(
        f"{path}: unknown word-vector file extension; expected .bin (word2vec binary) "
        "or .txt/.vec (word2vec text), optionally .gz"
    )


def load_pretrained(
    path: str | Path, words: Sequence[str], dim: int = 200, limit: int | None = None
) -> tuple[WordVectors, dict[str, int]]:
    """Read word2vec-format vectors (e.g. BioWordVec) restricted to a corpus vocabulary.

    Each word takes the vector of its first :func:`fallback_keys` key present in the file
    (exact, lowercase — BioWordVec is lowercased — then digits → ``0``); a word with none
    is left out of the table and so maps to ``<unk>``.  The whole file is read into memory
    first (gensim): the full BioWordVec ``.vec.bin`` needs about 13 GB; ``limit`` keeps
    only its first (most frequent) ``limit`` words.

    Args:
        path: ``.bin`` (binary) or ``.txt``/``.vec`` (text) word2vec file, optionally ``.gz``.
        words: the vocabulary, in table order (see :func:`corpus_vocabulary`).
        dim: the expected vector size.
        limit: read at most this many vectors from the file; ``None`` reads all.

    Returns:
        The table and match counts: ``vocabulary``, ``exact``, ``fallback`` (found via
        lowercase / digit normalisation), ``missing``, ``file_words`` (vectors read).

    Raises:
        EmbeddingFormatError: when the file is missing, not a word2vec file, or its
            vectors are not ``dim``-dimensional.
    """
    from gensim import utils as gensim_utils
    from gensim.models import KeyedVectors

    path = Path(path)
    if not path.is_file():
        raise EmbeddingFormatError(f"{path}: file not found; expected a word2vec vectors file")
    binary = _is_binary(path)
    kind = "binary" if binary else "text"
    expected = (
        f"expected a word2vec {kind} file: a header '<count> <dim>', then one vector per word"
    )
    with gensim_utils.open(str(path), "rb") as fh:
        header = fh.readline(1024).split()
    try:
        n_file, file_dim = (int(x) for x in header)
    except ValueError:
        raise EmbeddingFormatError(
            f"{path}: bad header {b' '.join(header)[:60]!r}; {expected}"
        ) from None
    if file_dim != dim:
        raise EmbeddingFormatError(
            f"{path}: vectors are {file_dim}-dimensional; expected dim={dim} (params embed.dim)"
        )
    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=binary, limit=limit)
    except (ValueError, UnicodeDecodeError, EOFError, IndexError) as err:
        raise EmbeddingFormatError(f"{path}: unreadable ({err}); {expected}") from None
    log.info("read %d of %d vectors from %s", len(kv), n_file, path)

    kept: list[str] = []
    rows: list[int] = []
    exact = 0
    for word in dict.fromkeys(words):
        for key in fallback_keys(word):
            row = kv.key_to_index.get(key)
            if row is not None:
                kept.append(word)
                rows.append(row)
                exact += key == word
                break
    n_words = len(dict.fromkeys(words))
    matches = {
        "vocabulary": n_words,
        "exact": exact,
        "fallback": len(kept) - exact,
        "missing": n_words - len(kept),
        "file_words": len(kv),
    }
    vectors = kv.vectors[rows] if rows else np.zeros((0, dim), dtype=np.float32)
    return WordVectors.build(kept, vectors), matches


# --- offline default: fastText trained on the corpora's text ----------------------------


def _epoch_logger(epochs: int) -> Any:
    from gensim.models.callbacks import CallbackAny2Vec

    class EpochLogger(CallbackAny2Vec):  # type: ignore[misc]
        """Log the end of each training epoch with the elapsed time."""

        def __init__(self) -> None:
            self.epoch = 0
            self.start = time.perf_counter()

        def on_epoch_end(self, model: Any) -> None:
            self.epoch += 1
            log.info("fastText epoch %d/%d done (%.1f s)", self.epoch, epochs,
                     time.perf_counter() - self.start)

    return EpochLogger()


def train_fasttext(
    sentences: Iterable[Sequence[str]],
    dim: int = 200,
    epochs: int = 5,
    window: int = 5,
    min_count: int = 1,
    seed: int = 13,
    workers: int = 1,
    sg: int = 1,
    bucket: int = 2_000_000,
) -> Any:
    """Train fastText vectors (``gensim.models.FastText``) on unlabelled sentences.

    Skip-gram (``sg=1``, BioWordVec's choice) is the default: on small corpora it gives
    better vectors for rare words than CBOW, which matters for entity names.  CBOW
    (``sg=0``) trains faster.  Character n-grams of 3-6 characters as in fastText.

    Determinism: with ``workers=1`` the same ``seed`` and sentences give bit-identical
    vectors.  With more workers gensim trains in threads whose job order varies, so the
    vectors differ from run to run (and so may downstream scores); faster, not repeatable.

    Args:
        sentences: token lists (train + devel text, see :func:`training_text`).
        dim: vector size (paper: 200).
        epochs: passes over the text.
        window: context window.
        min_count: words rarer than this get no own vector (only their n-grams).
        seed: random seed.
        workers: training threads; 1 for repeatable vectors.
        sg: 1 skip-gram, 0 CBOW.
        bucket: number of hashed n-gram buckets (memory: ``bucket * dim * 4`` bytes).

    Returns:
        The trained ``gensim.models.FastText`` model.
    """
    from gensim.models import FastText

    text = [list(s) for s in sentences]
    if not any(text):
        raise ValueError("no tokens to train fastText on")
    return FastText(
        sentences=text,
        vector_size=dim,
        window=window,
        min_count=min_count,
        epochs=epochs,
        sg=sg,
        seed=seed,
        workers=workers,
        bucket=bucket,
        min_n=3,
        max_n=6,
        callbacks=[_epoch_logger(epochs)],
    )


def from_fasttext(model: Any, words: Sequence[str]) -> WordVectors:
    """A table with a vector for every word, also words fastText never saw in training.

    An unseen word's vector is built by fastText from its character n-grams.
    """
    words = list(dict.fromkeys(w for w in words if w not in (PAD, UNK)))
    vectors = np.zeros((len(words), model.wv.vector_size), dtype=np.float32)
    for i, word in enumerate(words):
        vectors[i] = model.wv.get_vector(word)
    return WordVectors.build(words, vectors)


# --- coverage -------------------------------------------------------------------------


def coverage(
    wv: WordVectors,
    sentences_by_corpus: Mapping[str, Iterable[Sequence[str]]],
    trained_words: Container[str] | None = None,
) -> dict[str, dict[str, float | int]]:
    """Per corpus, the share of token types and occurrences that have a real vector.

    A token is covered when :meth:`WordVectors.lookup` gives a row other than ``<unk>``.
    With ``trained_words`` (fastText: ``model.wv.key_to_index``) also the share of types
    and occurrences that fastText saw in training (the token itself was in its vocabulary);
    the rest have n-gram-only vectors.

    Returns:
        ``{corpus: {"types", "tokens", "type_coverage", "token_coverage"[,
        "type_trained", "token_trained"]}}``.
    """
    report: dict[str, dict[str, float | int]] = {}
    for name, sentences in sentences_by_corpus.items():
        counts = Counter(tok for sentence in sentences for tok in sentence)
        n_types, n_tokens = len(counts), sum(counts.values())
        covered = [w for w in counts if wv.lookup(w) != UNK_ID]
        entry: dict[str, float | int] = {
            "types": n_types,
            "tokens": n_tokens,
            "type_coverage": len(covered) / n_types if n_types else 0.0,
            "token_coverage": sum(counts[w] for w in covered) / n_tokens if n_tokens else 0.0,
        }
        if trained_words is not None:
            trained = [w for w in counts if w in trained_words]
            entry["type_trained"] = len(trained) / n_types if n_types else 0.0
            entry["token_trained"] = sum(counts[w] for w in trained) / n_tokens if n_tokens else 0.0
        report[name] = entry
    return report
