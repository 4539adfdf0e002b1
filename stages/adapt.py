"""Stage ``adapt``: K-shot adaptation to every held-out domain (paper §4.2, Table 3), as cells.

For each corpus of a held-out domain (``meta.held_out``), each K in ``shots`` and
``adapt.repeats`` paired draws of K train sentences, every method of ``adapt.methods`` is
fine-tuned and scored on the test split (:mod:`hgda_core.adapt`).  A meta-trained method
starts from the checkpoint of the run that held the corpus's domain out (stage
``metatrain``); ``scratch`` from random weights; ``bert_finetune`` (the paper's BioBERT
baseline, ``model.encoder: bert`` only) from the pre-trained BERT with a fresh tag head.
With BERT on a CPU the ``bert_cpu`` profile's ``adapt`` reductions apply.

The work is cut into cells of one starting point × target corpus × K × a block of
:data:`hgda_core.grid.DRAWS_PER_BLOCK` draws (:func:`hgda_core.grid.compute_adapt`); a
cell already in the cell store is reused, the others run on the environment's executor
(:mod:`hgda_core.executor`).  A row depends only on its (corpus, K, repetition, method),
so the rows are those of one run of everything, whatever the executor.

Writes, whole and only once every cell is done: ``reports/scores.csv`` (one row per
encoder, method, corpus, K and repetition — exactly the cells params.yaml names) and
``reports/adapt_metrics.json`` (mean and std of F1, P, R per encoder, method, corpus and K).

``--plan`` adapts nothing: it prints how many cells a run would compute and how long
the committed rows of ``reports/scores.csv`` took for them.

Run from the repository root: ``dvc repro adapt`` or ``python -m stages.adapt``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import hgda_core
from hgda_core.adapt import BERT_FINETUNE, COLUMNS, SCRATCH, AdaptConfig, draw_for, summarise
from hgda_core.cellstore import CellStore, file_digest
from hgda_core.data import load_corpus
from hgda_core.embeddings import WordVectors
from hgda_core.executor import CellsFailed, ExecutorSettings, run_cells
from hgda_core.grid import (ADAPT, CELL_FORMAT, META, Cell, code_fingerprint, compute_adapt, describe_adapt,
                            draw_blocks, read_rows_file, run_folder)
from hgda_core.io import csv_text, setup_logging, write_json, write_text
from hgda_core.models import ModelSpec, Tagger
from stages import metatrain
from stages.common import ROOT, cells_root, domain_of, effective_params, format_hours, load_params, shots_list

log = logging.getLogger("stages.adapt")

CODE = ("adapt.py", "metrics.py", "metatrain.py", "optim.py", "data.py", "embeddings.py", "device.py", "models")
"""The ``hgda_core`` modules an adaptation cell runs (its stage's code deps in dvc.yaml)."""


def model_label(root: Path, spec: ModelSpec) -> str:
    """Human name of the encoder (the ``model`` column): for the BiLSTM, the word-vector
    source recorded by stage ``embed`` and their size; for BERT, its label or folder."""
    if spec.encoder == "bert":
        from hgda_core.models.bert import OFFLINE_LABEL

        return spec.bert.get("label") or spec.bert.get("model_path") or OFFLINE_LABEL
    source, recorded = "word vectors", {}
    report = root / "reports" / "embeddings.json"
    if report.is_file():
        recorded = json.loads(report.read_text(encoding="utf-8"))
        name = str(recorded.get("source", ""))
        source = "fastText" if name.startswith("fasttext") else Path(name).name or source
    dim = recorded.get("dim") or WordVectors.load(root / "data" / "embeddings" / "vectors.npz").dim
    return f"BiLSTM-CRF ({source} {dim}-d)"


def targets(params: dict[str, Any]) -> list[str]:
    """The target corpora: those of ``corpora`` whose domain is held out (``meta.held_out``)."""
    domains = domain_of(params["corpora"], params["domains"])
    return [name for name in params["corpora"] if domains[name] in params["meta"]["held_out"]]


def cell_builder(params: dict[str, Any], root: Path = ROOT) -> Callable[..., Cell]:
    """``build(method, corpus, k, repetitions, start=None, checkpoint=None) → Cell``: an
    adaptation cell under ``params`` (raw: the profiles are applied here); ``start``, the
    meta-training cell of ``checkpoint`` (None: ``method`` starts without one).

    Raises:
        ValueError: ``bert_finetune`` without BERT, bad ``adapt`` keys.
    """
    params = effective_params(params)
    adapt = {k: v for k, v in params["adapt"].items() if k not in ("methods", "repeats")}
    AdaptConfig(**adapt)  # bad keys or values fail here
    spec = ModelSpec.from_params(params["model"])
    if BERT_FINETUNE in params["adapt"].get("methods", ()) and spec.encoder != "bert":
        raise ValueError(f"method {BERT_FINETUNE} needs model.encoder: bert (it fine-tunes the pre-trained BERT)")
    data = root / "data" / "processed"
    vectors = root / "data" / "embeddings" / "vectors.npz" if spec.encoder == "bilstm" else None
    common = {
        "format": CELL_FORMAT, "kind": ADAPT, "encoder": spec.encoder, "seed": params["seed"], "adapt": adapt,
        "model": metatrain.model_params(params["model"]), "label": model_label(root, spec),
        "device": params.get("device", "auto"), "amp": params.get("amp", True),
        "vectors": file_digest(vectors) if vectors is not None else None,
        "code": code_fingerprint(Path(hgda_core.__file__).parent, CODE),
    }
    digests: dict[str, str] = {}

    def build(method: str, corpus: str, k: int, repetitions: Sequence[int], start: Cell | None = None,
              checkpoint: Path | None = None, label: str | None = None) -> Cell:
        if corpus not in digests:
            digests[corpus] = file_digest(data / f"{corpus}.pkl")
        cell_spec = {**common, "method": method, "corpus": corpus, "k": k, "repetitions": list(repetitions),
                     "data": digests[corpus], "start": start.key if start else method}
        inputs = {"store": str(cells_root(root)), "data": str(data), "vectors": str(vectors) if vectors else None,
                  "checkpoint": str(checkpoint) if start else None}
        return Cell(ADAPT, cell_spec, inputs, label or f"{method} {corpus} K={k} draws {repetitions[0]}-{repetitions[-1]}")

    return build


def plan(params: dict[str, Any], root: Path = ROOT) -> list[Cell]:
    """The adaptation cells that ``params`` names (``params`` raw; profiles applied here).

    Raises:
        ValueError: a method without a meta-training run, ``bert_finetune`` without BERT,
            bad ``adapt`` keys.
    """
    meta_cells = {(c.spec["held_out"], c.spec["method"], c.spec["k"]): c for c in metatrain.plan(params, root)}
    build = cell_builder(params, root)
    params = effective_params(params)
    methods, repeats = params["adapt"]["methods"], params["adapt"]["repeats"]
    AdaptConfig(**params["adapt"])
    for method in methods:
        if method not in (SCRATCH, BERT_FINETUNE) and method not in params["meta"]["methods"]:
            raise ValueError(f"adapt.methods has {method!r}, which meta.methods does not meta-train")
    encoder = ModelSpec.from_params(params["model"]).encoder
    domains = domain_of(params["corpora"], params["domains"])
    cells = []
    for name in targets(params):
        for k in sorted(shots_list(params["shots"]), reverse=True):
            for method in methods:
                meta_cell = meta_cells.get((domains[name], method, k))
                checkpoint = root / "models" / "metatrain" / run_folder(encoder, domains[name], method) / f"K{k}.pt"
                cells += [build(method, name, k, block, meta_cell, checkpoint) for block in draw_blocks(repeats)]
    return cells


def check_inputs(cells: Sequence[Cell], params: dict[str, Any]) -> None:
    """Before any work: each checkpoint is the one its cell names, each corpus was processed
    under the domain params.yaml gives, and K fits each train split.

    Raises:
        FileNotFoundError / ValueError: naming the file and what was expected.
    """
    params = effective_params(params)
    domains = domain_of(params["corpora"], params["domains"])
    seen: set[str] = set()
    for cell in cells:
        path = cell.inputs["checkpoint"]
        if path and path not in seen:
            seen.add(path)
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: no checkpoint; run stage metatrain first (dvc repro metatrain)")
            recorded = Tagger.read_checkpoint(path).get("meta", {}).get("cell")
            if recorded != cell.spec["start"]:
                raise ValueError(f"{path}: checkpoint of meta-training cell {recorded}, params.yaml names "
                                 f"{cell.spec['start']}; run stage metatrain first (dvc repro metatrain)")
    for name in {c.spec["corpus"] for c in cells}:
        corpus = load_corpus(Path(cells[0].inputs["data"]) / f"{name}.pkl")
        if corpus.domain != domains[name]:
            raise ValueError(f"{name}: processed as domain {corpus.domain}, params say {domains[name]}; re-run stage prepare")
        for k in {c.spec["k"] for c in cells if c.spec["corpus"] == name}:
            draw_for(corpus, k, 0, params["seed"], params["adapt"].get("sampling", "uniform"))


def merge_rows(kept: list[dict], rows: list[dict], corpora: Sequence[str] = (), methods: Sequence[str] = ()) -> list[dict]:
    """Rows in one canonical order: by encoder (BiLSTM first), K, corpus (``corpora``'
    order), repetition, method (``methods``' order); names not in those lists after the
    others, as they came."""
    corpus_rank = {c: i for i, c in enumerate(corpora)}
    method_rank = {m: i for i, m in enumerate(methods)}

    def key(row: dict) -> tuple:
        return (row["encoder"] != "bilstm", row["encoder"], int(row["shots"]), corpus_rank.get(row["corpus"], len(corpus_rank)),
                int(row["repetition"]), method_rank.get(row["method"], len(method_rank)))

    return sorted(kept + rows, key=key)


def read_rows(path: Path) -> list[dict]:
    """The rows of a ``scores.csv``-shaped file, values as written ([] when it is absent).

    Raises:
        ValueError: when the file's header is not :data:`COLUMNS` or a row is malformed.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}:1: header {','.join(reader.fieldnames or ())!r} is not the expected "
                             f"{','.join(COLUMNS)!r}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if None in row or None in row.values() or not row["shots"].isdigit() or not row["repetition"].isdigit():
                raise ValueError(f"{path}:{line}: expected {len(COLUMNS)} fields with an integer K and repetition, got {row}")
            rows.append(row)
    return rows


def write_reports(rows: list[dict], root: Path = ROOT) -> None:
    write_text(root / "reports" / "scores.csv", csv_text(rows, COLUMNS))
    write_json(root / "reports" / "adapt_metrics.json", summarise(rows))


def run(params: dict[str, Any], root: Path = ROOT, progress: bool = True) -> list[dict]:
    """Compute every missing cell on the environment's executor, then write both reports
    whole (nothing is written if a cell fails).  Returns the rows."""
    settings = ExecutorSettings.from_env()
    cells = plan(params, root)
    check_inputs(cells, params)
    store = CellStore(cells_root(root))
    todo = [cell for cell in cells if not store.has(ADAPT, cell.key)]
    log.info("%d adaptation cells, %d in the cell store, %d to run", len(cells), len(cells) - len(todo), len(todo))
    run_cells(compute_adapt, todo, [c.label for c in todo], settings, int(params["threads"]), describe_adapt, "adapt", progress)
    effective = effective_params(params)
    rows = merge_rows([], [row for cell in cells for row in read_rows_file(store.path(ADAPT, cell.key) / "rows.csv")],
                      effective["corpora"], effective["adapt"]["methods"])
    write_reports(rows, root)
    for name in targets(effective):
        for k in shots_list(effective["shots"]):
            for method in effective["adapt"]["methods"]:
                f1 = [float(r["f1"]) for r in rows if r["corpus"] == name and int(r["shots"]) == k and r["method"] == method]
                log.info("%s K=%d %s: mean F1 %.4f over %d draws", name, k, method, sum(f1) / len(f1), len(f1))
    return rows


def summary(cells: list[Cell], store: CellStore, scores: Path, jobs: int) -> str:
    """What a run will adapt and the committed rows' time for it."""
    seconds: dict[tuple, list[float]] = {}
    for row in read_rows(scores):
        seconds.setdefault((row["encoder"], row["method"], row["corpus"], int(row["shots"])), []).append(float(row["seconds"]))
    todo = [c for c in cells if not store.has(ADAPT, c.key)]
    estimate, known = 0.0, 0
    for cell in todo:
        recorded = seconds.get((cell.spec["encoder"], cell.spec["method"], cell.spec["corpus"], cell.spec["k"]))
        if recorded:
            estimate += sum(recorded) / len(recorded) * len(cell.spec["repetitions"])
            known += 1
    line = f"adapt: {len(cells)} cells named by params.yaml, {len(cells) - len(todo)} in the cell store, {len(todo)} to run"
    if known:
        estimate *= len(todo) / known
        line += (f"; ≈ {format_hours(estimate)} core-hours by the committed rows' seconds, "
                 f"≈ {format_hours(estimate / max(jobs, 1))} h on {jobs} worker(s)")
    return line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", action="store_true", help="print what a run would adapt; adapt nothing")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_params()
        if args.plan:
            cells = plan(params)
            print(summary(cells, CellStore(cells_root(ROOT)), ROOT / "reports" / "scores.csv", ExecutorSettings.from_env().jobs))
        else:
            run(params)
    except (ValueError, FileNotFoundError, CellsFailed) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
