"""Stage ``adapt``: K-shot adaptation of every method to every target corpus (paper §4.2, Table 3).

For each corpus in ``corpora``, each K in ``shots`` and ``adapt.repeats`` draws of K
train sentences, every method of ``adapt.methods`` is fine-tuned and scored on the test
split (:mod:`hgda_core.adapt`).  A meta-trained method uses the checkpoint of the run
that held the corpus's domain out, ``models/metatrain/<encoder>/<domain>-<method>/K<k>.pt``;
``scratch`` starts from random weights; ``bert_finetune`` (the paper's BioBERT baseline,
``model.encoder: bert`` only) from the pre-trained BERT with a fresh tag head.  With BERT
on a CPU the ``bert_cpu`` profile's ``adapt`` reductions apply (fewer draws, a seeded
subset of each test split; :func:`stages.common.effective_params`).

Writes ``reports/scores.csv`` (one row per encoder, method, corpus, K and repetition) and
``reports/adapt_metrics.json`` (mean and std of F1, P, R per encoder, method, corpus and
K), each atomically and only once every row is scored.

``scores.csv`` accumulates (``persist: true`` in dvc.yaml): a run replaces the rows of
the (encoder, K) pairs it computes and keeps the other rows of the configured corpora, so
``dvc exp run -S shots=5`` adds K = 5 beside an earlier K = 10, and a BERT run lands
beside the BiLSTM rows (issue 6).  ``dvc repro`` with the full ``shots`` list recomputes
every K of the configured encoder.

Run from the repository root: ``python -m stages.adapt``; ``--shots 10 --corpora
NCBI-disease,BC5CDR-disease`` runs one (K, held-out domain) part of the grid and replaces
only its rows (record the finished grid with ``dvc commit adapt``).  ``--methods hgda``
narrows a part to some methods (the draws, decoders and dropout do not depend on the
method, so the rows are those of a run of all of them); with ``--out PART`` the rows go to
a part file instead of ``reports/``, and ``--merge PART…`` adds finished parts to
``scores.csv`` — so that the tables never set a re-run method beside an old one.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from hgda_core.adapt import BERT_FINETUNE, COLUMNS, SCRATCH, AdaptConfig, draw_for, run_adaptation, scored_test, scratch_builder, summarise
from hgda_core.data import Corpus, load_corpora
from hgda_core.device import resolve_device, use_amp
from hgda_core.embeddings import WordVectors
from hgda_core.io import csv_text, setup_logging, write_json, write_text
from hgda_core.models import ModelSpec, Tagger, load_model
from hgda_core.models.tagger import PreparedSentences
from stages.common import ROOT, domain_of, effective_params, load_params, shots_list

log = logging.getLogger("stages.adapt")


def model_label(root: Path, dim: int) -> str:
    """Human name of the encoder, from the word-vector source recorded by stage ``embed``."""
    source = "word vectors"
    report = root / "reports" / "embeddings.json"
    if report.is_file():
        recorded = str(json.loads(report.read_text(encoding="utf-8")).get("source", ""))
        source = "fastText" if recorded.startswith("fasttext") else Path(recorded).name or source
    return f"BiLSTM-CRF ({source} {dim}-d)"


@dataclass
class _Job:
    """What every worker needs, loaded once before the workers fork."""

    params: dict[str, Any]
    config: AdaptConfig
    corpora: dict[str, Corpus]
    checkpoints: dict[tuple[str, str, int], Tagger]
    scratch: Callable[[int], Tagger]
    label: str
    encoder: str
    theta_lr: float | None
    finetune_base: Tagger | None
    tests: dict[str, PreparedSentences]  # corpus → its scored test sentences, collated once


_JOB: _Job | None = None  # set in the parent, inherited by forked workers


def _run_unit(unit: tuple[str, int, int]) -> list[dict]:
    """Rows of one (corpus, K, repetition): every method on the same draw."""
    assert _JOB is not None
    torch.set_num_threads(_JOB.params["threads"])
    name, k, r = unit
    corpus = _JOB.corpora[name]
    methods = _JOB.config.methods
    pretrained = {m: _JOB.checkpoints[(corpus.domain, m, k)] for m in methods if m not in (SCRATCH, BERT_FINETUNE)}
    if _JOB.finetune_base is not None:
        pretrained[BERT_FINETUNE] = _JOB.finetune_base
    return run_adaptation(
        corpus, k, methods, pretrained, _JOB.config, _JOB.params["seed"], _JOB.label,
        _JOB.scratch, _JOB.encoder, repetitions=[r], theta_lr=_JOB.theta_lr, prepared=_JOB.tests[name],
    )


def load_job(params: dict[str, Any], root: Path = ROOT) -> _Job:
    """Load every corpus and checkpoint the stage needs, once (``params`` effective)."""
    config = AdaptConfig(**params["adapt"])
    spec = ModelSpec.from_params(params["model"])
    if BERT_FINETUNE in config.methods and spec.encoder != "bert":
        raise ValueError(f"method {BERT_FINETUNE} needs model.encoder: bert (it fine-tunes the pre-trained BERT)")
    device = resolve_device(params.get("device", "auto"))
    amp = use_amp(device, params.get("amp", True))
    if device.type != "cpu":
        config.workers = 1  # no fork after CUDA
    domains = domain_of(params["corpora"], params["domains"])
    corpora = load_corpora(root / "data" / "processed", params["corpora"])
    for name, corpus in corpora.items():
        if corpus.domain != domains[name]:
            raise ValueError(f"{name}: processed as domain {corpus.domain}, params say {domains[name]}; re-run stage prepare")
        for k in shots_list(params["shots"]):
            draw_for(corpus, k, 0, params["seed"], config.sampling)  # K too large: this error, before any work
    vectors = WordVectors.load(root / "data" / "embeddings" / "vectors.npz") if spec.encoder == "bilstm" else None

    def placed(model: Tagger) -> Tagger:
        """``model`` on the stage's device, with its mixed-precision switch set."""
        model = model.to(device)
        model.amp = amp
        return model

    checkpoints: dict[tuple[str, str, int], Tagger] = {}
    for domain in sorted({c.domain for c in corpora.values()}):
        for method in (m for m in config.methods if m not in (SCRATCH, BERT_FINETUNE)):
            for k in shots_list(params["shots"]):
                path = root / "models" / "metatrain" / spec.encoder / f"{domain}-{method}" / f"K{k}.pt"
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: no checkpoint; run stage metatrain@{spec.encoder}-{domain}-{method} first")
                checkpoints[(domain, method, k)] = placed(load_model(path, vectors))
    finetune_base = placed(spec.factory(None)([], [])) if BERT_FINETUNE in config.methods else None
    build_scratch = scratch_builder(spec.factory(vectors, pretrained=False))

    def scratch(seed: int) -> Tagger:
        return placed(build_scratch(seed))

    if spec.encoder == "bilstm":
        label = model_label(root, vectors.dim)  # type: ignore[union-attr]
    else:
        label = (finetune_base or next(iter(checkpoints.values()))).encoder.label  # type: ignore[union-attr]
    collator = finetune_base or scratch(0)
    tests = {name: collator.prepare(scored_test(c, config, params["seed"]), config.eval_batch_size) for name, c in corpora.items()}
    return _Job(params, config, corpora, checkpoints, scratch, label, spec.encoder, spec.theta_lr, finetune_base, tests)


