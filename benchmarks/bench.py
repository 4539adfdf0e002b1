"""Benchmark of the BiLSTM-CRF tagger's training and decoding (not a DVC stage).

Measures on this machine, one torch thread, and writes the section ``bilstm`` of
``reports/bench.json`` (other sections are kept) and its table ``reports/bench.md``; ``--encoder bert`` writes
``bert_<device>`` instead (:func:`bert_figures`).  Every figure is measured for the
project's kernels (``new``) and for the plain implementation they replace
(``reference``: packed-sequence LSTMs, pytorch-crf's loss and Viterbi, the test split
collated at each evaluation; :meth:`hgda_core.models.Tagger.set_kernels`) in the same
run, with their ratio, and as model-FLOP utilisation — FLOPs counted on the reference
(:mod:`hgda_core.benchmark`) per second, as a share of the single-thread rate of a
large fp32 matrix product measured in the same run (``matmul_gflops.best``):

* ``decode``: Viterbi tags of 2,048 source-corpus test sentences at batch 256;
* ``fine_tune``: per K of the paper, one cell of the adaptation grid — 5 starting
  models × ``--draws`` draws of K NCBI-disease train sentences, each fine-tuned for
  ``adapt.steps`` steps as :func:`hgda_core.adapt.fine_tune` does (model copy, fresh
  decoder, optimiser set-up included) — as sentence-steps per second and seconds per step;
* ``meta_iteration``: one iteration of Algorithm 1 (m = 8 tasks, one inner step) at
  K = 5, 10 and 50, as tasks per second;
* the two implementations' adapted weights and tags are checked equal on the way.

Run from the repository root after ``dvc repro embed``: ``python -m benchmarks.bench``
(``python -m benchmarks.bench --encoder bert [--device cuda]`` for BERT).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import platform
import time
from typing import Callable

import torch

from hgda_core.adapt import AdaptConfig, adaptation_lr, draw_for, fine_tune
from hgda_core.benchmark import bench_markdown, count_flops, matmul_rate, timed, utilisation
from hgda_core.data import load_corpora
from hgda_core.embeddings import WordVectors
from hgda_core.io import setup_logging, write_json, write_text
from hgda_core.meta import MetaConfig, MetaLearner
from hgda_core.metatrain import source_domains
from hgda_core.models import ModelSpec, Tagger, build_tagger
from hgda_core.sampler import TaskSampler
from benchmarks import bench_tagging
from stages.common import ROOT, load_params

log = logging.getLogger("benchmarks.bench")
BENCH = ROOT / "reports" / "bench.json"
KERNELS = ("reference", "new")


def _as(model: Tagger, kernels: str) -> Tagger:
    return model.set_kernels("reference" if kernels == "reference" else "fast")


def _pair(seconds: dict[str, float], flops: float, rate: float, work: float, unit: str) -> dict:
    """One figure for both implementations: time, throughput, utilisation, the ratio."""
    out: dict = {"flops": int(flops)}
    for kernels in KERNELS:
        out[kernels] = {
            "seconds": round(seconds[kernels], 4),
            unit: round(work / seconds[kernels], 2),
            "gflops": round(flops / seconds[kernels] / 1e9, 1),
            "utilisation": round(utilisation(flops, seconds[kernels], rate), 3),
        }
    out["speedup"] = round(seconds["reference"] / seconds["new"], 2)
    return out


def decode_figures(model: Tagger, sentences: list, domain: str, rate: float, repeat: int) -> dict:
    """Viterbi decoding at batch 256: reference (collate + packed LSTMs + pytorch-crf) vs
    new (the test set collated once, as the adaptation grid reuses it)."""
    prepared = model.prepare(sentences, 256)
    seconds = {
        "reference": timed(lambda: _as(model, "reference").predict(sentences, domain, 256), repeat),
        "new": timed(lambda: _as(model, "new").predict(prepared, domain, 256), repeat),
    }
    tags = {k: _as(model, k).predict(sentences, domain, 256) for k in KERNELS}
    flops = count_flops(lambda: _as(model, "reference").predict(sentences, domain, 256))
    out = _pair(seconds, flops, rate, len(sentences), "sentences_per_s")
    out["collate_seconds"] = round(timed(lambda: model.prepare(sentences, 256), repeat), 4)
    out["identical_tags"] = tags["reference"] == tags["new"]
    out["setting"] = {"sentences": len(sentences), "batch": 256,
                      "mean_length": round(sum(map(len, sentences)) / len(sentences), 1)}
    return out


def fine_tune_cell(starts: list[Tagger], corpus, k: int, config: AdaptConfig, draws: int, rate: float) -> dict:
    """One (corpus, K) cell of the adaptation grid: every starting model fine-tuned on
    the same ``draws`` draws, by both implementations (interleaved, so that a change of
    the machine's load hits both alike)."""
    lr = adaptation_lr(config, k)
    seconds = {kernels: 0.0 for kernels in KERNELS}
    largest = 0.0
    for r in range(draws):
        sentences = [corpus["train"][i] for i in draw_for(corpus, k, r, 13, config.sampling)]
        for i, start in enumerate(starts):
            adapted = {}
            for kernels in KERNELS:
                base = _as(start, kernels)
                began = time.perf_counter()
                adapted[kernels] = fine_tune(base, corpus.domain, sentences, config.steps, lr, config.momentum,
                                             config.weight_decay, config.grad_clip, seed=100 * r + i)
                seconds[kernels] += time.perf_counter() - began
            a, b = adapted["new"].trainable_state(), adapted["reference"].trainable_state()
            largest = max(largest, max(float((a[n] - b[n]).norm() / b[n].norm().clamp_min(1e-12)) for n in a))
    sentences = [corpus["train"][i] for i in draw_for(corpus, k, 0, 13, config.sampling)]
    model = _as(copy.deepcopy(starts[0]), "reference")
    model.add_decoder(corpus.domain)
    batch = model.task_batch(sentences, [], corpus.domain)
    step_flops = count_flops(lambda: model(batch, batch.support, None)[0].backward())
    runs = draws * len(starts)
    out = _pair(seconds, step_flops * config.steps * runs, rate, k * config.steps * runs, "sentence_steps_per_s")
    for kernels in KERNELS:
        out[kernels]["seconds_per_step"] = round(seconds[kernels] / (config.steps * runs), 4)
    out["step_flops"] = step_flops
    out["max_relative_weight_difference"] = largest  # per tensor: ||new − ref|| / ||ref||
    out["setting"] = {"starting_models": len(starts), "draws": draws, "steps": config.steps, "tokens": int(batch.inputs.mask.sum())}
    return out


def meta_iteration(make_model: Callable[[], Tagger], sources: dict, k: int, rate: float, repeat: int) -> dict:
    """One iteration of Algorithm 1 (m = 8, one inner step) by both implementations."""
    tasks = TaskSampler(sources, "train", k, seed=k).fixed_tasks(8)
    learners = {}
    for kernels in KERNELS:
        model = _as(make_model(), kernels)
        learners[kernels] = MetaLearner(model, MetaConfig(), torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-2))
    seconds = {kernels: timed(lambda: learners[kernels].step(tasks), repeat) for kernels in KERNELS}
    flops = count_flops(lambda: learners["reference"].step(tasks))
    out = _pair(seconds, flops, rate, len(tasks), "tasks_per_s")
    out["setting"] = {"K": k, "m": 8, "adaptation_steps": 1}
    return out


