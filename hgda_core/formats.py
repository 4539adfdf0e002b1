"""Output formats of ``hgda tag``: JSONL, CoNLL, BRAT standoff and PubTator.

Each renderer turns one :class:`~hgda_core.usertagger.TaggedDocument` into text; the
caller writes it to standard output or atomically to a file.

* ``jsonl`` — one JSON object per document: ``{"document", "sentences", "spans":
  [{"start", "end", "type", "text", "sentence"}]}``; ``text`` is exactly
  ``document[start:end]``.
* ``conll`` — ``token<TAB>tag`` per line, a blank line after each sentence: the input
  format of ``hgda adapt``/``hgda evaluate``, so corrected output can be trained on.
* ``brat`` — a BRAT ``.ann`` file: ``T<n><TAB><type> <start> <end><TAB><text>``.  A
  mention that crosses a line break is written as BRAT's discontinuous fragments
  (``<start> <end>;<start> <end>``, one per line), since an ``.ann`` line cannot hold one.
* ``pubtator`` — ``<PMID><TAB><start><TAB><end><TAB><mention><TAB><type>`` per mention,
  a blank line after each document; the document's name (file stem) is its PMID.
  White space inside a mention (a line break) is written as one space, offsets unchanged.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePath
from typing import Callable

from hgda_core.usertagger import TaggedDocument

_BREAK_RE = re.compile(r"\s*[\r\n]+\s*")


def to_jsonl(doc: TaggedDocument) -> str:
    """One JSON line for the document."""
    record = {"document": doc.name, "sentences": len(doc.sentences), "spans": [s.as_dict() for s in doc.spans]}
    return json.dumps(record, ensure_ascii=False) + "\n"


def to_conll(doc: TaggedDocument) -> str:
    """``token<TAB>tag`` lines, a blank line after each sentence."""
    parts = []
    for sentence, tags in zip(doc.sentences, doc.tags):
        parts.append("".join(f"{tok}\t{tag}\n" for tok, tag in zip(sentence.tokens, tags)) + "\n")
    return "".join(parts)


def brat_fragments(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The pieces of ``text[start:end]`` between line breaks (one piece if none)."""
    pieces, pos = [], start
    for m in _BREAK_RE.finditer(text, start, end):
        if m.start() > pos:
            pieces.append((pos, m.start()))
        pos = m.end()
    if end > pos:
        pieces.append((pos, end))
    return pieces


def to_brat(doc: TaggedDocument) -> str:
    """The ``.ann`` standoff annotations of the document's ``.txt``."""
    lines = []
    for n, span in enumerate(doc.spans, start=1):
        pieces = brat_fragments(doc.text, span.start, span.end)
        where = ";".join(f"{s} {e}" for s, e in pieces)
        lines.append(f"T{n}\t{span.type} {where}\t{' '.join(doc.text[s:e] for s, e in pieces)}\n")
    return "".join(lines)


def pmid(name: str) -> str:
    """The PubTator document id of an input: its file stem (``stdin`` for ``-``)."""
    return "stdin" if name == "-" else PurePath(name).stem


def to_pubtator(doc: TaggedDocument) -> str:
    """PubTator annotation lines of the document, then a blank line."""
    lines = [f"{pmid(doc.name)}\t{s.start}\t{s.end}\t{_BREAK_RE.sub(' ', s.text)}\t{s.type}\n" for s in doc.spans]
    return "".join(lines) + "\n"


FORMATS: dict[str, tuple[str, Callable[[TaggedDocument], str]]] = {
    "jsonl": (".jsonl", to_jsonl),
    "conll": (".conll", to_conll),
    "brat": (".ann", to_brat),
    "pubtator": (".pubtator", to_pubtator),
}
"""Format name → (file extension under ``--out``, renderer)."""
