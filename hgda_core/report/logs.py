"""What the reports read from the meta-training logs: Table 1 of the paper, the tasks'
hardness against their share of entity tokens, and the learning curves.

A run is one ``reports/metatrain/<held_out>-<method>/`` folder; its log
``logs/K<k>.jsonl.gz`` (:func:`hgda_core.metatrain.read_log`) holds, per iteration, each
task's domain, sentences as ``[corpus, index]`` into the corpus's train split, entity
counts and hardness weights Γ_i of eq. 2.  Sentences are resolved from the processed
corpora ``data/processed/<corpus>.pkl``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from statistics import median

import pandas as pd

from hgda_core.data import Corpus, Sentence, load_corpus
from hgda_core.metatrain import read_log
from hgda_core.report.tables import method_label
from hgda_core.tables import to_latex, to_markdown

TASK_COLUMNS = (
    "held_out", "method", "shots", "iteration", "task", "domain",
    "support", "query", "support_entities", "query_entities", "gamma_theta",
)  # fmt: skip
log = logging.getLogger(__name__)


def log_path(metatrain_dir: str | Path, held_out: str, method: str, k: int) -> Path:
    """``<metatrain_dir>/<held_out>-<method>/logs/K<k>.jsonl.gz``."""
    return Path(metatrain_dir) / f"{held_out}-{method}" / "logs" / f"K{k}.jsonl.gz"


def find_runs(metatrain_dir: str | Path, held_outs: Iterable[str]) -> list[tuple[str, str]]:
    """The (held-out domain, method) of every run folder present, in folder-name order."""
    root = Path(metatrain_dir)
    runs = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        for held_out in held_outs:
            if folder.is_dir() and folder.name.startswith(f"{held_out}-"):
                runs.append((held_out, folder.name[len(held_out) + 1 :]))
    return runs


def meta_budget_notes(metatrain_dir: str | Path, runs: Sequence[tuple[str, str]], encoder: str = "BiLSTM") -> list[str]:
    """How the runs' meta-training ended, one clause per K, from their ``metrics.json``:
    how many runs, their iterations, and how many stopped by patience or at the cap
    (runs written before ``stopped_by`` was recorded are counted as such), and how many
    were resumed from a saved state after a stop (``resumed_at``)."""
    entries: dict[int, list[dict]] = {}
    for held_out, method in runs:
        path = Path(metatrain_dir) / f"{held_out}-{method}" / "metrics.json"
        if path.is_file():
            for key, entry in json.loads(path.read_text(encoding="utf-8")).items():
                entries.setdefault(int(key.lstrip("K")), []).append(entry)
    notes = []
    for k in sorted(entries):
        group = entries[k]
        iterations = sorted(int(e["iterations"]) for e in group)
        stops = Counter(str(e.get("stopped_by", "unrecorded")) for e in group)
        span = f"{iterations[0]:,}" if iterations[0] == iterations[-1] else f"{iterations[0]:,} to {iterations[-1]:,}"
        ends = [f"{stops[s]} {text}" for s, text in (("patience", "stopped by patience"), ("cap", "at the iteration cap"),
                                                     ("unrecorded", "without a recorded stop reason")) if stops[s]]  # fmt: skip
        resumed = sum(1 for e in group if e.get("resumed_at"))
        ends += [f"{resumed} resumed from a saved state after a stop"] if resumed else []
        notes.append(f"K = {k}: {len(group)} runs of {span} iterations (median {int(median(iterations)):,}), "
                     f"{', '.join(ends)}")  # fmt: skip
    return [f"Meta-training ({encoder}): {'; '.join(notes)}."] if notes else []


def read_tasks(path: str | Path, held_out: str, method: str, k: int) -> pd.DataFrame:
    """Every task of a training log, one row each (columns :data:`TASK_COLUMNS`)."""
    rows = [
        {"held_out": held_out, "method": method, "shots": k, "iteration": record["iteration"], "task": i,
         "domain": task["domain"], "support": task["support"], "query": task["query"],
         "support_entities": task["support_entities"], "query_entities": task["query_entities"],
         "gamma_theta": task["gamma_theta"]}
        for record in read_log(path)
        for i, task in enumerate(record["tasks"])
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=list(TASK_COLUMNS))


class SentenceStore:
    """Resolves ``[corpus, index]`` references into train sentences, loading each corpus once."""

    def __init__(self, processed_dir: str | Path, split: str = "train") -> None:
        self.processed_dir, self.split = Path(processed_dir), split
        self._corpora: dict[str, Corpus | None] = {}

    def get(self, corpus: str, index: int) -> Sentence | None:
        """The sentence, or None when the corpus file or the index is missing."""
        if corpus not in self._corpora:
            path = self.processed_dir / f"{corpus}.pkl"
            self._corpora[corpus] = load_corpus(path) if path.is_file() else None
            if self._corpora[corpus] is None:
                log.warning("%s not found: its sentences are named, not shown (run `dvc repro prepare`)", path)
        loaded = self._corpora[corpus]
        sentences = loaded[self.split] if loaded is not None else []
        return sentences[index] if 0 <= index < len(sentences) else None


def bracketed(sentence: Sentence, max_tokens: int = 25) -> str:
    """The sentence with each entity in [brackets], cut after ``max_tokens`` tokens (``…``)."""
    out: list[str] = []
    inside = False
    for token, tag in list(zip(sentence.tokens, sentence.tags))[:max_tokens]:
        if inside and tag[0] != "I":
            out[-1] += "]"
            inside = False
        if tag[0] == "B":
            token, inside = "[" + token, True
        out.append(token)
    if inside:
        out[-1] += "]"
    return " ".join(out) + (" …" if len(sentence) > max_tokens else "")


def entity_token_share(refs: Sequence[Sequence], store: SentenceStore) -> float:
    """Share of entity tokens (tag ≠ O) in the referenced sentences; NaN when none resolve."""
    sentences = [s for s in (store.get(str(c), int(i)) for c, i in refs) if s is not None]
    tokens = sum(len(s) for s in sentences)
    return sum(t != "O" for s in sentences for t in s.tags) / tokens if tokens else float("nan")


def pick_tasks(tasks: pd.DataFrame) -> pd.DataFrame:
    """The tasks of highest, median and lowest γ^θ (Table 1); the median is the lower middle."""
    ranked = tasks.sort_values(["gamma_theta", "iteration", "task"], ascending=[False, True, True], kind="stable")
    ranked = ranked.reset_index(drop=True)
    picks = {"highest": 0, "median": len(ranked) // 2, "lowest": len(ranked) - 1}
    return pd.concat([ranked.iloc[[i]].assign(rank=name) for name, i in picks.items()], ignore_index=True)


def table1(
    tasks: pd.DataFrame, store: SentenceStore, max_sentences: int = 3, max_tokens: int = 25
) -> pd.DataFrame:
    """Table 1 of the paper from our logs: per run, three tasks and their support sentences.

    Args:
        tasks: from :func:`read_tasks`, one or several runs (held-out domain × K).
        store: resolves the sentences.
        max_sentences: support sentences shown per task.
        max_tokens: tokens shown per sentence.
    """
    rows = []
    for (held_out, k), run in tasks.groupby(["held_out", "shots"], sort=False):
        for pick in pick_tasks(run).itertuples():
            shown = []
            for corpus, index in pick.support[:max_sentences]:
                sentence = store.get(str(corpus), int(index))
                shown.append(bracketed(sentence, max_tokens) if sentence else f"({corpus} #{index} not found)")
            more = len(pick.support) - len(shown)
            rows.append({
                "Held-out": held_out, "K": int(k), "Task": pick.rank, "Iteration": int(pick.iteration),
                "Task domain": pick.domain, "Hardness": float(pick.gamma_theta),
                "NEs (support/query)": f"{pick.support_entities}/{pick.query_entities}",
                "Support sentences": " / ".join(shown) + (f" (+{more} more)" if more > 0 else ""),
            })  # fmt: skip
    return pd.DataFrame(rows)


def render_table1(tasks: pd.DataFrame, store: SentenceStore, method: str) -> tuple[str, str]:
    """Table 1 as (Markdown, LaTeX ``table`` environment) text."""
    if tasks.empty:
        message = f"No meta-training log of method {method} found, so Table 1 is empty."
        return f"{message}\n", f"% {message}\n"
    frame = table1(tasks, store)
    notes = []
    uniform = tasks.groupby(["held_out", "shots"])["gamma_theta"].nunique()
    if (uniform == 1).any():
        notes.append("Runs where every task has the same weight (uniform weighting, e.g. MetaNER's 1/m): "
                     + ", ".join(f"{h} K = {k}" for h, k in uniform[uniform == 1].index) + ".")  # fmt: skip
    what = (
        f"the tasks of highest, median and lowest hardness over the whole {method_label(method, 'bilstm')} "
        "meta-training log of each held-out domain (first K logged; weights of the m tasks of an iteration sum "
        "to 1). NEs: entity mentions in the support and query sets. The first support sentences, entities in "
        "[brackets]."
    )
    md_caption = f"Table 1 (ours): hardness γ^θ (eq. 2) of {what}"
    tex_caption = f"Table 1 (ours): hardness gamma-theta (eq. 2) of {what}"
    md = to_markdown(frame, caption=md_caption, notes=notes, decimals={"Hardness": 4})
    tex = to_latex(frame, caption=tex_caption, label="tab:table1", notes=notes, decimals={"Hardness": 4},
                   column_spec=r"lrlrlrlp{0.45\linewidth}")  # fmt: skip
    return md, tex


def hardness_points(tasks: pd.DataFrame, store: SentenceStore) -> pd.DataFrame:
    """Per task: held-out, K, domain, γ^θ and the entity-token share of its support + query."""
    share = [entity_token_share(list(s) + list(q), store) for s, q in zip(tasks["support"], tasks["query"])]
    return tasks[["held_out", "shots", "domain", "gamma_theta"]].assign(entity_share=share)


def read_curves(metatrain_dir: str | Path, runs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """The ``curve.csv`` of every run: ``held_out, method, shots, iteration, val_loss``."""
    frames = []
    for held_out, method in runs:
        path = Path(metatrain_dir) / f"{held_out}-{method}" / "curve.csv"
        if path.is_file() and path.stat().st_size:
            curve = pd.read_csv(path)
            frames.append(curve.assign(held_out=held_out, method=method))
    columns = ["held_out", "method", "shots", "iteration", "val_loss"]
    return pd.concat(frames, ignore_index=True)[columns].dropna() if frames else pd.DataFrame(columns=columns)
