"""Core data types and the CoNLL-style corpus reader.

A corpus file (BioBERT's pre-processed format) holds one ``token<TAB>tag`` pair per
line and a blank line between sentences.  Tags are IOB2 (paper footnote 2: "We consider
the BIO tagging schema"): plain ``B``/``I``/``O`` as in BioBERT's files, or typed
``B-X``/``I-X`` as users' own corpora may have them.

Validation is strict: every defect is a :class:`CorpusFormatError` whose one-line
message names the file, the line number and what was expected.  One defect is
*repaired* instead of rejected: an ``I`` tag that does not continue an entity (after
``O``, at a sentence start, or after a different type) is turned into ``B`` — the IOB2
reading — and counted in :attr:`CorpusSplit.repairs` so that the statistics show it.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from hgda_core.io import atomic_write

SPLITS: tuple[str, ...] = ("train", "devel", "test")
"""The three splits every corpus folder must hold, as ``<split>.tsv``."""

_TAG_RE = re.compile(r"^(?:O|[BI](?:-\S+)?)$")


class CorpusFormatError(ValueError):
    """A corpus file or folder does not have the expected format (one-line message)."""


@dataclass(frozen=True)
class Sentence:
    """One tokenised sentence with its IOB2 tags.

    Args:
        tokens: the word tokens x_1..x_L of the sentence.
        tags: the tags y_1..y_L, same length as ``tokens``.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.tags):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.tags)} tags")

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def n_mentions(self) -> int:
        """Number of entity mentions (spans opened by a ``B`` tag)."""
        return sum(1 for t in self.tags if t[0] == "B")

    @property
    def has_entity(self) -> bool:
        """True when the sentence holds at least one named entity (HGDA-NEs, §3.2)."""
        return any(t != "O" for t in self.tags)

    def mention_lengths(self) -> list[int]:
        """Token length of each mention, in order."""
        lengths: list[int] = []
        for t in self.tags:
            if t[0] == "B":
                lengths.append(1)
            elif t[0] == "I" and lengths:
                lengths[-1] += 1
        return lengths


@dataclass
class CorpusSplit:
    """The sentences of one split of one corpus, with the number of IOB2 repairs."""

    sentences: list[Sentence]
    repairs: int = 0

    def __len__(self) -> int:
        return len(self.sentences)

    def __iter__(self) -> Iterator[Sentence]:
        return iter(self.sentences)


@dataclass
class Corpus:
    """A named benchmark corpus with its domain (entity type) and its three splits.

    Args:
        name: folder name, e.g. ``NCBI-disease``.
        domain: the biomedical domain it belongs to (Disease, Drug, Gene, Species).
        splits: ``train``/``devel``/``test`` → :class:`CorpusSplit`.
    """

    name: str
    domain: str
    splits: dict[str, CorpusSplit] = field(default_factory=dict)

    def __getitem__(self, split: str) -> list[Sentence]:
        return self.splits[split].sentences


def _split_sentences(path: Path) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """Yield ``(first_line_number, [(token, tag), ...])`` per sentence, validating lines."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        line_no = path.read_bytes()[: err.start].count(b"\n") + 1
        raise CorpusFormatError(
            f"{path}:{line_no}: bytes are not valid UTF-8 (byte 0x{err.object[err.start]:02x}); "
            "expected a UTF-8 text file"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise CorpusFormatError(f"{path}:1: empty file; expected token<TAB>tag lines")
    current: list[tuple[str, str]] = []
    start = 0
    for line_no, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            if current:
                yield start, current
                current = []
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            what = "no tab" if len(cols) == 1 else f"{len(cols)} columns"
            raise CorpusFormatError(
                f"{path}:{line_no}: expected 2 tab-separated columns (token<TAB>tag), found {what}"
            )
        token, tag = cols[0], cols[1].strip()
        if not token.strip():
            raise CorpusFormatError(f"{path}:{line_no}: empty token; expected token<TAB>tag")
        if not _TAG_RE.match(tag):
            raise CorpusFormatError(
                f"{path}:{line_no}: unknown tag {tag!r}; expected O, B, I, B-<type> or I-<type>"
            )
        if not current:
            start = line_no
        current.append((token, tag))
    if current:
        yield start, current


def repair_iob2(tags: Sequence[str]) -> tuple[tuple[str, ...], int]:
    """Turn every ``I`` tag that does not continue an entity of its type into ``B``.

    Returns:
        The repaired tags and the number of tags changed.
    """
    out: list[str] = []
    repairs = 0
    prev = "O"
    for tag in tags:
        if tag[0] == "I" and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B" + tag[1:]
            repairs += 1
        out.append(tag)
        prev = tag
    return tuple(out), repairs


def read_split(path: str | Path) -> CorpusSplit:
    """Read and validate one ``<split>.tsv`` file.

    Raises:
        CorpusFormatError: on a missing or empty file, bad bytes, a line that is not
            ``token<TAB>tag``, or an unknown tag.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusFormatError(f"{path}: file not found; expected a token<TAB>tag file")
    sentences: list[Sentence] = []
    repairs = 0
    for _, pairs in _split_sentences(path):
        tags, n = repair_iob2([tag for _, tag in pairs])
        repairs += n
        sentences.append(Sentence(tuple(tok for tok, _ in pairs), tags))
    return CorpusSplit(sentences, repairs)


def read_corpus(folder: str | Path, domain: str, name: str | None = None) -> Corpus:
    """Read a corpus folder holding ``train.tsv``, ``devel.tsv`` and ``test.tsv``.

    Raises:
        CorpusFormatError: when a split is missing or any file is malformed.
    """
    folder = Path(folder)
    missing = [s for s in SPLITS if not (folder / f"{s}.tsv").is_file()]
    if missing:
        raise CorpusFormatError(
            f"{folder}: corpus folder lacks split(s) {', '.join(m + '.tsv' for m in missing)}; "
            f"expected {', '.join(s + '.tsv' for s in SPLITS)}"
        )
    corpus = Corpus(name or folder.name, domain)
    for split in SPLITS:
        corpus.splits[split] = read_split(folder / f"{split}.tsv")
    return corpus


def save_corpus(corpus: Corpus, path: str | Path) -> None:
    """Write the compact processed form (a pickle of plain tuples), atomically."""
    payload = {
        "name": corpus.name,
        "domain": corpus.domain,
        "splits": {
            split: {"repairs": cs.repairs, "sentences": [(s.tokens, s.tags) for s in cs]}
            for split, cs in corpus.splits.items()
        },
    }
    with atomic_write(path, "wb") as fh:
        pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)


def load_corpus(path: str | Path) -> Corpus:
    """Load a corpus written by :func:`save_corpus`."""
    with open(path, "rb") as fh:
        payload = pickle.load(fh)
    corpus = Corpus(payload["name"], payload["domain"])
    for split, body in payload["splits"].items():
        corpus.splits[split] = CorpusSplit(
            [Sentence(tokens, tags) for tokens, tags in body["sentences"]], body["repairs"]
        )
    return corpus


def load_corpora(folder: str | Path, names: Iterable[str]) -> dict[str, Corpus]:
    """Load the processed corpora ``<folder>/<name>.pkl`` for the given names."""
    return {name: load_corpus(Path(folder) / f"{name}.pkl") for name in names}
