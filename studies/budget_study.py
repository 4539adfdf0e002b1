"""The budget study: what training longer, adapting longer and better word vectors are worth
(stage ``budget_study`` of ``studies/dvc.yaml``).

An *analysis*, never a selection: the protocol's defaults are fixed beforehand on source
devel data (:mod:`studies.select_meta`, :mod:`studies.select_lr`, ``reports/selection/``).
Every point is the mean F1 on the **devel split of the held-out domain's corpora** (the
target devel, which no stage reads) over the draws ``r < --draws`` of the grid
(:func:`hgda_core.adapt.draw_for`: the same sentences for every method), one factor at
a time, everything else at the protocol's defaults:

* ``meta_iterations``: the meta-training snapshots ``K<k>-it<n>.pt`` of each run
  (``meta.snapshots``) and its final, early-stopped checkpoint ``K<k>.pt``;
* ``steps``: the final checkpoints adapted for each of ``--steps`` fine-tuning steps;
* ``vectors`` (``--vectors-k``): the fastText vectors against random vectors of the same
  shape (normal, matched to the fastText table's mean and std), with ``transfer``,
  ``hgda`` and ``scratch`` meta-trained and adapted on the random table here;
* ``sampling`` (``--sampling-k``): ``uniform`` against ``with_entity`` draws;
* ``oracle``: clearly an oracle that **reads test labels** and is never a result — the
  test F1 of the best step of each fine-tuning run (scored every ``--oracle-every``
  steps) against the test F1 at the protocol's last step: how much a protocol that picks
  its step on the test split inflates F1.

Rows go to ``reports/budget_study.csv`` (one per factor level, method, corpus, K and draw;
a factor's earlier rows for the same held-out domain, K and method are replaced, so the
methods of one K can run one at a time, each while its checkpoints exist), and
:mod:`studies.budget_report` renders ``reports/budget_study.md`` and its plot.

Run from the repository root after the grid's meta-training, e.g.::

    python -m studies.budget_study --held-out Disease,Gene --shots 10,50 --draws 5 \\
        --factors meta_iterations,steps,oracle --steps 50,100,200,400
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hgda_core.adapt import SCRATCH, AdaptConfig, adaptation_lr, draw_for, evaluate, fine_tune, run_adaptation, scratch_builder
from hgda_core.data import Corpus, load_corpora
from hgda_core.embeddings import WordVectors
from hgda_core.io import csv_text, setup_logging, write_text
from hgda_core.metatrain import MetaTrainParams, derive_seed, meta_train
from hgda_core.models import ModelSpec, Tagger, load_model
from stages.common import ROOT, effective_params, load_params
from studies.select_lr import devel_as_target

log = logging.getLogger("studies.budget_study")
OUT = ROOT / "reports" / "budget_study.csv"
FACTORS = ("meta_iterations", "steps", "vectors", "sampling", "oracle")
FIELDS = ("factor", "level", "held_out", "method", "corpus", "shots", "repetition", "split", "steps",
          "meta_iterations", "precision", "recall", "f1")  # fmt: skip
STUDY_METHODS = ("hgda", "hgda_nes", "metaner", "transfer", SCRATCH)


def random_like(vectors: WordVectors, seed: int) -> WordVectors:
    """Random vectors of the same vocabulary and shape, drawn from a normal matched to the
    mean and std of the word rows (``<pad>`` and ``<unk>`` stay zero)."""
    words = vectors.vectors[2:]
    rng = np.random.default_rng(seed)
    noise = rng.normal(float(words.mean()), float(words.std()), size=vectors.vectors.shape).astype(np.float32)
    noise[:2] = 0.0
    return WordVectors(vectors.words, noise)


class Study:
    """What every factor needs: params, corpora, the vectors and the checkpoints' folder."""

    def __init__(self, params: dict[str, Any], draws: int, root: Path = ROOT) -> None:
        self.params, self.root = effective_params(params), root
        self.config = dataclasses.replace(AdaptConfig(**self.params["adapt"]), repeats=draws)
        self.spec = ModelSpec.from_params(self.params["model"])
        self.vectors = WordVectors.load(root / "data" / "embeddings" / "vectors.npz")
        self.corpora = load_corpora(root / "data" / "processed", self.params["corpora"])
        self.seed = int(self.params["seed"])
        self.rows: list[dict] = []

    def targets(self, held_out: str) -> list[Corpus]:
        """The held-out domain's corpora with their devel split in the scored place."""
        return [devel_as_target(c) for c in self.corpora.values() if c.domain == held_out]

    def run_dir(self, held_out: str, method: str) -> Path:
        return self.root / "models" / "metatrain" / self.spec.encoder / f"{held_out}-{method}"

    def checkpoint(self, held_out: str, method: str, k: int, suffix: str = "", vectors: WordVectors | None = None) -> Tagger:
        path = self.run_dir(held_out, method) / f"K{k}{suffix}.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no checkpoint; dvc pull, or dvc repro metatrain with {held_out} held "
                                    f"out, method {method} and K = {k} in params.yaml, first")  # fmt: skip
        return load_model(path, vectors or self.vectors)

    def adapt(self, factor: str, level: str, held_out: str, corpus: Corpus, k: int, method: str, base: Tagger | None,
              config: AdaptConfig, meta_iterations: str = "", scratch=None) -> None:  # fmt: skip
        """Rows of ``method`` from ``base`` (or ``scratch``) on the draws, scored on the target devel."""
        pretrained = {} if base is None else {method: base}
        build = scratch or scratch_builder(self.spec.factory(self.vectors, pretrained=False))
        scored = run_adaptation(corpus, k, [method], pretrained, config, self.seed, "", build, self.spec.encoder)
        for row in scored:
            self.rows.append({"factor": factor, "level": level, "held_out": held_out, "method": method,
                              "corpus": corpus.name, "shots": k, "repetition": row["repetition"], "split": "devel",
                              "steps": config.steps, "meta_iterations": meta_iterations,
                              **{m: row[m] for m in ("precision", "recall", "f1")}})  # fmt: skip

    # -- the factors ----------------------------------------------------------------------
    def meta_iterations(self, held_out: str, k: int, methods: list[str]) -> None:
        for method in (m for m in methods if m != SCRATCH):
            snapshots = sorted(self.run_dir(held_out, method).glob(f"K{k}-it*.pt"),
                               key=lambda p: int(re.search(r"-it(\d+)\.pt$", p.name).group(1)))  # type: ignore[union-attr]
            for path in [*snapshots, None]:
                if path is None:
                    level, base = "final", self.checkpoint(held_out, method, k)
                    metrics = (self.root / "reports" / "metatrain" / self.spec.encoder / f"{held_out}-{method}" / "metrics.json")
                    iterations = str(_best_iteration(metrics, k))
                else:
                    iterations = re.search(r"-it(\d+)\.pt$", path.name).group(1)  # type: ignore[union-attr]
                    level, base = f"it{iterations}", load_model(path, self.vectors)
                for corpus in self.targets(held_out):
                    self.adapt("meta_iterations", level, held_out, corpus, k, method, base, self.config, iterations)

    def steps(self, held_out: str, k: int, methods: list[str], steps: list[int]) -> None:
        for n in steps:
            config = dataclasses.replace(self.config, steps=n)
            for method in methods:
                base = None if method == SCRATCH else self.checkpoint(held_out, method, k)
                for corpus in self.targets(held_out):
                    self.adapt("steps", str(n), held_out, corpus, k, method, base, config)

    def sampling(self, held_out: str, k: int, methods: list[str]) -> None:
        for sampling in ("uniform", "with_entity"):
            config = dataclasses.replace(self.config, sampling=sampling)
            for method in methods:
                base = None if method == SCRATCH else self.checkpoint(held_out, method, k)
                for corpus in self.targets(held_out):
                    self.adapt("sampling", sampling, held_out, corpus, k, method, base, config)

    def vectors_factor(self, held_out: str, k: int, meta: MetaTrainParams) -> None:
        """fastText vs random vectors: transfer and hgda meta-trained on each, and scratch."""
        noise = random_like(self.vectors, derive_seed(self.seed, "study-random-vectors"))
        for label, table in (("fastText", self.vectors), ("random", noise)):
            factory = self.spec.factory(table)
            for method in ("transfer", "hgda", SCRATCH):
                if method == SCRATCH:
                    base = None
                elif label == "fastText":
                    base = self.checkpoint(held_out, method, k)
                else:
                    path = self.root / "models" / "study" / f"random-{held_out}-{method}-K{k}.pt"
                    if path.is_file():
                        base = load_model(path, table)
                    else:
                        base, result = meta_train(self.corpora, factory, held_out, method, k, meta, self.seed)
                        base.save(path, held_out=held_out, method=method, shots=k)
                        log.info("random vectors %s-%s K=%d: %d iterations (%s)", held_out, method, k,
                                 result.iterations, result.stopped_by)  # fmt: skip
                scratch = scratch_builder(self.spec.factory(table, pretrained=False))
                for corpus in self.targets(held_out):
                    self.adapt("vectors", label, held_out, corpus, k, method, base, self.config, scratch=scratch)

    def oracle(self, held_out: str, k: int, methods: list[str], every: int) -> None:
        """Test F1 of the best step (scored every ``every`` steps) vs at the last step: an ORACLE."""
        lr = adaptation_lr(self.config, k)
        for corpus in (c for c in self.corpora.values() if c.domain == held_out):
            test = corpus["test"]
            for method in methods:
                base = None if method == SCRATCH else self.checkpoint(held_out, method, k)
                build = scratch_builder(self.spec.factory(self.vectors, pretrained=False))
                prepared = None
                for r in range(self.config.repeats):
                    sentences = [corpus["train"][i] for i in draw_for(corpus, k, r, self.seed, self.config.sampling)]
                    start = build(derive_seed(self.seed, "adapt-scratch", corpus.name, k, r)) if base is None else base
                    if prepared is None:
                        prepared = start.prepare(test, self.config.eval_batch_size)
                    trajectory: list[tuple[int, dict]] = []

                    def score(step: int, model: Tagger) -> None:
                        if step % every == 0 or step == self.config.steps:
                            trajectory.append((step, evaluate(model, corpus.domain, test, self.config.eval_batch_size, prepared)))

                    fine_tune(start, corpus.domain, sentences, self.config.steps, lr, self.config.momentum,
                              self.config.weight_decay, self.config.grad_clip,
                              derive_seed(self.seed, "adapt-tune", corpus.name, k, r), on_step=score)  # fmt: skip
                    best_step, best = max(trajectory, key=lambda item: item[1]["f1"])
                    for level, step, scores in (("protocol (last step)", self.config.steps, trajectory[-1][1]),
                                                ("ORACLE: best step on test", best_step, best)):  # fmt: skip
                        self.rows.append({"factor": "oracle", "level": level, "held_out": held_out, "method": method,
                                          "corpus": corpus.name, "shots": k, "repetition": r, "split": "test",
                                          "steps": step, "meta_iterations": "",
                                          **{m: round(scores[m], 6) for m in ("precision", "recall", "f1")}})  # fmt: skip