def real_cell(params: dict, corpora: dict, vectors: WordVectors, corpus_name: str, k: int) -> dict:
    """One real cell of the adaptation grid (``adapt`` params: every method, every draw),
    run by both implementations from the meta-trained checkpoints: wall time, per-method
    mean F1 and the largest per-row F1 difference.  The reference collates the test split
    at every evaluation, as the plain implementation did."""
    from hgda_core import adapt as adapt_mod
    from hgda_core.adapt import SCRATCH, run_adaptation, scratch_builder
    from hgda_core.models import load_model

    config = AdaptConfig(**params["adapt"])
    corpus = corpora[corpus_name]
    spec = ModelSpec.from_params(params["model"])
    paths = {m: ROOT / "models" / "metatrain" / "bilstm" / f"{corpus.domain}-{m}" / f"K{k}.pt" for m in config.methods if m != SCRATCH}
    missing = [str(p.relative_to(ROOT)) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)}: no checkpoint; run the meta-training stages for K = {k} first")
    rows, seconds = {}, {}
    for kernels in KERNELS:
        pretrained = {m: _as(load_model(p, vectors), kernels) for m, p in paths.items()}
        build = scratch_builder(spec.factory(vectors))
        real_evaluate = adapt_mod.evaluate
        if kernels == "reference":  # collate at every evaluation
            adapt_mod.evaluate = lambda model, domain, test, batch_size=256, prepared=None: real_evaluate(model, domain, test, batch_size)
        try:
            began = time.perf_counter()
            rows[kernels] = run_adaptation(corpus, k, config.methods, pretrained, config, params["seed"], "bench",
                                           lambda seed: _as(build(seed), kernels))
            seconds[kernels] = time.perf_counter() - began
        finally:
            adapt_mod.evaluate = real_evaluate
        log.info("%s cell %s K=%d: %.0f s", kernels, corpus_name, k, seconds[kernels])
    means = {}
    for method in config.methods:
        f1 = {kernels: [r["f1"] for r in rows[kernels] if r["method"] == method] for kernels in KERNELS}
        means[method] = {kernels: round(sum(v) / len(v), 4) for kernels, v in f1.items()}
        means[method]["difference"] = round(means[method]["new"] - means[method]["reference"], 4)
    row_diff = max(abs(a["f1"] - b["f1"]) for a, b in zip(rows["new"], rows["reference"]))
    return {"corpus": corpus_name, "K": k, "runs": len(rows["new"]), "steps": config.steps,
            "seconds": {kernels: round(v, 1) for kernels, v in seconds.items()},
            "speedup": round(seconds["reference"] / seconds["new"], 2), "mean_f1": means,
            "max_row_f1_difference": round(row_diff, 4),
            "identical_rows": all(abs(a["f1"] - b["f1"]) == 0 for a, b in zip(rows["new"], rows["reference"]))}


