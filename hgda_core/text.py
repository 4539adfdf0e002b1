"""Raw text → sentences → tokens, with exact character offsets into the original text.

Tokenisation follows the benchmark corpora (BioBERT's pre-processed files): every run of
letters and digits is one token (``BRCA1``, ``p53``, ``5mg``), and every other character
that is not white space is a token of its own (``IL-2`` → ``IL`` ``-`` ``2``;
``c.68_69delAG`` → ``c`` ``.`` ``68`` ``_`` ``69delAG``).  "Letters and digits" are
Unicode's (``α``, ``é``, ``²`` stay inside a word); the underscore, though a word
character to Python's regular expressions, is a symbol here, as in the corpora.
Invisible format characters (soft hyphen, zero-width space, byte-order mark) are not
tokens.  Every token of every corpus file matches this rule (``tests/test_text.py``).

Sentences come from syntok's segmenter (a maintained, offline, rule-based splitter that
knows abbreviations such as ``e.g.``, ``Fig.``, ``E. coli``), with a fast path for the
boundaries that need no judgement (:func:`sentence_spans`); a blank line always ends a
sentence, a single line break inside a sentence does not.  A sentence longer than
``max_tokens`` tokens (a table, a list with no full stop) is cut into pieces of at most
that many tokens, so that no input makes one batch row unboundedly long.

Offsets are indices into the Python string of the document (code points, end exclusive):
``text[start:end]`` is always the token or sentence itself.  Line ends are not
translated (``\\r\\n`` counts as two characters), as BRAT and PubTator expect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

TOKEN_RE = re.compile(r"[^\W_]+|[^\w\s\u00ad\u200b-\u200f\u2060-\u2064\ufeff]|_")
"""A run of letters/digits, or one other visible non-space character."""

MAX_TOKENS = 256
"""Default cap on the tokens of one sentence (longer ones are cut)."""

_BINARY_PROBE = 8192


class TextInputError(ValueError):
    """An input text file cannot be read as UTF-8 text (one-line message)."""


@dataclass(frozen=True)
class TextSentence:
    """One sentence of a document: its character span and its tokens with their spans.

    Args:
        start, end: the sentence's span in the document text (end exclusive).
        tokens: the token strings.
        offsets: ``(start, end)`` of each token in the document text.
    """

    start: int
    end: int
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.tokens)


def tokenize(text: str, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """Tokens of ``text[start:end]`` as ``(token, start, end)`` with offsets into ``text``."""
    end = len(text) if end is None else end
    return [(m.group(), m.start(), m.end()) for m in TOKEN_RE.finditer(text, start, end)]


def syntok_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` by syntok alone, white space trimmed.

    Each sentence runs from its first token to the start of the next sentence, less
    trailing white space, so the spans never overlap and cover every visible character.
    """
    from syntok import segmenter

    starts = [sentence[0].offset for paragraph in segmenter.analyze(text) for sentence in paragraph if sentence]
    spans = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


