"""Benchmark of the BiLSTM-CRF tagger and the meta-training step (not a DVC stage).

Measures on this machine and writes the section ``bilstm`` of ``reports/bench.json``
(other sections of that file are kept); ``--encoder bert`` writes ``bert_<device>``
instead (:func:`bert_figures`):

* decode throughput (sentences/s) of the BiLSTM-CRF at batch 256 on real sentences;
* meta-training throughput (tasks/s) at K = 10, m = 8, one inner step;
* the speed-up of :class:`hgda_core.meta.MetaLearner` over a naive reference loop on
  identical math (deep-copy the model per task, separate support and query passes,
  inner steps, restore), with a check that both give the same update to 1e-5.

Run from the repository root after ``dvc repro embed``: ``python -m stages.bench``
(``python -m stages.bench --encoder bert [--device cuda]`` for BERT).
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

from hgda_core.data import load_corpora
from hgda_core.embeddings import WordVectors
from hgda_core.hardness import task_weights
from hgda_core.io import setup_logging, write_json
from hgda_core.meta import MetaConfig, MetaLearner, TaskResult
from hgda_core.metatrain import source_domains
from hgda_core.models import BiLSTMConfig, ModelSpec, Tagger, build_tagger, param_group
from hgda_core.sampler import Task, TaskSampler
from stages.common import ROOT, load_params

log = logging.getLogger("stages.bench")
BENCH = ROOT / "reports" / "bench.json"


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Best-of-``repeat`` wall time of ``fn`` in seconds (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def naive_task_result(model: Tagger, task: Task, config: MetaConfig) -> TaskResult:
    """The yardstick: deep-copy the model, adapt the copy in place, read its gradients.

    Same math as :meth:`MetaLearner.task_result` (first order), written the plain way:
    separate passes for the support (L^lab) and query (L^cls) sets.
    """
    clone = copy.deepcopy(model)
    params = {n: p for n, p in clone.named_parameters() if p.requires_grad
              and (not n.startswith("decoders.") or n.startswith(f"decoders.{task.domain}."))}

    def losses_and_grads() -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        support = clone.task_batch(task.support, [], task.domain)
        query = clone.task_batch([], task.query, task.domain)
        lab, _ = clone(support, support.support, None)
        _, cls = clone(query, None, query.query, 1.0)
        grads = torch.autograd.grad(lab + config.lam * cls, list(params.values()), allow_unused=True)
        out = {}
        for (name, p), g in zip(params.items(), grads):
            g = torch.zeros_like(p) if g is None else g
            out[name] = g / config.lam if param_group(name) == "omega" else g
        return lab, cls, out

    for _ in range(config.adaptation_steps):
        _, _, grads = losses_and_grads()
        with torch.no_grad():
            for name, p in params.items():
                p -= config.beta * grads[name]
    lab, cls, grads = losses_and_grads()
    del clone
    return TaskResult(lab.item(), cls.item(), grads)


def naive_step(learner: MetaLearner, tasks: list[Task]) -> None:
    """Algorithm 1 with :func:`naive_task_result` in place of the functional core."""
    learner.model.train()
    results = [naive_task_result(learner.model, t, learner.config) for t in tasks]
    lab = torch.tensor([r.lab for r in results], dtype=torch.float64)
    cls = torch.tensor([r.cls for r in results], dtype=torch.float64)
    learner.apply_update(results, task_weights(lab, cls, learner.config.lam, learner.config.weighting))


def compare_updates(make_model: Callable[[], Tagger], tasks: list[Task], config: MetaConfig) -> float:
    """Largest absolute difference between the two implementations' updated weights."""
    finals = []
    for step in ("functional", "naive"):
        model = make_model()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=config.alpha)
        learner = MetaLearner(model, config, opt, grad_clip=None)
        learner.step(tasks) if step == "functional" else naive_step(learner, tasks)
        finals.append(model.trainable_state())
    return max(float((finals[0][k] - finals[1][k]).abs().max()) for k in finals[0])


def adaptation_seconds(corpora: dict, vectors: WordVectors, repeat: int) -> dict:
    """Seconds per adaptation repetition (fine-tune + full test evaluation), NCBI-disease, K = 10."""
    from hgda_core.adapt import AdaptConfig, adaptation_lr, draw_for, evaluate, fine_tune
    from hgda_core.data import load_corpus
    from hgda_core.models import load_tagger

    path = ROOT / "models" / "metatrain" / "bilstm" / "Disease-hgda" / "K10.pt"
    if not path.is_file():
        return {"adapt_note": f"{path.relative_to(ROOT)} missing: run metatrain with K = 10 first"}
    corpus = corpora.get("NCBI-disease") or load_corpus(ROOT / "data" / "processed" / "NCBI-disease.pkl")
    model, config = load_tagger(path, vectors), AdaptConfig(**load_params()["adapt"])
    sentences = [corpus["train"][i] for i in draw_for(corpus, 10, 0, 13)]
    times = {}

    def tune():
        times["model"] = fine_tune(model, "Disease", sentences, config.steps, adaptation_lr(config, 10), seed=0)

    tune_s = timed(tune, repeat)
    eval_s = timed(lambda: evaluate(times["model"], "Disease", corpus["test"], config.eval_batch_size), repeat)
    return {
        "adapt_ncbi_k10_fine_tune_s": round(tune_s, 3),
        "adapt_ncbi_k10_test_eval_s": round(eval_s, 3),
        "adapt_ncbi_k10_seconds_per_repetition": round(tune_s + eval_s, 3),
        "adapt_setting": {"steps": config.steps, "test_sentences": len(corpus["test"])},
    }