def pipeline_figures() -> dict:
    """Wall-time figures of the last real run, read from the records the stages keep."""
    import csv

    out: dict = {}
    runs = sorted((ROOT / "reports" / "metatrain" / "bilstm").glob("*/metrics.json"))
    if runs:
        seconds = [v["seconds"] for p in runs for v in json.loads(p.read_text()).values()]
        out["metatrain_models"] = len(seconds)
        out["metatrain_sum_of_model_seconds"] = round(sum(seconds), 1)
    scores = ROOT / "reports" / "scores.csv"
    if scores.is_file():
        with open(scores, newline="") as fh:
            rows = list(csv.DictReader(fh))
        out["adapt_rows"] = len(rows)
        out["adapt_sum_of_row_seconds"] = round(sum(float(r["seconds"]) for r in rows), 1)
    return out


def bert_figures(params: dict, corpora: dict, device_name: str, repeat: int) -> dict:
    """BERT (``model.bert``) on one device: meta-training tasks/s at K = 10, m = 8, one
    inner step; inference sentences/s at batch 64; seconds per fine-tuning step of K = 10."""
    from hgda_core.adapt import draw_for, fine_tune
    from hgda_core.device import resolve_device, use_amp

    device = resolve_device(device_name)
    spec = ModelSpec.from_params({**params["model"], "encoder": "bert"})
    sources = source_domains(corpora, "Disease")
    domains = sorted(sources)
    torch.manual_seed(0)
    model = spec.factory(None)(domains, domains).to(device)
    model.amp = use_amp(device, params.get("amp", True))
    out: dict = {"model": model.encoder.label, "device": str(device), "amp": model.amp,
                 "threads": torch.get_num_threads() if device.type == "cpu" else None}  # fmt: skip
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    k, m = 10, 8
    tasks = TaskSampler(sources, "train", k, seed=0).fixed_tasks(m)
    learner = MetaLearner(model, MetaConfig(alpha=1e-3, beta=1e-3), torch.optim.SGD(model.parameters(), lr=1e-3))
    step_s = timed(lambda: (learner.step(tasks), sync()), repeat)
    out["metatrain_tasks_per_s"] = round(m / step_s, 3)
    test = [s for cs in sources.values() for c in cs for s in c["test"]][: 512 if device.type == "cuda" else 128]
    predict_s = timed(lambda: (model.predict(test, domains[0], batch_size=64), sync()), repeat)
    out["inference_sentences_per_s"] = round(len(test) / predict_s, 1)
    corpus = corpora["NCBI-disease"]
    sentences = [corpus["train"][i] for i in draw_for(corpus, k, 0, 13)]
    steps = 5
    tune_s = timed(lambda: (fine_tune(model, "Disease", sentences, steps, 1e-3, seed=0), sync()), repeat)
    out["fine_tune_step_k10_s"] = round(tune_s / steps, 3)
    out["setting"] = {"K": k, "m": m, "adaptation_steps": 1, "inference_batch": 64, "inference_sentences": len(test),
                      "max_length": spec.bert_config().max_length}  # fmt: skip
    log.info("BERT on %s: %.2f meta-training tasks/s, %.1f sentences/s inference, %.2f s per fine-tuning step",
             device, out["metatrain_tasks_per_s"], out["inference_sentences_per_s"], out["fine_tune_step_k10_s"])  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--draws", type=int, default=2, help="draws per cell of the fine-tuning figures")
    parser.add_argument("--real-cell", metavar="CORPUS:K", help="only run one real cell of the adaptation grid by "
                        "both implementations (needs that K's meta-trained checkpoints), e.g. NCBI-disease:10")
    parser.add_argument("--encoder", choices=("bilstm", "bert"), default="bilstm")
    parser.add_argument("--device", default="auto", help="BERT only: auto | cpu | cuda")
    args = parser.parse_args()
    setup_logging()
    params = load_params()
    torch.set_num_threads(params["threads"])
    corpora = load_corpora(ROOT / "data" / "processed", params["corpora"])
    if args.encoder == "bert":
        figures = bert_figures(params, corpora, args.device, args.repeat)
        bench = json.loads(BENCH.read_text()) if BENCH.exists() else {}
        bench[f"bert_{figures['device'].split(':')[0]}"] = figures
        write_json(BENCH, bench)
        return
    vectors = WordVectors.load(ROOT / "data" / "embeddings" / "vectors.npz")
    encoder_config = ModelSpec.from_params(params["model"]).bilstm
    sources = source_domains(corpora, "Disease")
    domains = sorted(sources)

    def make_model(seed: int = 0) -> Tagger:
        torch.manual_seed(seed)
        return build_tagger(vectors, encoder_config, domains, domains)

    bench = json.loads(BENCH.read_text()) if BENCH.exists() else {}
    if args.real_cell:  # this figure alone, beside the others already in bench.json
        name, k = args.real_cell.split(":")
        bench.setdefault("bilstm", {})["real_cell"] = real_cell(params, corpora, vectors, name, int(k))
        log.info("real cell: %s", bench["bilstm"]["real_cell"])
        write_json(BENCH, bench)
        if "decode" in bench["bilstm"]:
            write_text(BENCH.with_suffix(".md"), bench_markdown(bench["bilstm"]))
        return
    rate = matmul_rate()
    results: dict = {"machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
                     "threads": torch.get_num_threads(), "matmul_gflops": rate}
    log.info("matrix product: %.1f GFLOP/s on one thread", rate["best"])
    test = [s for cs in sources.values() for c in cs for s in c["test"]][:2048]
    results["decode"] = decode_figures(make_model(), test, domains[0], rate["best"], args.repeat)
    log.info("decode: %s", results["decode"])
    config = AdaptConfig(**params["adapt"])
    corpus = corpora["NCBI-disease"]
    starts = [make_model(seed) for seed in range(5)]  # four "meta-trained" starts and scratch: same cost
    results["fine_tune"] = {}
    for k in (5, 10, 20, 50):
        results["fine_tune"][f"K{k}"] = fine_tune_cell(starts, corpus, k, config, args.draws, rate["best"])
        log.info("fine-tuning K=%d: %s", k, results["fine_tune"][f"K{k}"])
    results["meta_iteration"] = {}
    for k in (5, 10, 50):
        results["meta_iteration"][f"K{k}"] = meta_iteration(make_model, sources, k, rate["best"], max(1, args.repeat - 1))
        log.info("meta-training K=%d: %s", k, results["meta_iteration"][f"K{k}"])
    results["last_run_records"] = pipeline_figures()
    if "real_cell" in bench.get("bilstm", {}):
        results["real_cell"] = bench["bilstm"]["real_cell"]  # kept from the run that made it

    bench["bilstm"] = results
    write_json(BENCH, bench)
    write_text(BENCH.with_suffix(".md"), bench_markdown(results))
    bench_tagging.run()  # section "tagging": hgda tag throughput vs decoding, hgda adapt wall time


if __name__ == "__main__":
    main()