def _best_iteration(metrics_path: Path, k: int) -> int | str:
    if not metrics_path.is_file():
        return ""
    return json.loads(metrics_path.read_text(encoding="utf-8")).get(f"K{k}", {}).get("best_iteration", "")


def write_rows(rows: list[dict], done: set[tuple[str, str, str, str]], out: Path = OUT) -> None:
    """Replace the earlier rows of each (factor, held-out, K, method) in ``done`` by ``rows``,
    atomically: a run of some methods keeps the other methods' rows of the same factor."""
    kept = []
    if out.is_file():
        with open(out, newline="", encoding="utf-8") as fh:
            kept = [r for r in csv.DictReader(fh) if (r["factor"], r["held_out"], r["shots"], r["method"]) not in done]
    write_text(out, csv_text(kept + rows, FIELDS))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held-out", required=True, help="comma-separated held-out domains")
    parser.add_argument("--shots", default="10,50")
    parser.add_argument("--methods", default=",".join(STUDY_METHODS))
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--factors", default="meta_iterations,steps,oracle", help=f"comma-separated, of {', '.join(FACTORS)}")
    parser.add_argument("--steps", default="", help="fine-tuning steps of the steps factor (default: adapt.steps ×½, ×1, ×2)")
    parser.add_argument("--vectors-k", type=int, default=10)
    parser.add_argument("--sampling-k", default="5,10")
    parser.add_argument("--oracle-every", type=int, default=10)
    parser.add_argument("--out", default=str(OUT.relative_to(ROOT)), help="the CSV the rows go to")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params()
    torch.set_num_threads(params["threads"])
    study = Study(params, args.draws)
    factors = [f for f in args.factors.split(",") if f]
    unknown = sorted(set(factors) - set(FACTORS))
    if unknown:
        raise SystemExit(f"error: unknown factor(s) {', '.join(unknown)}; expected some of {', '.join(FACTORS)}")
    methods = [m for m in args.methods.split(",") if m]
    chosen = study.config.steps
    steps = [int(s) for s in args.steps.split(",") if s] or sorted({max(1, chosen // 2), chosen, 2 * chosen})
    meta = MetaTrainParams(**{k: v for k, v in study.params["meta"].items() if k not in ("held_out", "methods", "workers")})
    meta.snapshots = ()
    for held_out in args.held_out.split(","):
        for k in (int(x) for x in args.shots.split(",")):
            for factor in factors:
                if factor == "vectors" and k != args.vectors_k:
                    continue
                if factor == "sampling" and k not in {int(x) for x in args.sampling_k.split(",")}:
                    continue
                started, study.rows = time.perf_counter(), []
                if factor == "meta_iterations":
                    study.meta_iterations(held_out, k, methods)
                elif factor == "steps":
                    study.steps(held_out, k, methods, steps)
                elif factor == "sampling":
                    study.sampling(held_out, k, methods)
                elif factor == "vectors":
                    study.vectors_factor(held_out, k, meta)
                else:
                    study.oracle(held_out, k, methods, args.oracle_every)
                ran = set(methods) | {row["method"] for row in study.rows}
                write_rows(study.rows, {(factor, held_out, str(k), m) for m in ran}, ROOT / args.out)
                log.info("%s, %s held out, K=%d: %d rows in %.0f s", factor, held_out, k, len(study.rows),
                         time.perf_counter() - started)  # fmt: skip


if __name__ == "__main__":
    main()
