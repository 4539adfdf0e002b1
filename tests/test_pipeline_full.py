"""The whole pipeline through DVC on generated fixture corpora, and its round trip through
the DVC remote: `dvc repro` → `dvc push` → `git clone` → `dvc pull` → nothing to run.

A copy of the repository gets a mirror of three synthetic corpora (one per domain,
written in BioBERT's format with their own checksum manifest) and small params (tiny
model, a few iterations, two draws).  `HGDA_JOBS=2 dvc repro` runs every stage with a
pool of two workers; `dvc push` fills the copy's own `dvcstore/` (the project's remote,
tracked in git); a `git clone` of the copy then pulls, re-makes the corpora from the
mirror, files the pulled checkpoints in its cell store, and finds every stage up to date.
An experiment on the adaptation's sampling, run through submitit's local executor,
re-runs the adaptation and the report only.  Offline; slow (about two minutes).
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
from tests.test_pipeline_prepare import copy_repo, environment, needs_git, run

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


def small_params(repo: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params.update(shots=[2, 3], corpora=[c for cs in DOMAINS.values() for c in cs], domains=DOMAINS)
    params["download"].update(url="")
    params["embed"].update(dim=8, epochs=1)
    params["model"].update(char_dim=4, char_cnn=4, char_lstm=4, hidden=6)
    params["meta"].update(held_out=list(DOMAINS), methods=["hgda", "transfer"], tasks_per_batch=2,
                          max_iterations=3, eval_every=3, val_tasks=2)
    params["adapt"].update(methods=["hgda", "transfer", "scratch"], repeats=2, steps=2)
    params["release"].update(shots=2)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def dvc_in(repo: Path, *args: str, **env: str) -> str:
    """A DVC command in ``repo`` with extra environment; its output (it must succeed)."""
    done = subprocess.run(["dvc", *args], cwd=repo, env={**environment(repo), **env},
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def read_scores(repo: Path) -> list[dict]:
    with open(repo / "reports" / "scores.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
@needs_git
def test_repro_push_clone_pull_is_up_to_date_and_an_experiment_reruns_only_the_adaptation(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    write_mirror(repo)
    small_params(repo)
    git = lambda where, *a: subprocess.run(  # noqa: E731
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=where, check=True, capture_output=True, text=True)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "fixture")

    out = dvc_in(repo, "repro", HGDA_JOBS="2")
    assert {"download", "prepare", "embed", "metatrain", "adapt", "release", "report"} <= stages_run(out)
    assert "metatrain: 12 cell(s) on local, 2 worker(s)" in out
    rows = read_scores(repo)
    assert len(rows) == 3 * 2 * 2 * 3  # corpora × K × draws × methods
    # Paired draws: every method of a (corpus, K, repetition) saw the same sentences.
    by_draw: dict[tuple[str, str, str], set[str]] = {}
    for r in rows:
        by_draw.setdefault((r["corpus"], r["shots"], r["repetition"]), set()).add(r["sample"])
    assert all(len(samples) == 1 for samples in by_draw.values())
    assert sorted(p.name for p in (repo / "models" / "metatrain" / "bilstm" / "Disease-hgda").iterdir()) == ["K2.pt", "K3.pt"]
    assert (repo / "reports" / "table3.md").read_text().count("| HGDA") >= 1
    assert "changed" not in dvc_in(repo, "status")

    out = dvc_in(repo, "push")
    stored = [p for p in (repo / "dvcstore").rglob("*") if p.is_file()]
    assert stored and "pushed" in out
    corpus_bytes = (repo / "data" / "raw" / "syn-gene" / "train.tsv").read_bytes()
    assert all(p.read_bytes() != corpus_bytes for p in stored)  # the corpora are never pushed
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results and their store")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    dvc_in(clone, "pull", "--allow-missing")
    assert (clone / "models" / "metatrain" / "bilstm" / "Gene-transfer" / "K3.pt").is_file()
    out = dvc_in(clone, "repro", "embed")  # the corpora again, from the mirror; the vectors are pulled
    assert stages_run(out) == {"download", "prepare"}
    planned = run(clone, "-m", "stages.metatrain", "--plan")
    assert planned.returncode == 0, planned.stderr
    assert "metatrain: 12 cells named by params.yaml, 12 in the cell store, 0 to train" in planned.stdout
    assert dvc_in(clone, "status").strip().endswith("Data and pipelines are up to date.")
    assert stages_run(dvc_in(clone, "repro")) == set()
    assert read_scores(clone) == rows

    git(clone, "config", "user.name", "t")
    git(clone, "config", "user.email", "t@t")
    out = dvc_in(clone, "exp", "run", "-S", "adapt.sampling=with_entity",
                 HGDA_EXECUTOR="submitit-local", HGDA_SLURM_LOGS=str(tmp_path / "submitit"))
    assert stages_run(out) == {"adapt", "report"}
    assert "adapt: 18 cell(s) on submitit-local (submitit), one job array" in out
    again = read_scores(clone)
    assert len(again) == len(rows) and {r["sampling"] for r in again} == {"with_entity"}
    assert all(int(r["sample_entities"]) >= int(r["shots"]) for r in again)
    shown = json.loads(dvc_in(clone, "exp", "show", "--json"))
    assert "reports/adapt_metrics.json" in json.dumps(shown)