def adapt_all(params: dict[str, Any], root: Path = ROOT, progress: bool = True) -> list[dict]:
    """Every row of the stage, computed by ``adapt.workers`` processes.

    Rows come back in a fixed order (corpus, K, repetition, method) whatever the number
    of workers, and each row depends only on its (corpus, K, repetition, method).
    """
    global _JOB
    _JOB = job = load_job(params, root)
    units = [(name, k, r) for name in job.corpora for k in shots_list(params["shots"]) for r in range(job.config.repeats)]
    # Largest test splits first, so that the workers finish together.
    order = sorted(units, key=lambda u: -len(job.corpora[u[0]]["test"]))
    results: dict[tuple[str, int, int], list[dict]] = {}
    bar = tqdm(total=len(units) * len(job.config.methods), desc="adapt", unit="run", disable=not progress)
    try:
        if job.config.workers > 1:
            with multiprocessing.get_context("fork").Pool(job.config.workers) as pool:
                for unit, rows in zip(order, pool.imap(_run_unit, order)):
                    results[unit] = rows
                    bar.update(len(rows))
        else:
            for unit in order:
                results[unit] = _run_unit(unit)
                bar.update(len(results[unit]))
    finally:
        bar.close()
        _JOB = None
    rows = [row for unit in units for row in results[unit]]
    for name in job.corpora:
        for k in shots_list(params["shots"]):
            for method in job.config.methods:
                f1 = [r["f1"] for r in rows if r["corpus"] == name and r["shots"] == k and r["method"] == method]
                log.info("%s K=%d %s: mean F1 %.4f over %d draws", name, k, method, sum(f1) / len(f1), len(f1))
    return rows


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
                             f"{','.join(COLUMNS)!r}; move the file away to start afresh")
        rows = []
        for line, row in enumerate(reader, start=2):
            if None in row or None in row.values() or not row["shots"].isdigit() or not row["repetition"].isdigit():
                raise ValueError(f"{path}:{line}: expected {len(COLUMNS)} fields with an integer K and repetition, got {row}")
            rows.append(row)
    return rows