def per_k_costs(sources: dict, make_model: Callable[[], Tagger], corpus, repeat: int) -> dict:
    """Seconds of one meta-training iteration (m = 8, one inner step) and of one
    fine-tuning run (adapt.steps) for each K of the paper, to size a full `dvc repro`."""
    from hgda_core.adapt import AdaptConfig, adaptation_lr, draw_for, fine_tune

    config = AdaptConfig(**load_params()["adapt"])
    out = {}
    for k in (5, 10, 20, 50):
        model = make_model()
        tasks = TaskSampler(sources, "train", k, seed=k).fixed_tasks(8)
        learner = MetaLearner(model, MetaConfig(), torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-2))
        step_s = timed(lambda: learner.step(tasks), max(1, repeat - 1))
        sentences = [corpus["train"][i] for i in draw_for(corpus, k, 0, 13)]
        tune_s = timed(lambda: fine_tune(model, "Disease", sentences, config.steps, adaptation_lr(config, k)), max(1, repeat - 1))
        out[f"K{k}"] = {"meta_iteration_s": round(step_s, 3), "fine_tune_s": round(tune_s, 3)}
        log.info("K=%d: meta-training iteration %.2f s, fine-tuning %.2f s", k, step_s, tune_s)
    return out


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

    def make_model(dropout: float | None = None) -> Tagger:
        torch.manual_seed(0)
        cfg = encoder_config if dropout is None else BiLSTMConfig(**{**encoder_config.__dict__, "dropout": dropout})
        return build_tagger(vectors, cfg, domains, domains)

    results: dict = {"machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)", "threads": torch.get_num_threads()}

    # Decode throughput at batch 256 on real test sentences of the source corpora.
    model = make_model()
    test = [s for cs in sources.values() for c in cs for s in c["test"]][:2048]
    decode_s = timed(lambda: model.predict(test, domains[0], batch_size=256), args.repeat)
    results["decode_sentences_per_s"] = round(len(test) / decode_s, 1)
    torch.set_num_threads(2)  # the same decode on both cores, for the record
    results["decode_sentences_per_s_2_threads"] = round(len(test) / timed(lambda: model.predict(test, domains[0], batch_size=256), args.repeat), 1)
    torch.set_num_threads(params["threads"])
    results["decode_mean_sentence_length"] = round(sum(map(len, test)) / len(test), 1)
    log.info("decode: %.0f sentences/s", results["decode_sentences_per_s"])

    # Meta-training throughput at K = 10, m = 8, one inner step; functional vs naive.
    k, m = 10, 8
    tasks = TaskSampler(sources, "train", k, seed=0).fixed_tasks(m)
    config = MetaConfig(alpha=1e-2, beta=1e-2, adaptation_steps=1)
    learner = MetaLearner(model, config, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-2))
    fast_s = timed(lambda: learner.step(tasks), args.repeat)
    naive_s = timed(lambda: naive_step(learner, tasks), args.repeat)
    results["metatrain_tasks_per_s"] = round(m / fast_s, 2)
    results["metatrain_naive_tasks_per_s"] = round(m / naive_s, 2)
    results["metatrain_speedup_vs_naive"] = round(naive_s / fast_s, 2)
    results["metatrain_setting"] = {"K": k, "m": m, "adaptation_steps": 1}
    results["max_abs_update_difference"] = compare_updates(lambda: make_model(dropout=0.0), tasks, config)
    results["same_update_within_1e-5"] = results["max_abs_update_difference"] < 1e-5
    log.info("meta-training: %.2f tasks/s, naive %.2f tasks/s, speed-up %.2fx, max |diff| %.2e",
             results["metatrain_tasks_per_s"], results["metatrain_naive_tasks_per_s"],
             results["metatrain_speedup_vs_naive"], results["max_abs_update_difference"])

    results.update(adaptation_seconds(corpora, vectors, args.repeat))
    log.info("adaptation: %s s per repetition (NCBI-disease, K = 10)", results.get("adapt_ncbi_k10_seconds_per_repetition"))
    if "NCBI-disease" in corpora:
        results["per_k"] = per_k_costs(sources, make_model, corpora["NCBI-disease"], args.repeat)
    results["last_run_records"] = pipeline_figures()

    bench = json.loads(BENCH.read_text()) if BENCH.exists() else {}
    bench["bilstm"] = results
    write_json(BENCH, bench)


if __name__ == "__main__":
    main()
