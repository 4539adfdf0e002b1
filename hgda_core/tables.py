"""Markdown and LaTeX (booktabs) tables from pandas DataFrames, and the paper's Table 2.

The renderers are general: every table of the reports (corpus statistics here, F1 tables
later) goes through :func:`to_markdown` and :func:`to_latex`, with an optional boolean
``bold`` mask (e.g. from :func:`max_mask`) marking cells to emphasise.  Cells are
formatted by :func:`format_value`: integers with thousands separators, floats with a
fixed number of decimals, missing values as a dash.  The index is not rendered; put
everything to show in columns.  Optional: a first header level grouping columns
(``header_groups``), text appended verbatim to cells (``suffix``: significance marks,
``± std``) and, in LaTeX, rules between row groups and a custom column spec.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hgda_core.stats import corpus_totals

PAPER_TABLE2_PATH = Path(__file__).resolve().parent / "resources" / "paper_table2.csv"
"""The paper's Table 2, transcribed (corpus, entity type, unique tokens, % with NEs)."""

TABLE2_CAPTION = "Table 2: Statistics of the benchmark corpora, ours beside the paper's"
TABLE2_LABEL = "tab:corpora"
TABLE2_DTYPES: dict[str, str] = {
    "Corpus": "object",
    "Entity type": "object",
    "Sentences": "Int64",
    "Mentions": "Int64",
    "No. unique tokens (ours)": "Int64",
    "No. unique tokens (paper)": "Int64",
    "% sentences with NEs (ours)": "Float64",
    "% sentences with NEs (paper)": "Int64",
}
"""Columns of :func:`table2`, in order, with their dtypes."""

Decimals = int | Mapping[str, int]

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))


# --------------------------------------------------------------------------- cells


def format_value(value: Any, decimals: int = 1, missing: str = "—") -> str:
    """Text of one cell: ``7,287``, ``54.2`` (``decimals`` places), ``missing`` for NA."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return missing
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return f"{float(value):,.{decimals}f}"
    return str(value)


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (``\\ & % $ # _ { } ~ ^``) in plain text."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], text)


def markdown_escape(text: str) -> str:
    """Escape the characters that would break a Markdown table cell."""
    return text.replace("|", r"\|").replace("\n", " ")


def max_mask(df: pd.DataFrame, columns: Sequence[str] | None = None, axis: int = 0) -> pd.DataFrame:
    """Boolean mask of the maxima, for ``bold``.

    Args:
        df: the table.
        columns: the columns to compare (default: the numeric ones); others are False.
        axis: 0 for the maximum of each column, 1 for the maximum across ``columns`` in
            each row.  Ties are all marked.
    """
    cols = list(columns) if columns is not None else list(df.select_dtypes("number").columns)
    mask = pd.DataFrame(False, index=df.index, columns=df.columns)
    values = df[cols].astype("Float64")
    best = values.max(axis=axis)
    hits = values.eq(best, axis=1 - axis).fillna(False)
    mask[cols] = hits.astype(bool)
    return mask


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _cells(
    df: pd.DataFrame,
    bold: pd.DataFrame | None,
    decimals: Decimals,
    escape: Callable[[str], str],
    emphasise: Callable[[str], str],
    missing: str,
    suffix: pd.DataFrame | None = None,
) -> list[list[str]]:
    """Every body cell as rendered text, row by row (``suffix`` text appended verbatim)."""
    rows: list[list[str]] = []
    for i in range(len(df)):
        row = []
        for j, column in enumerate(df.columns):
            places = decimals if isinstance(decimals, int) else decimals.get(column, 1)
            text = escape(format_value(df.iat[i, j], places, missing))
            text = emphasise(text) if bold is not None and bool(bold.iat[i, j]) else text
            extra = suffix.iat[i, j] if suffix is not None else None
            row.append(text + extra if isinstance(extra, str) else text)
        rows.append(row)
    return rows


def _check_groups(df: pd.DataFrame, header_groups: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    groups = [(str(label), int(span)) for label, span in header_groups]
    if sum(span for _, span in groups) != len(df.columns) or any(span < 1 for _, span in groups):
        raise ValueError(
            f"header_groups spans {[s for _, s in groups]} do not cover the {len(df.columns)} columns"
        )
    return groups


# --------------------------------------------------------------------------- renderers


def to_markdown(
    df: pd.DataFrame,
    bold: pd.DataFrame | None = None,
    caption: str | None = None,
    notes: Sequence[str] = (),
    decimals: Decimals = 1,
    header_groups: Sequence[tuple[str, int]] | None = None,
    suffix: pd.DataFrame | None = None,
) -> str:
    """A GitHub-flavoured Markdown table; numeric columns are right-aligned.

    Args:
        df: the table (index not rendered).
        bold: cells to render in bold, same shape as ``df``.
        caption: a paragraph above the table.
        notes: paragraphs below the table.
        decimals: decimal places of float cells, for all columns or per column.
        header_groups: ``(label, span)`` pairs covering the columns in order, a first
            header level; Markdown has no column spans, so a labelled group's columns
            are headed ``label<br>column``.
        suffix: Markdown text appended verbatim to cells (after the bold), same shape
            as ``df``; non-string entries add nothing.
    """
    body = _cells(df, bold, decimals, markdown_escape, lambda s: f"**{s}**", "—", suffix)
    header = [markdown_escape(str(c)) for c in df.columns]
    if header_groups is not None:
        labels = [label for label, span in _check_groups(df, header_groups) for _ in range(span)]
        header = [f"{markdown_escape(g)}<br>{h}" if g else h for g, h in zip(labels, header)]
    rule = ["---:" if _is_numeric(df[c]) else ":---" for c in df.columns]
    lines = [f"| {' | '.join(cells)} |" for cells in (header, rule, *body)]
    parts = ([caption] if caption else []) + ["\n".join(lines)] + list(notes)
    return "\n\n".join(parts) + "\n"


def to_latex(
    df: pd.DataFrame,
    bold: pd.DataFrame | None = None,
    caption: str | None = None,
    label: str | None = None,
    notes: Sequence[str] = (),
    decimals: Decimals = 1,
    header_groups: Sequence[tuple[str, int]] | None = None,
    suffix: pd.DataFrame | None = None,
    rules_before: Sequence[int] = (),
    column_spec: str | None = None,
) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``).

    Args:
        df: the table (index not rendered).
        bold: cells to render with ``\\textbf``, same shape as ``df``.
        caption: the ``\\caption`` text (escaped).
        label: the ``\\label`` key (used verbatim).
        notes: footnote paragraphs below the tabular (escaped).
        decimals: decimal places of float cells, for all columns or per column.
        header_groups: ``(label, span)`` pairs covering the columns in order: a first
            header row of ``\\multicolumn`` labels with a ``\\cmidrule`` under each
            labelled group (an empty label leaves its columns blank).
        suffix: LaTeX appended verbatim to cells (after the bold), same shape as
            ``df``; non-string entries add nothing.
        rules_before: body row positions to put a ``\\midrule`` before (e.g. groups).
        column_spec: the tabular column spec, e.g. ``lrp{6cm}`` for a wrapped text column
            (default: ``r`` for numeric columns, ``l`` for the others).
    """
    body = _cells(df, bold, decimals, latex_escape, lambda s: rf"\textbf{{{s}}}", "--", suffix)
    spec = column_spec or "".join("r" if _is_numeric(df[c]) else "l" for c in df.columns)
    lines = [r"\begin{table}[t]", r"\centering"]
    lines += [rf"\caption{{{latex_escape(caption)}}}"] if caption else []
    lines += [rf"\label{{{label}}}"] if label else []
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    if header_groups is not None:
        cells, rules, start = [], [], 1
        for group, span in _check_groups(df, header_groups):
            if group:
                cells.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(group)}}}")
                rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
            else:
                cells += [""] * span
            start += span
        lines.append(" & ".join(cells) + r" \\")
        lines += [" ".join(rules)] if rules else []
    lines.append(" & ".join(latex_escape(str(c)) for c in df.columns) + r" \\")
    lines.append(r"\midrule")
    breaks = set(rules_before) - {0}
    for i, row in enumerate(body):
        lines += [r"\midrule"] if i in breaks else []
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\smallskip{{\footnotesize {latex_escape(note)}}}" for note in notes]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Table 2