def kept_rows(
    path: Path, corpora: list[str], replaced: set[tuple[str, int, str]], methods: set[str] | None = None,
) -> list[dict]:
    """Rows of an earlier ``scores.csv`` that this run keeps: those of the configured
    ``corpora`` whose (encoder, K, corpus) is not in ``replaced`` — or, with ``methods``,
    whose method is not among them (a run of some methods keeps the others' rows).
    Values stay as written.

    Raises:
        ValueError: when the file's header is not :data:`COLUMNS` or a row is malformed.
    """
    def is_replaced(row: dict) -> bool:
        return (row["encoder"], int(row["shots"]), row["corpus"]) in replaced and (methods is None or row["method"] in methods)

    return [row for row in read_rows(path) if row["corpus"] in corpora and not is_replaced(row)]


def merge_rows(kept: list[dict], rows: list[dict], corpora: Sequence[str] = (), methods: Sequence[str] = ()) -> list[dict]:
    """Earlier rows and this run's in one canonical order, whatever order the parts landed
    in: by encoder (BiLSTM first), K, corpus (``corpora``' order), repetition, method
    (``methods``' order); names not in those lists after the others, as they came."""
    corpus_rank = {c: i for i, c in enumerate(corpora)}
    method_rank = {m: i for i, m in enumerate(methods)}

    def key(row: dict) -> tuple:
        return (row["encoder"] != "bilstm", row["encoder"], int(row["shots"]), corpus_rank.get(row["corpus"], len(corpus_rank)),
                int(row["repetition"]), method_rank.get(row["method"], len(method_rank)))

    return sorted(kept + rows, key=key)


def write_reports(rows: list[dict], root: Path = ROOT) -> None:
    write_text(root / "reports" / "scores.csv", csv_text(rows, COLUMNS))
    write_json(root / "reports" / "adapt_metrics.json", summarise(rows))


