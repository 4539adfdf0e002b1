"""The benchmark grid as cells: what each cell computes, where it is stored, how the
stages' outputs are assembled from the cells, and what a run will cost.

Two kinds of cell (:mod:`hgda_core.cellstore` keeps them, :mod:`hgda_core.executor` runs
them):

- ``metatrain``: one meta-training run (paper §4.2, Algorithms 1–2 via
  :func:`hgda_core.metatrain.meta_train`): encoder × held-out domain × method × K.  Files:
  ``model.pt`` (the best weights), ``it<n>.pt`` (``meta.snapshots``), ``log.jsonl.gz``,
  ``metrics.json`` and ``curve.csv``.
- ``adapt``: one adaptation block (Table 3, :func:`hgda_core.adapt.run_adaptation`): one
  starting point (a meta-trained checkpoint, ``scratch`` or ``bert_finetune``) × target
  corpus × K × :data:`DRAWS_PER_BLOCK` paired draws.  File: ``rows.csv``.

A cell's spec holds everything its files depend on: the params it reads, the
fingerprints of its input files (processed corpora, word vectors, the starting
checkpoint) and of the code that computes it (the modules its stage lists in dvc.yaml),
and :data:`CELL_FORMAT`.  The paths of those inputs are not in the spec: a cell computed
in one checkout, or on one machine of a cluster, is the same cell in another.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from hgda_core.cellstore import CellStore, cell_key, files_digest
from hgda_core.io import csv_text, write_json, write_text

log = logging.getLogger("hgda_core.grid")

META, ADAPT = "metatrain", "adapt"
CELL_FORMAT = 1
"""Bumped when the files a cell holds change, so that older cells are not read as new."""
DRAWS_PER_BLOCK = 5
"""Draws per adaptation cell: 20 repetitions are four cells; ``repeats: 5`` reuses the first."""
CURVE_COLUMNS = ("shots", "iteration", "train_loss", "val_loss")


@dataclass(frozen=True)
class Cell:
    """One cell: ``spec`` identifies it (its key); ``inputs`` says where this checkout keeps
    the files the spec fingerprints, and how to run it (not part of the key)."""

    kind: str
    spec: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def key(self) -> str:
        return cell_key(self.spec)


def code_fingerprint(package_root: Path, names: Iterable[str]) -> str:
    """The fingerprint of the code a cell runs: files or folders of ``hgda_core`` by name."""
    return files_digest([package_root / name for name in names], root=package_root)


# --- per-process caches: a worker running many cells loads each input once -------------------


@functools.lru_cache(maxsize=4)
def _vectors(path: str) -> Any:
    from hgda_core.embeddings import WordVectors

    return WordVectors.load(path)


@functools.lru_cache(maxsize=16)
def _corpus(path: str) -> Any:
    from hgda_core.data import load_corpus

    return load_corpus(path)


@functools.lru_cache(maxsize=8)
def _checkpoint(path: str, vectors: str | None, device: str, amp: bool) -> Any:
    from hgda_core.device import resolve_device
    from hgda_core.models import load_model

    model = load_model(path, _vectors(vectors) if vectors else None).to(resolve_device(device))
    model.amp = amp
    return model


# --- meta-training cells ----------------------------------------------------------------------


def compute_metatrain(cell: Cell) -> dict[str, Any]:
    """Run one meta-training cell into the store (if it is not there) and return its
    metrics record (:func:`hgda_core.metatrain.result_metrics`).

    ``cell.inputs``: ``store`` (the store's root), ``data`` (the processed corpora's
    folder), ``vectors`` (the word vectors' file, BiLSTM), ``progress`` (an iteration bar).
    """
    from hgda_core.device import resolve_device, use_amp
    from hgda_core.metatrain import JsonlGzLog, MetaTrainParams, meta_train, result_metrics
    from hgda_core.models import ModelSpec

    spec, inputs = cell.spec, cell.inputs
    store, key = CellStore(inputs["store"]), cell.key
    if store.has(META, key):
        return read_json_file(store.path(META, key) / "metrics.json")
    model_spec = ModelSpec.from_params(spec["model"])
    vectors = _vectors(inputs["vectors"]) if model_spec.encoder == "bilstm" else None
    corpora = {name: _corpus(str(Path(inputs["data"]) / f"{name}.pkl")) for name in spec["corpora"]}
    device = resolve_device(spec["device"])
    meta = MetaTrainParams(**spec["meta"])
    train_log = JsonlGzLog(every=meta.log_every)
    k = spec["k"]
    model, result = meta_train(
        corpora, model_spec.factory(vectors), spec["held_out"], spec["method"], k, meta, spec["seed"], train_log,
        progress=bool(inputs.get("progress", False)), theta_lr=model_spec.theta_lr, device=device,
        amp=use_amp(device, spec["amp"]), state_file=store.resume_file(key), state_key={"cell": key},
    )
    staged = store.staging(META, key)
    try:
        saved = {"held_out": spec["held_out"], "method": spec["method"], "shots": k, "cell": key}
        model.save(staged / "model.pt", **saved)
        for iteration, state in sorted(result.snapshots.items()):
            model.load_trainable_state(state)
            model.save(staged / f"it{iteration}.pt", **saved)
        train_log.write(staged / "log.jsonl.gz")
        metrics = result_metrics(result, k, list(model.classifier_domains))
        write_json(staged / "metrics.json", metrics)
        write_text(staged / "curve.csv", csv_text([{"shots": k, **row} for row in result.curve], CURVE_COLUMNS))
        store.commit(META, spec, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    store.resume_file(key).unlink(missing_ok=True)
    return metrics


def describe_metatrain(metrics: Mapping[str, Any]) -> str:
    """The log line's tail for a finished meta-training cell."""
    return f"{metrics['iterations']:,} it, stopped by {metrics['stopped_by']}, best at {metrics['best_iteration']:,}"


def run_folder(encoder: str, held_out: str | None, method: str) -> str:
    """The folder of one meta-training run under ``models/metatrain`` and ``reports/metatrain``."""
    return f"{encoder}/{held_out}-{method}"


def assemble_metatrain(cells: Sequence[Cell], store: CellStore, models: Path, reports: Path) -> None:
    """Write the ``metatrain`` stage's outputs whole from its cells: per run folder,
    ``K<k>.pt`` and ``K<k>-it<n>.pt`` under ``models``; ``metrics.json``, ``curve.csv``
    and ``logs/K<k>.jsonl.gz`` under ``reports`` (earlier contents of both are removed)."""
    for folder in (models, reports):
        shutil.rmtree(folder, ignore_errors=True)
    runs: dict[str, list[Cell]] = {}
    for cell in cells:
        runs.setdefault(run_folder(cell.spec["encoder"], cell.spec["held_out"], cell.spec["method"]), []).append(cell)
    for name, group in runs.items():
        metrics, curve = {}, []
        for cell in sorted(group, key=lambda c: c.spec["k"]):
            k, source = cell.spec["k"], store.path(META, cell.key)
            for path in sorted(source.glob("*.pt")):
                target = "" if path.stem == "model" else f"-{path.stem}"
                _copy(path, models / name / f"K{k}{target}.pt")
            _copy(source / "log.jsonl.gz", reports / name / "logs" / f"K{k}.jsonl.gz")
            metrics[f"K{k}"] = read_json_file(source / "metrics.json")
            with open(source / "curve.csv", newline="", encoding="utf-8") as fh:
                curve.extend(csv.DictReader(fh))
        write_json(reports / name / "metrics.json", metrics)
        write_text(reports / name / "curve.csv", csv_text(curve, CURVE_COLUMNS))


def adopt_metatrain(cells: Sequence[Cell], store: CellStore, models: Path, reports: Path) -> list[Cell]:
    """File in the store the cells whose outputs are already in the workspace (e.g. after
    ``dvc pull``): a checkpoint that records the cell's key, with its log, metrics and
    curve rows.  Returns the cells adopted."""
    from hgda_core.models import Tagger

    adopted = []
    for cell in cells:
        if store.has(META, cell.key):
            continue
        name, k = run_folder(cell.spec["encoder"], cell.spec["held_out"], cell.spec["method"]), cell.spec["k"]
        checkpoint, run_reports = models / name / f"K{k}.pt", reports / name
        log_file, metrics_file = run_reports / "logs" / f"K{k}.jsonl.gz", run_reports / "metrics.json"
        if not (checkpoint.is_file() and log_file.is_file() and metrics_file.is_file()):
            continue
        if Tagger.read_checkpoint(checkpoint).get("meta", {}).get("cell") != cell.key:
            continue
        metrics = read_json_file(metrics_file).get(f"K{k}")
        with open(run_reports / "curve.csv", newline="", encoding="utf-8") as fh:
            curve = [row for row in csv.DictReader(fh) if int(row["shots"]) == k]
        if metrics is None:
            continue
        files: dict[str, Path | bytes] = {"model.pt": checkpoint, "log.jsonl.gz": log_file,
                                          "metrics.json": (json.dumps(metrics, indent=2) + "\n").encode(),
                                          "curve.csv": csv_text(curve, CURVE_COLUMNS).encode()}
        for snapshot in models.glob(f"{name}/K{k}-it*.pt"):
            files[f"{snapshot.stem.split('-', 1)[1]}.pt"] = snapshot
        store.adopt(META, cell.spec, files)
        adopted.append(cell)
    return adopted


# --- adaptation cells -------------------------------------------------------------------------


def draw_blocks(repeats: int) -> list[tuple[int, ...]]:
    """The repetitions 0 … repeats − 1 in blocks of :data:`DRAWS_PER_BLOCK`."""
    return [tuple(range(start, min(start + DRAWS_PER_BLOCK, repeats))) for start in range(0, repeats, DRAWS_PER_BLOCK)]


def compute_adapt(cell: Cell) -> list[dict[str, Any]]:
    """Run one adaptation cell into the store (if it is not there) and return its rows.

    ``cell.inputs``: ``store``, ``data``, ``vectors`` (BiLSTM) and ``checkpoint`` (the
    meta-trained start; none for ``scratch`` and ``bert_finetune``).
    """
    from hgda_core.adapt import BERT_FINETUNE, COLUMNS, SCRATCH, AdaptConfig, run_adaptation, scratch_builder
    from hgda_core.device import resolve_device, use_amp
    from hgda_core.models import ModelSpec

    spec, inputs = cell.spec, cell.inputs
    store, key = CellStore(inputs["store"]), cell.key
    if store.has(ADAPT, key):
        return read_rows_file(store.path(ADAPT, key) / "rows.csv")
    method, k = spec["method"], spec["k"]
    model_spec = ModelSpec.from_params(spec["model"])
    device = resolve_device(spec["device"])
    amp = use_amp(device, spec["amp"])
    vectors = _vectors(inputs["vectors"]) if model_spec.encoder == "bilstm" else None
    corpus = _corpus(str(Path(inputs["data"]) / f"{spec['corpus']}.pkl"))
    config = AdaptConfig(**spec["adapt"], methods=[method], repeats=max(spec["repetitions"]) + 1)
    pretrained: dict[str, Any] = {}
    scratch = None
    if method == SCRATCH:
        build = scratch_builder(model_spec.factory(vectors, pretrained=False))

        def scratch(seed: int) -> Any:
            model = build(seed).to(device)
            model.amp = amp
            return model
    elif method == BERT_FINETUNE:
        base = model_spec.factory(None)([], []).to(device)
        base.amp = amp
        pretrained[method] = base
    else:
        pretrained[method] = _checkpoint(str(inputs["checkpoint"]), inputs.get("vectors"), spec["device"], amp)
    rows = run_adaptation(
        corpus, k, [method], pretrained, config, spec["seed"], spec["label"], scratch, model_spec.encoder,
        repetitions=list(spec["repetitions"]), theta_lr=model_spec.theta_lr,
    )
    staged = store.staging(ADAPT, key)
    try:
        write_text(staged / "rows.csv", csv_text(rows, COLUMNS))
        store.commit(ADAPT, spec, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return read_rows_file(store.path(ADAPT, key) / "rows.csv")


def describe_adapt(rows: Sequence[Mapping[str, Any]]) -> str:
    """The log line's tail for a finished adaptation cell."""
    f1 = [float(r["f1"]) for r in rows]
    return f"mean F1 {sum(f1) / len(f1):.4f} over {len(f1)} draws"


# --- small readers ----------------------------------------------------------------------------


def read_json_file(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_rows_file(path: Path) -> list[dict[str, Any]]:
    """Rows of a cell's ``rows.csv``, values as written (strings)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)

