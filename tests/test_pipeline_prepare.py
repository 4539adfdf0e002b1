"""The ``download`` and ``prepare`` stages, end to end through DVC, on the fixture corpora.

Each test works on a copy of the repository (tracked and untracked-but-not-ignored files,
without data/, models/, reports/, dvc.lock and the second pipeline, studies/) whose
checksums manifest is replaced by the fixture's and whose params.yaml lists the fixture
corpora; the mirror is set with ``HGDA_CORPORA_MIRROR``.  DVC runs as ``sys.executable -m dvc``; no network is used.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from stages.download import ROOT as STAGE_ROOT
from stages.download import DownloadParams, download_params, resolve_mirror
from stages.common import domain_of

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT / "tests" / "resources" / "mirror"
SKIPPED_TOP = {"data", "models", "reports", ".venv", "studies", "cells", "dvcstore"}  # studies/: the second pipeline (its own dvc.yaml)
FIXTURE_DOMAINS = {"Disease": ["toy-disease"], "Species": ["toy_species"]}

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def copy_repo(dest: Path) -> Path:
    """Copy the working tree's tracked and untracked, non-ignored files to ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = ROOT / rel
        if rel.split("/")[0] in SKIPPED_TOP or rel == "dvc.lock" or not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    shutil.copy2(MIRROR / "checksums.tsv", dest / "hgda_core" / "resources" / "checksums.tsv")
    return dest


def set_params(repo: Path, corpora: list[str], url: str = "", **domains: list[str]) -> None:
    """Rewrite the copy's params.yaml with the given corpora, domains and archive URL."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["corpora"] = corpora
    params["domains"] = domains or FIXTURE_DOMAINS
    params["download"]["url"] = url
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def environment(repo: Path) -> dict[str, str]:
    """The environment of a stage or DVC run: this interpreter first on PATH, the mirror."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HGDA_CORPORA_MIRROR"] = str(repo / "tests" / "resources" / "mirror")
    env["DVC_NO_ANALYTICS"] = "1"
    env["DVC_SITE_CACHE_DIR"] = str(repo.parent / "dvc-site-cache")
    return env


def run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` in the copy."""
    return subprocess.run(
        [sys.executable, *args], cwd=repo, env=environment(repo),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def dvc(repo: Path, *args: str) -> str:
    """Run a DVC command in the copy; return its combined output (it must succeed)."""
    done = run(repo, "-m", "dvc", *args)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def table_rows(markdown: str) -> list[str]:
    """The body rows of the (only) Markdown table."""
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    return rows[2:]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/datasets.tar.gz"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


# --------------------------------------------------------------------------- quick checks


def test_domain_of_maps_listed_corpora() -> None:
    domains = {"Disease": ["a", "b"], "Drug": ["c", "d"]}
    assert domain_of(["c", "a"], domains) == {"c": "Drug", "a": "Disease"}


def test_corpus_without_domain_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="corpus e is in no domain"):
        domain_of(["a", "e"], {"Disease": ["a"]})
    with pytest.raises(ValueError, match="corpus a is in several domains: Disease, Drug"):
        domain_of(["a"], {"Disease": ["a"], "Drug": ["a"]})


def test_mirror_env_var_overrides_param_and_paths_are_repo_relative() -> None:
    assert resolve_mirror("../shared/corpora", {}) == STAGE_ROOT / "../shared/corpora"
    assert resolve_mirror("../shared/corpora", {"HGDA_CORPORA_MIRROR": "/m"}) == Path("/m")
    assert resolve_mirror("x", {"HGDA_CORPORA_MIRROR": "rel/m"}) == STAGE_ROOT / "rel/m"
    assert resolve_mirror("../shared/corpora", {"HGDA_CORPORA_MIRROR": ""}) is None
    assert resolve_mirror(None, {}) is None


def test_download_params_of_the_committed_params_yaml() -> None:
    corpora, params = download_params(ROOT)
    assert "NCBI-disease" in corpora
    assert isinstance(params, DownloadParams) and params.timeout_s > 0


@needs_git
def test_download_stage_exits_with_one_line_error(repo: Path) -> None:
    manifest = repo / "hgda_core" / "resources" / "checksums.tsv"
    with manifest.open("a") as fh:
        fh.writelines(
            f"toy-absent\t{s}\tgit-sha1\t{'0' * 40}\n" for s in ("train", "devel", "test")
        )
    url = closed_port_url()
    set_params(repo, ["toy-disease", "toy-absent"], url=url)
    done = run(repo, "-m", "stages.download")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    mirror = repo / "tests" / "resources" / "mirror"
    assert done.stderr.splitlines()[-1] == (
        f"error: toy-absent/train.tsv: not found in any source; tried mirror {mirror} "
        f"(no folder toy-absent), archive {url} (URLError: [Errno 111] Connection refused)"
    )


@needs_git
def test_prepare_stage_rejects_corpus_without_domain(repo: Path) -> None:
    set_params(repo, ["toy-disease", "toy_species"], Disease=["toy-disease"])
    done = run(repo, "-m", "stages.prepare")
    assert done.returncode == 1
    assert (
        done.stderr.strip() == "error: corpus toy_species is in no domain of params.yaml `domains`"
    )


# --------------------------------------------------------------------------- end to end


@needs_git
@pytest.mark.slow
def test_dvc_repro_prepare_end_to_end(repo: Path) -> None:
    set_params(repo, ["toy-disease", "toy_species"])
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)

    output = dvc(repo, "repro", "prepare")
    assert "Running stage 'download'" in output and "Running stage 'prepare'" in output
    for name in ("toy-disease", "toy_species"):
        assert (repo / "data" / "raw" / name / "train.tsv").is_file()
        assert (repo / "data" / "processed" / f"{name}.pkl").is_file()
    markdown = (repo / "reports" / "table2.md").read_text()
    rows = table_rows(markdown)
    assert [r.split(" | ")[0] for r in rows] == ["| toy-disease", "| toy_species"]
    assert r"toy\_species" in (repo / "reports" / "table2.tex").read_text()
    stats = json.loads((repo / "reports" / "corpus_stats.json").read_text())
    assert stats["corpora"]["toy-disease"]["total"]["sentences"] == 6
    # stdout only: DVC warns on stderr about the metrics of stages not run in this copy.
    shown = run(repo, "-m", "dvc", "metrics", "show", "--json", "reports/corpus_stats.json")
    assert shown.returncode == 0, shown.stderr
    metrics = json.loads(shown.stdout)
    assert _find(metrics, "corpora", "toy_species", "total", "unique_tokens") == 12

    output = dvc(repo, "repro", "prepare")
    assert "Running stage" not in output
    assert "didn't change" in output or "up to date" in output

    set_params(repo, ["toy-disease"])
    output = dvc(repo, "repro", "prepare")
    assert "Running stage 'download'" in output and "Running stage 'prepare'" in output
    assert sorted(p.name for p in (repo / "data" / "raw").iterdir()) == ["toy-disease"]
    assert sorted(p.name for p in (repo / "data" / "processed").iterdir()) == ["toy-disease.pkl"]
    assert len(table_rows((repo / "reports" / "table2.md").read_text())) == 1


def _find(tree: Any, *keys: str) -> Any:
    """The value at ``keys`` inside DVC's nested metrics JSON, wherever it is rooted."""
    if isinstance(tree, dict):
        node = tree
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            return node
        for value in tree.values():
            found = _find(value, *keys)
            if found is not None:
                return found
    return None