def run(
    params: dict[str, Any], root: Path = ROOT, progress: bool = True,
    shots: list[int] | None = None, corpora: list[str] | None = None,
    methods: list[str] | None = None, out: Path | None = None,
) -> None:
    """Score every row, then write both reports (nothing is written if a row fails).

    ``shots`` / ``corpora`` / ``methods``: run only these K / target corpora / methods (of
    params.yaml's), replacing only their rows — a grid too long for one sitting lands one
    (K, held-out domain) or one (K, held-out domain, method) at a time; a row depends only
    on its (corpus, K, repetition, method), so the parts give the rows of one whole run.
    ``out``: write the rows to this part file instead (it accumulates in the same way;
    ``reports/`` is not touched) — :func:`merge_parts` adds it to ``scores.csv`` later.
    """
    torch.set_num_threads(params["threads"])
    params = effective_params(params)
    encoder = params["model"].get("encoder", "bilstm")
    asked_lists = (("--shots", shots, shots_list(params["shots"])), ("--corpora", corpora, params["corpora"]),
                   ("--methods", methods, params["adapt"]["methods"]))
    for name, asked, configured in asked_lists:
        if asked and not set(asked) <= set(configured):
            raise ValueError(f"{name} {','.join(map(str, asked))} must be among params.yaml's {configured}")
    run_params = {**params, "shots": shots or params["shots"], "corpora": corpora or params["corpora"],
                  "adapt": {**params["adapt"], "methods": methods or params["adapt"]["methods"]}}
    replaced = {(encoder, k, c) for k in shots_list(run_params["shots"]) for c in run_params["corpora"]}
    target = out or root / "reports" / "scores.csv"
    kept = kept_rows(target, params["corpora"], replaced, set(methods) if methods else None)  # fail before the work
    rows = adapt_all(run_params, root, progress)
    merged = merge_rows(kept, rows, params["corpora"], params["adapt"]["methods"])
    if out is None:
        write_reports(merged, root)
    else:
        write_text(out, csv_text(merged, COLUMNS))
    log.info("wrote %d new rows (%d kept from earlier runs) to %s", len(rows), len(kept), target)


def merge_parts(params: dict[str, Any], parts: list[Path], root: Path = ROOT) -> None:
    """Add the rows of part files (``run(out=...)``) to ``scores.csv``: each replaces the
    row of the same (encoder, K, corpus, repetition, method), the other rows stay; then
    both reports are written.  Every part is read before anything is written.

    Raises:
        ValueError: a malformed part, or a row of a corpus or method not in params.yaml.
    """
    params = effective_params(params)
    incoming: list[dict] = []
    for part in parts:
        if not part.is_file():
            raise ValueError(f"{part}: no such part file")
        for line, row in enumerate(read_rows(part), start=2):
            if row["corpus"] not in params["corpora"]:
                raise ValueError(f"{part}:{line}: corpus {row['corpus']!r} is not among params.yaml's {params['corpora']}")
            incoming.append(row)
    key = lambda r: (r["encoder"], int(r["shots"]), r["corpus"], int(r["repetition"]), r["method"])  # noqa: E731
    new = {key(r) for r in incoming}
    kept = [r for r in kept_rows(root / "reports" / "scores.csv", params["corpora"], set()) if key(r) not in new]
    write_reports(merge_rows(kept, incoming, params["corpora"], params["adapt"]["methods"]), root)
    log.info("merged %d rows from %s into reports/scores.csv (%d kept)", len(incoming), ", ".join(map(str, parts)), len(kept))


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shots", default="", help="comma-separated K of `shots` to run (default: all)")
    parser.add_argument("--corpora", default="", help="comma-separated target corpora of `corpora` (default: all)")
    parser.add_argument("--methods", default="", help="comma-separated methods of `adapt.methods` (default: all)")
    parser.add_argument("--out", default="", help="write the rows to this part file, not reports/ (see --merge)")
    parser.add_argument("--merge", nargs="+", default=[], metavar="PART",
                        help="add the rows of these part files to reports/scores.csv (no adaptation)")
    args = parser.parse_args(argv)
    setup_logging()
    shots = [int(k) for k in args.shots.split(",") if k.strip()] or None
    corpora = [c for c in args.corpora.split(",") if c.strip()] or None
    methods = [m for m in args.methods.split(",") if m.strip()] or None
    try:
        if args.merge:
            if shots or corpora or methods or args.out:
                raise ValueError("--merge takes no other option")
            merge_parts(load_params(), [Path(p) for p in args.merge])
        else:
            run(load_params(), shots=shots, corpora=corpora, methods=methods, out=Path(args.out) if args.out else None)
    except ValueError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
