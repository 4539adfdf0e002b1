"""Stage ``metatrain``: every meta-training run that params.yaml names, as cells on an executor.

The runs are the cells encoder (``model.encoder``) × held-out domain (``meta.held_out``)
× method (``meta.methods``) × K (``shots``), each meta-trained with its domain held out
(:func:`hgda_core.grid.compute_metatrain`).  A cell already in the cell store
(``cells/``, :mod:`hgda_core.cellstore`) is reused, the others run on the executor that
the environment chooses (``HGDA_EXECUTOR``, ``HGDA_JOBS``: :mod:`hgda_core.executor`),
all at once; then the outputs are written whole from the cells:

- ``models/metatrain/<encoder>/<held_out>-<method>/K<k>.pt`` (DVC cache and remote), and
  ``K<k>-it<n>.pt`` for the iterations of ``meta.snapshots``;
- ``reports/metatrain/<encoder>/<held_out>-<method>/{metrics.json,curve.csv,logs/K<k>.jsonl.gz}``.

A cell that is stopped (killed, out of time) keeps its state after every
meta-validation in ``cells/resume/<key>.pt`` and continues from there when the stage
runs again with the same params, to the outputs of an uninterrupted run; ``--restart``
discards those states.

``--plan`` trains nothing: it files in the cell store the checkpoints already in the
workspace whose recorded cell is one that params.yaml names (after ``dvc pull``), and
prints what a run would train and how long that took when the committed results were made
(the ``seconds`` of ``reports/metatrain/*/metrics.json``).

Run from the repository root: ``dvc repro metatrain`` or ``python -m stages.metatrain``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import hgda_core
from hgda_core.cellstore import CellStore, file_digest, files_digest
from hgda_core.executor import CellsFailed, ExecutorSettings, run_cells
from hgda_core.grid import (CELL_FORMAT, META, Cell, adopt_metatrain, assemble_metatrain, code_fingerprint,
                            compute_metatrain, describe_metatrain, run_folder)
from hgda_core.io import setup_logging
from hgda_core.metatrain import MetaTrainParams
from hgda_core.models import ModelSpec
from stages.common import ROOT, cells_root, effective_params, format_hours, load_params, shots_list

log = logging.getLogger("stages.metatrain")

CODE = ("metatrain.py", "meta.py", "trainer.py", "transfer.py", "sampler.py", "hardness.py", "methods.py",
        "optim.py", "data.py", "embeddings.py", "io.py", "device.py", "models")
"""The ``hgda_core`` modules a meta-training cell runs (its stage's code deps in dvc.yaml)."""


def model_params(model: dict[str, Any]) -> dict[str, Any]:
    """The ``model`` section as a cell reads it: a BiLSTM cell does not read ``model.bert``."""
    return {k: v for k, v in model.items() if k != "bert"} if model.get("encoder", "bilstm") == "bilstm" else dict(model)


def cell_builder(params: dict[str, Any], root: Path = ROOT, corpora: list[str] | None = None) -> Callable[..., Cell]:
    """``build(held_out, method, k, label=None) → Cell``: a meta-training cell under
    ``params`` (raw: the profiles are applied here) reading ``corpora`` (default: the
    params'); ``held_out=None`` trains on every domain of those corpora.

    Raises:
        ValueError: an encoder or a key of ``meta`` that does not exist.
        FileNotFoundError: no processed corpora or word vectors (run ``dvc repro embed``).
    """
    params = effective_params(params)
    meta = {k: v for k, v in params["meta"].items() if k not in ("held_out", "methods")}
    try:
        MetaTrainParams(**meta)  # unknown or bad keys fail here, before any work
    except TypeError as err:
        raise ValueError(f"params.yaml meta: {err}") from None
    spec = ModelSpec.from_params(params["model"])
    corpora = list(params["corpora"] if corpora is None else corpora)
    data = root / "data" / "processed"
    vectors = root / "data" / "embeddings" / "vectors.npz" if spec.encoder == "bilstm" else None
    common = {
        "format": CELL_FORMAT, "kind": META, "encoder": spec.encoder, "seed": params["seed"],
        "corpora": corpora, "model": model_params(params["model"]), "meta": meta,
        "device": params.get("device", "auto"), "amp": params.get("amp", True),
        "data": files_digest([data / f"{name}.pkl" for name in corpora]),
        "vectors": file_digest(vectors) if vectors is not None else None,
        "code": code_fingerprint(Path(hgda_core.__file__).parent, CODE),
    }
    inputs = {"store": str(cells_root(root)), "data": str(data), "vectors": str(vectors) if vectors else None}

    def build(held_out: str | None, method: str, k: int, label: str | None = None) -> Cell:
        return Cell(META, {**common, "held_out": held_out, "method": method, "k": k}, dict(inputs),
                    label or f"{spec.encoder} {held_out}-{method} K={k}")

    return build


def plan(params: dict[str, Any], root: Path = ROOT) -> list[Cell]:
    """The meta-training cells that ``params`` names, largest K first (``params`` raw:
    the profiles are applied here).

    Raises:
        ValueError: an encoder, method or key of ``meta`` that does not exist.
        FileNotFoundError: no processed corpora or word vectors (run ``dvc repro embed``).
    """
    build = cell_builder(params, root)
    meta = effective_params(params)["meta"]
    return [build(domain, method, k) for k in sorted(shots_list(params["shots"]), reverse=True)
            for domain in meta["held_out"] for method in meta["methods"]]


def recorded_seconds(cell: Cell, reports: Path) -> float | None:
    """How long the committed run of this (encoder, held-out domain, method, K) took."""
    path = reports / run_folder(cell.spec["encoder"], cell.spec["held_out"], cell.spec["method"]) / "metrics.json"
    if not path.is_file():
        return None
    entry = json.loads(path.read_text(encoding="utf-8")).get(f"K{cell.spec['k']}") or {}
    return float(entry["seconds"]) if "seconds" in entry else None


def summary(cells: list[Cell], store: CellStore, reports: Path, jobs: int) -> str:
    """What a run will train and the committed runs' time for it, per K."""
    todo = [c for c in cells if not store.has(META, c.key)]
    lines = [f"metatrain: {len(cells)} cells named by params.yaml, {len(cells) - len(todo)} in the cell store, "
             f"{len(todo)} to train"]
    for k in sorted({c.spec["k"] for c in todo}):
        at_k = [c for c in todo if c.spec["k"] == k]
        known = [s for s in (recorded_seconds(c, reports) for c in at_k) if s is not None]
        estimate = sum(known) / len(known) * len(at_k) if known else None
        lines.append(f"  K={k}: {len(at_k)} cells, " + (f"≈ {format_hours(estimate)} core-hours (committed runs' "
                     f"seconds, {len(known)} of {len(at_k)} recorded)" if estimate is not None else "no recorded time"))
    total = [s for s in (recorded_seconds(c, reports) for c in todo) if s is not None]
    if todo and total:
        seconds = sum(total) / len(total) * len(todo)
        lines.append(f"  total ≈ {format_hours(seconds)} core-hours, ≈ {format_hours(seconds / max(jobs, 1))} h on "
                     f"{jobs} worker(s) (HGDA_JOBS)")
    return "\n".join(lines)


def run(params: dict[str, Any], root: Path = ROOT, restart: bool = False, progress: bool = True) -> list[Cell]:
    """Compute every missing cell on the environment's executor, then write the outputs
    whole (module docstring).  Returns the cells."""
    settings = ExecutorSettings.from_env()
    cells = plan(params, root)
    store = CellStore(cells_root(root))
    if restart:
        for cell in cells:
            store.resume_file(cell.key).unlink(missing_ok=True)
    todo = [cell for cell in cells if not store.has(META, cell.key)]
    log.info("%d meta-training cells, %d in the cell store, %d to train", len(cells), len(cells) - len(todo), len(todo))
    in_process = settings.kind == "local" and (settings.jobs == 1 or len(todo) == 1)
    for cell in todo:
        cell.inputs["progress"] = progress and in_process
    run_cells(compute_metatrain, todo, [c.label for c in todo], settings, int(params["threads"]),
              describe_metatrain, "metatrain", progress)
    assemble_metatrain(cells, store, root / "models" / "metatrain", root / "reports" / "metatrain")
    return cells


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restart", action="store_true", help="discard the saved states of stopped cells")
    parser.add_argument("--plan", action="store_true", help="adopt pulled outputs, print what a run would train; train nothing")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_params()
        if args.plan:
            cells, store = plan(params), CellStore(cells_root(ROOT))
            adopted = adopt_metatrain(cells, store, ROOT / "models" / "metatrain", ROOT / "reports" / "metatrain")
            if adopted:
                log.info("filed %d pulled checkpoints in the cell store", len(adopted))
            print(summary(cells, store, ROOT / "reports" / "metatrain", ExecutorSettings.from_env().jobs))
        else:
            run(params, restart=args.restart)
    except (ValueError, FileNotFoundError, CellsFailed) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
