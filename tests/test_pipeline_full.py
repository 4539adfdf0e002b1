"""The whole pipeline through DVC on generated fixture corpora: `dvc exp run -S shots=K`.

A copy of the repository gets a mirror of three synthetic corpora (one per domain,
written in BioBERT's format with their own checksum manifest) and small params (tiny
model, a few iterations, two draws). `dvc exp run -S shots=3` must then run every stage
for K = 3 alone, write the expected rows of `reports/scores.csv`, the report, and show
its metrics in `dvc exp show`. Offline; slow (about a minute).
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import synthetic_corpus
from tests.test_pipeline_prepare import copy_repo, dvc, needs_git

DOMAINS = {"Disease": ["syn-disease"], "Gene": ["syn-gene"], "Species": ["syn-species"]}


def write_mirror(repo: Path) -> Path:
    """Three synthetic corpora as <name>/<split>.tsv in the copy's fixture mirror (where
    the tests' environment points HGDA_CORPORA_MIRROR), added to its checksum manifest."""
    mirror = repo / "tests" / "resources" / "mirror"
    lines = []
    for i, (domain, (name,)) in enumerate(DOMAINS.items()):
        corpus = synthetic_corpus(name, domain, n=24, seed=i)
        for split, part in corpus.splits.items():
            text = "".join(
                "".join(f"{tok}\t{tag}\n" for tok, tag in zip(s.tokens, s.tags)) + "\n" for s in part
            )
            path = mirror / name / f"{split}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            lines.append(f"{name}\t{split}\tsha256\t{hashlib.sha256(text.encode()).hexdigest()}\n")
    with open(repo / "hgda_core" / "resources" / "checksums.tsv", "a") as fh:
        fh.writelines(lines)
    return mirror


def small_params(repo: Path, mirror: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params.update(shots=[2, 5], corpora=[c for cs in DOMAINS.values() for c in cs], domains=DOMAINS)
    params["download"].update(url="")
    params["embed"].update(dim=8, epochs=1)
    params["model"].update(char_dim=4, char_cnn=4, char_lstm=4, hidden=6)
    params["meta"].update(held_out=list(DOMAINS), methods=["hgda", "transfer"], tasks_per_batch=2,
                          max_iterations=3, eval_every=3, val_tasks=2)
    params["adapt"].update(methods=["hgda", "transfer", "scratch"], repeats=2, steps=2, workers=1)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
@needs_git
def test_dvc_exp_run_with_one_k_runs_the_whole_pipeline_for_that_k(tmp_path: Path, tiny_bert_dir: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    small_params(repo, write_mirror(repo))
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fixture")

    out = dvc(repo, "exp", "run", "-S", "shots=3")
    assert "Running stage 'metatrain@bilstm-Gene-hgda'" in out and "Running stage 'report'" in out

    with open(repo / "reports" / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 2 * 3  # corpora × repetitions × methods
    assert {r["shots"] for r in rows} == {"3"}
    assert {r["method"] for r in rows} == {"hgda", "transfer", "scratch"}
    # Paired draws: every method of a (corpus, repetition) saw the same sentences.
    by_draw: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        by_draw.setdefault((r["corpus"], r["repetition"]), set()).add(r["sample"])
    assert all(len(samples) == 1 for samples in by_draw.values())
    saved = {p.name for p in (repo / "models" / "metatrain" / "bilstm" / "Disease-hgda").iterdir()}
    assert "K3.pt" in saved and all(name.startswith("K3") for name in saved)  # K3.pt and its snapshots
    assert (repo / "reports" / "table3.md").read_text().count("| HGDA") >= 1

    shown = json.loads(dvc(repo, "exp", "show", "--json"))
    assert "reports/adapt_metrics.json" in json.dumps(shown)
    status = dvc(repo, "status")
    assert "changed" not in status

    # The BERT rows (HGDA*, BERT fine-tuning) land beside the BiLSTM rows: the documented
    # command of the README with a tiny local BERT folder; the bert_cpu profile applies.
    out = dvc(repo, "exp", "run", "-S", "shots=3", "-S", "model.encoder=bert", "-S", f"model.bert.model_path={tiny_bert_dir}",
              "-S", "model.bert.max_length=32", "-S", "model.bert.label=tiny BERT", "-S", "meta.methods=[hgda]",
              "-S", "adapt.methods=[hgda,bert_finetune]", "-S", "bert_cpu.meta.max_iterations=2")
    assert "Running stage 'metatrain@bert-Gene-hgda'" in out and "Running stage 'download'" not in out
    with open(repo / "reports" / "scores.csv", newline="") as fh:
        both = list(csv.DictReader(fh))
    assert [r for r in both if r["encoder"] == "bilstm"] == rows  # kept verbatim
    bert = [r for r in both if r["encoder"] == "bert"]
    assert len(bert) == 3 * 5 * 2  # corpora × the profile's 5 draws × methods
    assert {r["model"] for r in bert} == {"tiny BERT"}
    assert (repo / "models" / "metatrain" / "bert" / "Gene-hgda" / "K3.pt").is_file()
    table = (repo / "reports" / "table3.md").read_text()
    assert "| HGDA* |" in table and "| BERT fine-tuning* |" in table and "| HGDA |" in table
    assert "seeded subset" not in table  # the fixture test splits are smaller than the profile's 300
