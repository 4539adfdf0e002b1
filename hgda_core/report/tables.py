"""Tables 3, 4 and 5 of the paper (mean F1, precision, recall) from ``reports/scores.csv``.

The three tables share the paper's layout: rows grouped by K (the adaptation-set size
|T'|), within a K the baselines, then HGDA and HGDA-NEs, then their BERT-encoder
variants (starred, "HGDA*"); columns the corpora grouped by domain, then Overall (the
mean over the corpora shown).  A cell is the mean over the repetitions (distinct
adaptation sets of size K); the best of each K and column is bold.  Rendering goes
through :func:`hgda_core.tables.to_markdown` and :func:`hgda_core.tables.to_latex`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hgda_core.significance import METHODS as OURS
from hgda_core.tables import max_mask, to_latex, to_markdown

SCORE_COLUMNS: tuple[str, ...] = (
    "encoder", "model", "method", "corpus", "domain", "shots", "repetition",
    "precision", "recall", "f1", "tp", "fp", "fn", "sample_entities", "sample", "test_sentences",
    "steps", "lr", "sampling", "seconds",
)  # fmt: skip
"""Columns of ``reports/scores.csv``, in order (:data:`hgda_core.adapt.COLUMNS`)."""

METHOD_ORDER: tuple[str, ...] = ("metaner", "transfer", "scratch", "bert_finetune", *OURS)
METHOD_LABELS = {
    "metaner": "MetaNER", "transfer": "Transfer", "scratch": "Scratch",
    "bert_finetune": "BERT fine-tuning", "hgda": "HGDA", "hgda_nes": "HGDA-NEs",
    "hgda_uniform": "HGDA, uniform weights", "hgda_grl": "HGDA, reversed head",
}  # fmt: skip
ENCODER_LABELS = {"bilstm": "BiLSTM", "bert": "BERT"}
METRICS = {"f1": ("Table 3", "F1"), "precision": ("Table 4", "precision"), "recall": ("Table 5", "recall")}
"""metric → (the paper's table, its name in captions)."""

MARKS = {"metaner": ("†", r"$^{\dagger}$", "dagger"), "bert_finetune": ("‡", r"$^{\ddagger}$", "double dagger")}
"""Baseline → (Markdown mark, LaTeX mark, name in LaTeX captions) of cells significantly better than it."""

DECIMALS = 4


def tex_words(text: str) -> str:
    """Caption text safe in any LaTeX font encoding: ``<``, ``>`` and ``−`` in words."""
    return text.replace(" < ", " below ").replace(" > ", " above ").replace("−", "-")


def read_scores(path: str | Path) -> pd.DataFrame:
    """Read ``reports/scores.csv``; an empty file gives an empty frame.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: when a needed column is missing.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    text_columns = ("encoder", "model", "method", "corpus", "domain", "sample")
    scores = pd.read_csv(path, dtype={c: str for c in text_columns})
    missing = [c for c in ("encoder", "method", "corpus", "shots", "repetition", *METRICS) if c not in scores]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(SCORE_COLUMNS)}")
    return scores


def method_label(method: str, encoder: str) -> str:
    """Row label: ``HGDA``, or ``HGDA*`` for the BERT encoder (the paper's star)."""
    return METHOD_LABELS.get(method, method) + ("*" if encoder == "bert" else "")


def row_key(method: str, encoder: str) -> tuple:
    """Sort key of the paper's row order: baselines, then our methods, then ours on BERT."""
    rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return (method in OURS and encoder == "bert", rank, encoder != "bilstm", encoder, method)


def model_labels(scores: pd.DataFrame) -> dict[str, str]:
    """Encoder → its model label(s) in ``scores.model``, e.g. ``BiLSTM-CRF (fastText 200-d)``."""
    if "model" not in scores:
        return {}
    return {enc: ", ".join(dict.fromkeys(g["model"].dropna().astype(str))) for enc, g in scores.groupby("encoder")}


@dataclass
class ResultsTable:
    """One of Tables 3–5: the means, their standard deviations and notes on what is missing."""

    metric: str
    frame: pd.DataFrame  # columns K, Method, <corpora...>, Overall
    std: pd.DataFrame  # std over repetitions, same columns (NaN in K and Method)
    keys: list[tuple[int, str, str]]  # (shots, method, encoder) of each row
    corpora: list[str]
    domains: dict[str, str]
    repetitions: tuple[int, int] = (0, 0)  # fewest and most repetitions in a cell
    notes: list[str] = field(default_factory=list)
    protocols: dict[str, str] = field(default_factory=dict)  # encoder → how its rows were run, if not as the others

    @property
    def value_columns(self) -> list[str]:
        return [*self.corpora, "Overall"]

    def header_groups(self) -> list[tuple[str, int]]:
        """The first header level: K and Method, each run of same-domain corpora, Overall."""
        groups: list[tuple[str, int]] = [("", 2)]
        for corpus in self.corpora:
            domain = self.domains.get(corpus, "")
            if len(groups) > 1 and groups[-1][0] == domain:
                groups[-1] = (domain, groups[-1][1] + 1)
            else:
                groups.append((domain, 1))
        return groups + [("", 1)]


def protocol_notes(scores: pd.DataFrame) -> dict[str, str]:
    """Encoder → how its rows differ from the full protocol, e.g. the ``bert_cpu``
    profile's fewer repetitions and seeded test subset (for the captions).

    An encoder's rows are on a test subset when they score fewer test sentences of a
    corpus than another encoder's rows (column ``test_sentences``, when present).
    """
    notes: dict[str, str] = {}
    if len(scores) == 0:
        return notes
    per_cell = scores.groupby(["encoder", "method", "corpus", "shots"])["repetition"].nunique()
    reps, most = per_cell.groupby("encoder"), int(per_cell.max())
    largest = scores.groupby("corpus")["test_sentences"].max() if "test_sentences" in scores else None
    for encoder, group in scores.groupby("encoder"):
        parts = []
        low, high = int(reps.get_group(encoder).min()), int(reps.get_group(encoder).max())
        if high < most:
            parts.append(f"{low if low == high else f'{low} to {high}'} repetitions")
        if largest is not None:
            sizes = group.groupby("corpus")["test_sentences"].max()
            if (sizes < largest.reindex(sizes.index)).any():
                parts.append(f"scored on a seeded subset of {int(sizes.min()):,}"
                             f"{'' if sizes.min() == sizes.max() else f' to {int(sizes.max()):,}'} sentences of each "
                             "test split (the bert_cpu profile; the other rows use the whole test splits)")  # fmt: skip
        parts += adaptation_protocol(group)
        if parts:
            notes[str(encoder)] = "; ".join(parts)
    return notes


def adaptation_protocol(rows: pd.DataFrame) -> list[str]:
    """How one encoder's rows were fine-tuned (columns ``steps``, ``lr``, ``sampling``):
    e.g. ``adapted with 200 full-batch SGD steps (initial rate 0.1·√(K/32), eq. 3) on
    uniform draws``, one clause per distinct protocol with its K when they differ."""
    if not {"steps", "lr", "sampling"} <= set(rows) or rows[["steps", "lr", "sampling"]].isna().any().any():
        return []
    base = (rows["lr"].astype(float) / (rows["shots"].astype(float) / 32) ** 0.5).round(4)
    keyed = rows.assign(base=base)
    protocols = keyed.groupby(["steps", "base", "sampling"])
    mixed = {int(k) for k, g in keyed.groupby("shots") if len(g.groupby(["steps", "base", "sampling"])) > 1}
    clauses = []
    for (steps, rate, sampling), group in protocols:
        draws = "draws of any K train sentences" if sampling == "uniform" else "draws of K sentences with an entity"
        text = f"adapted with {int(steps)} full-batch SGD steps (the new decoder's initial rate {rate:g}·√(K/32), eq. 3) on {draws}"
        if len(protocols) > 1:
            where = []
            for k, cell in group.groupby("shots"):
                corpora = ", ".join(dict.fromkeys(cell["corpus"])) if int(k) in mixed else ""
                where.append(f"{int(k)}: {corpora}" if corpora else str(int(k)))
            text += f" (K = {'; '.join(where)})"
        clauses.append(text)
    return clauses


def missing_notes(
    scores: pd.DataFrame, shots: Sequence[int], corpora: Sequence[str], methods: Sequence[str]
) -> list[str]:
    """What the expected grid (``methods`` × ``shots`` × ``corpora``) lacks in ``scores``."""
    notes = []
    absent = [METHOD_LABELS.get(m, m) for m in methods if m not in set(scores["method"])]
    if absent:
        notes.append(f"No results for: {', '.join(absent)}.")
    all_shots = sorted(set(shots) | set(scores["shots"].astype(int)))
    for (method, encoder), group in sorted(scores.groupby(["method", "encoder"]), key=lambda kv: row_key(*kv[0])):
        lacking = [k for k in all_shots if k not in set(group["shots"].astype(int))]
        if lacking:
            notes.append(f"{method_label(method, encoder)}: no results for K = {', '.join(map(str, lacking))}.")
    lacking_corpora = [c for c in corpora if c not in set(scores["corpus"])]
    if lacking_corpora:
        notes.append(f"No results for corpora: {', '.join(lacking_corpora)}.")
    return notes


def results_table(
    scores: pd.DataFrame,
    metric: str = "f1",
    corpus_order: Sequence[str] = (),
    shots: Sequence[int] = (),
    methods: Sequence[str] = METHOD_ORDER,
) -> ResultsTable:
    """Mean and std over repetitions of ``metric`` per K × method × corpus, plus Overall.

    Args:
        scores: rows of ``reports/scores.csv``.
        metric: ``f1``, ``precision`` or ``recall``.
        corpus_order: the corpora expected, in column order (params ``domains``); corpora
            without rows are left out with a note, corpora not listed follow.
        shots: the K values expected (params ``shots``), for the notes on what is missing.
        methods: the methods expected, for the same notes.

    Overall is the mean of the row's corpus means; its std is that of the per-repetition
    mean over the row's corpora.  Standard deviations are sample ones (ddof 1).
    """
    present = list(dict.fromkeys(scores["corpus"]))
    corpora = [c for c in corpus_order if c in present] + [c for c in present if c not in corpus_order]
    first_domain = scores.drop_duplicates("corpus").set_index("corpus")["domain"] if len(scores) else {}
    domains = {c: str(first_domain.get(c, "")) for c in corpora}
    cells = scores.groupby(["shots", "method", "encoder", "corpus"])[metric]
    mean, std, count = cells.mean(), cells.std(), cells.count()
    keys = sorted({(int(k), m, e) for k, m, e, _ in mean.index}, key=lambda x: (x[0], row_key(x[1], x[2])))
    rows, stds, notes = [], [], []
    for i, (k, method, encoder) in enumerate(keys):
        label = method_label(method, encoder)
        means = {c: mean.get((k, method, encoder, c), float("nan")) for c in corpora}
        ran = [c for c in corpora if pd.notna(means[c])]
        run = scores[(scores["shots"] == k) & (scores["method"] == method) & (scores["encoder"] == encoder)]
        per_repetition = run.pivot_table(index="repetition", columns="corpus", values=metric).mean(axis=1)
        first = i == 0 or keys[i - 1][0] != k
        rows.append({"K": str(k) if first else "", "Method": label, **means,
                     "Overall": sum(means[c] for c in ran) / len(ran) if ran else float("nan")})  # fmt: skip
        stds.append({**{c: std.get((k, method, encoder, c), float("nan")) for c in corpora},
                     "Overall": per_repetition.std()})  # fmt: skip
        if len(ran) < len(corpora):
            lacking = ", ".join(c for c in corpora if c not in ran)
            notes.append(f"Overall of {label} at K = {k} is over {len(ran)} of the {len(corpora)} corpora "
                         f"(no {lacking}).")  # fmt: skip
    columns = ["K", "Method", *corpora, "Overall"]
    frame = pd.DataFrame(rows, columns=columns).astype({c: float for c in [*corpora, "Overall"]})
    std_frame = pd.DataFrame(stds, columns=columns).astype(float)
    reps = (int(count.min()), int(count.max())) if len(count) else (0, 0)
    notes = missing_notes(scores, shots, corpus_order, methods) + notes
    if frame[corpora].isna().to_numpy().any():
        notes.append("—: no result for that cell.")
    if reps[0] != reps[1]:
        notes.append(f"Cells are means over {reps[0]} to {reps[1]} repetitions.")
    return ResultsTable(metric, frame, std_frame, keys, corpora, domains, reps, notes, protocol_notes(scores))


def best_mask(table: ResultsTable) -> pd.DataFrame:
    """Bold: the maximum of each K and column, compared at the shown precision, ties all bold."""
    mask = pd.DataFrame(False, index=table.frame.index, columns=table.frame.columns)
    shown = table.frame[table.value_columns].round(DECIMALS)
    shots = pd.Series([k for k, _, _ in table.keys], index=table.frame.index)
    for _, index in shots.groupby(shots).groups.items():
        mask.loc[index, table.value_columns] = max_mask(shown.loc[index]).to_numpy()
    return mask


def significance_marks(table: ResultsTable, significance: pd.DataFrame | None) -> dict[tuple[int, str], list[str]]:
    """(row position, corpus) → the baselines of :data:`MARKS` that cell is significantly better than."""
    marks: dict[tuple[int, str], list[str]] = {}
    if significance is None or significance.empty:
        return marks
    position = {key: i for i, key in enumerate(table.keys)}
    for row in significance[significance["significant"] & significance["baseline"].isin(MARKS)].itertuples():
        i = position.get((int(row.shots), row.method, row.encoder))
        if i is not None and row.corpus in table.corpora:
            marks.setdefault((i, row.corpus), []).append(row.baseline)
    return marks


def cell_suffixes(
    table: ResultsTable, marks: Mapping[tuple[int, str], list[str]], show_std: bool, latex: bool
) -> pd.DataFrame:
    """Text after each mean: its significance marks, then ``± std`` when ``show_std``."""
    suffix = pd.DataFrame(None, index=table.frame.index, columns=table.frame.columns, dtype=object)
    for i in range(len(table.frame)):
        for column in table.value_columns:
            text = "".join(MARKS[b][1 if latex else 0] for b in marks.get((i, column), []))
            spread = table.std.at[i, column]
            if show_std and pd.notna(table.frame.at[i, column]) and pd.notna(spread):
                text += (r" $\pm$ " if latex else " ± ") + f"{spread:.{DECIMALS}f}"
            suffix.at[i, column] = text or None
    return suffix


def results_caption(table: ResultsTable, models: Mapping[str, str], alpha: float, show_std: bool, latex: bool) -> str:
    """The caption: what a cell is, bold, the encoders' model labels and, for F1, the marks."""
    paper_table, name = METRICS[table.metric]
    low, high = table.repetitions
    parts = [f"{paper_table} (ours): mean {name} over {low if low == high else f'{low} to {high}'} repetitions "
             "(distinct adaptation sets of K sentences) of the sequence-encoder adaptation to each corpus of "
             "the held-out domain."]  # fmt: skip
    if show_std:
        parts.append("After the mean: the standard deviation over repetitions (for Overall, of the "
                     "per-repetition mean over the corpora).")  # fmt: skip
    parts.append("Best of each K and column in bold (ties all bold). Overall: the mean over the corpora shown.")
    for encoder in dict.fromkeys(e for _, _, e in table.keys):
        who = "Rows marked * use" if encoder == "bert" else "Unmarked rows use"
        protocol = f"; {table.protocols[encoder]}" if encoder in table.protocols else ""
        parts.append(f"{who} the {ENCODER_LABELS.get(encoder, encoder)} encoder: {models.get(encoder, encoder)}{protocol}.")
    marked = [b for b in MARKS if b in {m for _, m, _ in table.keys}] if table.metric == "f1" else []
    if marked:
        symbols = " / ".join(MARKS[b][2] if latex else MARKS[b][0] for b in marked)
        parts.append(f"{symbols[0].upper()}{symbols[1:]}: HGDA or HGDA-NEs better than "
                     f"{' / '.join(METHOD_LABELS[b] for b in marked)} with the same encoder (paired t-test over "
                     "the repetitions, Holm-corrected across the (corpus, K) cells of each comparison, "
                     f"p < {alpha:g}; see significance.md).")  # fmt: skip
    return tex_words(" ".join(parts)) if latex else " ".join(parts)


def render_results(
    table: ResultsTable,
    models: Mapping[str, str],
    significance: pd.DataFrame | None = None,
    alpha: float = 0.05,
    show_std: bool = False,
) -> tuple[str, str]:
    """One of Tables 3–5 as (Markdown, LaTeX) text.

    The LaTeX is a complete booktabs ``table`` environment with caption and label
    (``tab:table3``…), ready to ``\\input``; it needs ``\\usepackage{booktabs}``.
    Significance marks are drawn on the F1 table only.

    Args:
        table: from :func:`results_table`.
        models: encoder → model label, for the caption (:func:`model_labels`).
        significance: from :func:`hgda_core.significance.significance_table` (F1).
        alpha: the level the marks use, for the caption.
        show_std: add ``± std`` to the cells.
    """
    paper_table, name = METRICS[table.metric]
    if table.frame.empty:
        message = f"No results: scores.csv has no rows, so {paper_table} ({name}) is empty."
        return f"{message}\n", f"% {message}\n"
    marks = significance_marks(table, significance) if table.metric == "f1" else {}
    bold, groups = best_mask(table), table.header_groups()
    k_starts = [i for i, k in enumerate(table.frame["K"]) if k]
    md = to_markdown(
        table.frame, bold, results_caption(table, models, alpha, show_std, latex=False), table.notes, DECIMALS,
        header_groups=groups, suffix=cell_suffixes(table, marks, show_std, latex=False),
    )  # fmt: skip
    tex = to_latex(
        table.frame, bold, results_caption(table, models, alpha, show_std, latex=True),
        "tab:" + paper_table.lower().replace(" ", ""), table.notes, DECIMALS, header_groups=groups,
        suffix=cell_suffixes(table, marks, show_std, latex=True), rules_before=k_starts,
    )  # fmt: skip
    return md, tex