def load_paper_table2(path: str | Path = PAPER_TABLE2_PATH) -> pd.DataFrame:
    """The paper's Table 2: ``corpus, entity_type, unique_tokens, pct_sentences_with_nes, note``."""
    return pd.read_csv(
        path,
        keep_default_na=False,
        dtype={"corpus": str, "entity_type": str, "note": str},
    ).astype({"unique_tokens": "Int64", "pct_sentences_with_nes": "Int64"})


def table2(stats: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Table 2 with our figures beside the paper's, one row per corpus we ran.

    Args:
        stats: from :func:`hgda_core.stats.compute_stats`; its corpus order is kept.
        paper: from :func:`load_paper_table2`; corpora it lacks get NA paper cells.

    Returns:
        A frame with the columns of :data:`TABLE2_DTYPES`.
    """
    ref = paper.set_index("corpus")
    rows = []
    for name, ours in corpus_totals(stats).iterrows():
        theirs = ref.loc[name] if name in ref.index else None
        rows.append(
            {
                "Corpus": name,
                "Entity type": ours["domain"],
                "Sentences": ours["sentences"],
                "Mentions": ours["mentions"],
                "No. unique tokens (ours)": ours["unique_tokens"],
                "No. unique tokens (paper)": pd.NA if theirs is None else theirs["unique_tokens"],
                "% sentences with NEs (ours)": ours["pct_with_entity"],
                "% sentences with NEs (paper)": (
                    pd.NA if theirs is None else theirs["pct_sentences_with_nes"]
                ),
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE2_DTYPES)).astype(TABLE2_DTYPES)


def table2_notes(stats: pd.DataFrame, paper: pd.DataFrame) -> list[str]:
    """Footnotes: what the columns count, the paper's notes, and paper corpora not run."""
    ran = set(corpus_totals(stats).index)
    notes = [
        "Ours: sentences, entity mentions, distinct case-sensitive token strings and the "
        "percentage of sentences with at least one entity, over train, devel and test "
        "pooled; paper: the paper's Table 2."
    ]
    notes += [f"{r.corpus}: {r.note}." for r in paper.itertuples() if r.corpus in ran and r.note]
    not_run = [
        f"{r.corpus} (paper: {r.unique_tokens:,} unique tokens, "
        f"{r.pct_sentences_with_nes} % sentences with NEs)"
        for r in paper.itertuples()
        if r.corpus not in ran
    ]
    if not_run:
        notes.append("Not run: " + "; ".join(not_run) + ".")
    return notes


def render_table2(stats: pd.DataFrame, paper: pd.DataFrame) -> tuple[str, str]:
    """Table 2 as (Markdown, LaTeX) text, with caption and footnotes."""
    df, notes = table2(stats, paper), table2_notes(stats, paper)
    markdown = to_markdown(df, caption=TABLE2_CAPTION, notes=notes)
    latex = to_latex(df, caption=TABLE2_CAPTION, label=TABLE2_LABEL, notes=notes)
    return markdown, latex