_CLEAR_END_RE = re.compile(r"(?<![^\W_])([^\W\d_]{3,})([.!?])(\s+)(?=[A-Z])")
"""A lowercase word of 3+ letters, a full stop, white space, a capital: a sentence end."""
_OPEN_QUESTION_RE = re.compile(r"[.!?][\"')\]]*\s|\n[^\S\n]*\n")
"""What only syntok can judge: a terminator followed by space (``E. coli``, ``Fig. 2``), a blank line."""
_BRACKET_RE = re.compile(r"[(\[{)\]}]")
_ABBREVIATIONS = frozenset(
    "approx resp etc incl vs al cf viz ca fig figs eq eqs ref refs nos vol spp var subsp ssp str sec hrs min max sp".split()
)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``, white space trimmed.

    syntok decides every boundary that needs judgement; the unambiguous ones — a
    lowercase word of three or more letters that is not an abbreviation, then ``.``,
    ``!`` or ``?``, white space and a capital letter, outside brackets — are cut first,
    and a piece between them with no other terminator or blank line is one sentence
    without asking syntok.  This gives syntok's sentences (``tests/test_text.py``) at
    about twice its speed, since syntok's own tokeniser is the cost.
    """
    cuts: list[tuple[int, int]] = []
    brackets = [(m.start(), 1 if m.group() in "([{" else -1) for m in _BRACKET_RE.finditer(text)]
    depth = j = 0
    for m in _CLEAR_END_RE.finditer(text):
        while j < len(brackets) and brackets[j][0] < m.start(2):
            depth = max(0, depth + brackets[j][1])
            j += 1
        word = m.group(1)
        if not depth and word.islower() and word not in _ABBREVIATIONS:
            cuts.append((m.end(2), m.end()))
    spans: list[tuple[int, int]] = []
    starts = [0] + [after for _, after in cuts]
    ends = [end for end, _ in cuts] + [len(text)]
    for piece_start, piece_end in zip(starts, ends):
        start, end = piece_start, piece_end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start == end:
            continue
        if _OPEN_QUESTION_RE.search(text, start, end - 1):
            spans.extend((piece_start + a, piece_start + b) for a, b in syntok_spans(text[piece_start:piece_end]))
        else:
            spans.append((start, end))
    return spans


def split_text(text: str, max_tokens: int = MAX_TOKENS) -> list[TextSentence]:
    """The sentences of a document with their tokens and offsets.

    Args:
        text: the document.
        max_tokens: a longer sentence is cut into consecutive pieces of at most this
            many tokens (each piece is then a sentence of its own).

    Returns:
        The sentences in text order; sentences without any token are left out.
    """
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    out: list[TextSentence] = []
    for start, end in sentence_spans(text):
        found = tokenize(text, start, end)
        for i in range(0, len(found), max_tokens):
            piece = found[i : i + max_tokens]
            out.append(TextSentence(
                piece[0][1], piece[-1][2], tuple(t for t, _, _ in piece), tuple((s, e) for _, s, e in piece),
            ))
    return out


def decode_text(data: bytes, name: str | Path) -> str:
    """UTF-8 bytes → text, refusing binary data and bad bytes with a one-line message.

    A NUL byte in the first 8 KiB marks a binary file (as ``grep`` and ``git`` judge).

    Raises:
        TextInputError: ``<name>:<line>: ...`` naming what was expected.
    """
    nul = data.find(b"\x00", 0, _BINARY_PROBE)
    if nul >= 0:
        line = data[:nul].count(b"\n") + 1
        raise TextInputError(f"{name}:{line}: binary file (NUL byte at offset {nul}); expected UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise TextInputError(
            f"{name}:{line}: bytes are not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start}); "
            "expected UTF-8 text"
        ) from None


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file exactly (no line-end translation), see :func:`decode_text`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TextInputError(f"{path}: file not found; expected a UTF-8 text file") from None
    except IsADirectoryError:
        raise TextInputError(f"{path}: is a folder; expected a UTF-8 text file") from None
    return decode_text(data, path)


def parse_tokenized(text: str, name: str | Path) -> list[list[str]]:
    """Sentences of a one-token-per-line file (CoNLL: further tab columns are ignored,
    a blank line ends a sentence).

    Raises:
        TextInputError: a token with white space inside (``<name>:<line>``).
    """
    sentences: list[list[str]] = []
    current: list[str] = []
    for line_no, raw in enumerate(text.split("\n"), start=1):
        token = raw.rstrip("\r").split("\t", 1)[0].strip()
        if not token:
            if current:
                sentences.append(current)
                current = []
            continue
        if any(c.isspace() for c in token):
            raise TextInputError(f"{name}:{line_no}: token {token[:40]!r} holds white space; expected one token per line")
        current.append(token)
    if current:
        sentences.append(current)
    return sentences


def tokens_document(sentences: list[list[str]]) -> tuple[str, list[TextSentence]]:
    """A text for pre-tokenised sentences (tokens joined by a space, one sentence per
    line) and its :class:`TextSentence` list; offsets refer to that text."""
    parts: list[str] = []
    out: list[TextSentence] = []
    pos = 0
    for tokens in sentences:
        offsets = []
        for i, token in enumerate(tokens):
            start = pos + (1 if i else 0)
            offsets.append((start, start + len(token)))
            pos = start + len(token)
        out.append(TextSentence(offsets[0][0], offsets[-1][1], tuple(tokens), tuple(offsets)))
        parts.append(" ".join(tokens))
        pos += 1  # the line break
    return "\n".join(parts), out


_GLUE_BEFORE = frozenset(",.;:)]}%-/")
_GLUE_AFTER = frozenset("([{-/")


def detokenize(tokens: list[str] | tuple[str, ...]) -> str:
    """Raw-looking text from corpus tokens: no space around ``-`` and ``/``, none inside
    brackets, none before ``, . ; : %``; always a space between two words, so that
    :func:`tokenize` gives the tokens back (benchmark text for ``hgda tag``)."""
    if not tokens:
        return ""
    out = [tokens[0]]
    for prev, token in zip(tokens, tokens[1:]):
        glue = token in _GLUE_BEFORE or prev in _GLUE_AFTER
        if prev[-1].isalnum() and token[0].isalnum():
            glue = False
        out.append(token if glue else " " + token)
    return "".join(out)
