"""The cell store (content keys, atomic cells) and the executor chosen by the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hgda_core.cellstore import SPEC_FILE, CellStore, canonical_json, cell_key, files_digest
from hgda_core.executor import CellsFailed, ExecutorSettings, run_cells
from hgda_core.grid import DRAWS_PER_BLOCK, draw_blocks


# --- keys and fingerprints ----------------------------------------------------------------


def test_a_key_is_the_hash_of_the_canonical_spec() -> None:
    import hashlib

    spec = {"k": 10, "meta": {"lam": 1.0, "steps": 1}, "method": "hgda"}
    reordered = {"method": "hgda", "meta": {"steps": 1, "lam": 1.0}, "k": 10}
    assert canonical_json(spec) == '{"k":10,"meta":{"lam":1.0,"steps":1},"method":"hgda"}'
    assert cell_key(spec) == cell_key(reordered) == hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:24]
    assert cell_key({**spec, "k": 5}) != cell_key(spec)
    assert cell_key({**spec, "meta": {"lam": 1.0, "steps": 2}}) != cell_key(spec)


def test_files_digest_follows_bytes_and_names_not_order_or_place(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder / "sub").mkdir(parents=True)
        (tmp_path / folder / "x.pkl").write_bytes(b"one")
        (tmp_path / folder / "sub" / "y.py").write_bytes(b"two")
    a, b = tmp_path / "a", tmp_path / "b"
    assert files_digest([a / "x.pkl", a / "sub"], root=a) == files_digest([b / "sub", b / "x.pkl"], root=b)
    (b / "x.pkl").write_bytes(b"One")
    assert files_digest([a / "x.pkl"], root=a) != files_digest([b / "x.pkl"], root=b)
    (b / "x.pkl").rename(b / "z.pkl")
    (b / "z.pkl").write_bytes(b"one")
    assert files_digest([a / "x.pkl"], root=a) != files_digest([b / "z.pkl"], root=b)
    with pytest.raises(FileNotFoundError, match=r"missing\.pkl: no such file or folder to fingerprint"):
        files_digest([a / "missing.pkl"])


# --- the store ----------------------------------------------------------------------------


def test_a_cell_is_there_whole_or_not_at_all(tmp_path: Path) -> None:
    store = CellStore(tmp_path)
    spec = {"kind": "adapt", "k": 5}
    staged = store.staging("adapt", cell_key(spec))
    (staged / "rows.csv").write_text("a\n1\n")
    assert not store.has("adapt", cell_key(spec))  # still in staging
    final = store.commit("adapt", spec, staged)
    assert final == store.path("adapt", cell_key(spec)) and not staged.exists()
    assert store.has("adapt", cell_key(spec)) and store.spec("adapt", cell_key(spec)) == spec
    assert json.loads((final / SPEC_FILE).read_text()) == spec
    # a second worker that finishes the same cell leaves the first copy
    again = store.staging("adapt", cell_key(spec))
    (again / "rows.csv").write_text("other\n")
    store.commit("adapt", spec, again)
    assert (final / "rows.csv").read_text() == "a\n1\n" and not again.exists()
    # a leftover folder without a spec (an interrupted copy) is replaced
    spec2 = {"kind": "adapt", "k": 6}
    store.path("adapt", cell_key(spec2)).mkdir()
    staged = store.staging("adapt", cell_key(spec2))
    (staged / "rows.csv").write_text("b\n")
    store.commit("adapt", spec2, staged)
    assert (store.path("adapt", cell_key(spec2)) / "rows.csv").read_text() == "b\n"


def test_adopt_links_files_and_writes_bytes(tmp_path: Path) -> None:
    source = tmp_path / "K4.pt"
    source.write_bytes(b"weights")
    store = CellStore(tmp_path / "store")
    spec = {"kind": "metatrain", "k": 4}
    cell = store.adopt("metatrain", spec, {"model.pt": source, "metrics.json": b"{}\n"})
    assert (cell / "model.pt").read_bytes() == b"weights" and (cell / "metrics.json").read_bytes() == b"{}\n"
    assert os.stat(cell / "model.pt").st_ino == os.stat(source).st_ino  # linked, not copied
    assert store.has("metatrain", cell_key(spec))
    assert not list((tmp_path / "store" / "metatrain").glob(".*.tmp"))


def test_draws_are_cut_in_blocks() -> None:
    assert DRAWS_PER_BLOCK == 5
    assert draw_blocks(20) == [(0, 1, 2, 3, 4), (5, 6, 7, 8, 9), (10, 11, 12, 13, 14), (15, 16, 17, 18, 19)]
    assert draw_blocks(7) == [(0, 1, 2, 3, 4), (5, 6)]
    assert draw_blocks(2) == [(0, 1)]


# --- the executor -------------------------------------------------------------------------


def test_settings_come_from_the_environment() -> None:
    local = ExecutorSettings.from_env({})
    assert (local.kind, local.jobs) == ("local", os.cpu_count() or 1)
    assert ExecutorSettings.from_env({"HGDA_JOBS": "3"}).jobs == 3
    slurm = ExecutorSettings.from_env({
        "HGDA_EXECUTOR": "slurm", "HGDA_SLURM_PARTITION": "cpu", "HGDA_SLURM_ACCOUNT": "lab", "HGDA_SLURM_TIME_MIN": "90",
        "HGDA_SLURM_MEM_GB": "4", "HGDA_SLURM_PARALLELISM": "16", "HGDA_SLURM_GPUS": "1", "HGDA_SLURM_LOGS": "/shared/logs",
    })
    assert slurm.kind == "slurm" and slurm.logs == Path("/shared/logs")
    assert slurm.slurm == {"timeout_min": 90, "mem_gb": 4, "slurm_array_parallelism": 16, "gpus_per_node": 1,
                           "slurm_partition": "cpu", "slurm_account": "lab"}
    assert ExecutorSettings.from_env({"HGDA_EXECUTOR": "slurm"}).slurm == {
        "timeout_min": 360, "mem_gb": 8, "slurm_array_parallelism": 64}
    with pytest.raises(ValueError, match="HGDA_EXECUTOR must be one of local, slurm, submitit-local, got 'dask'"):
        ExecutorSettings.from_env({"HGDA_EXECUTOR": "dask"})
    with pytest.raises(ValueError, match="HGDA_JOBS must be an integer >= 1, got '0'"):
        ExecutorSettings.from_env({"HGDA_JOBS": "0"})
    with pytest.raises(ValueError, match="HGDA_SLURM_MEM_GB must be an integer >= 1, got 'lots'"):
        ExecutorSettings.from_env({"HGDA_SLURM_MEM_GB": "lots"})


def _square_or_fail(n: int) -> int:
    if n < 0:
        raise ValueError(f"negative cell {n}")
    return n * n


@pytest.mark.parametrize("kind, jobs", [("local", 1), ("local", 2), ("submitit-local", 1)])
def test_results_come_back_in_cell_order_and_failures_are_named_after_the_others(tmp_path, kind, jobs) -> None:
    settings = ExecutorSettings(kind, jobs, logs=tmp_path / "logs")
    cells = [3, 1, 2]
    assert run_cells(_square_or_fail, cells, [f"cell {c}" for c in cells], settings, progress=False) == [9, 1, 4]
    seen = []
    with pytest.raises(CellsFailed, match=r"1 cell\(s\) failed; first: cell -1: .*negative cell -1") as failed:
        run_cells(_square_or_fail, [2, -1, 3], ["cell 2", "cell -1", "cell 3"], settings,
                  describe=lambda r: seen.append(r) or "", progress=False)
    assert list(failed.value.failures) == ["cell -1"] and sorted(seen) == [4, 9]  # the others finished
    assert run_cells(_square_or_fail, [], [], settings, progress=False) == []


def test_a_finished_cell_logs_its_time_and_description(caplog) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="hgda_core.executor"):
        run_cells(_square_or_fail, [4], ["cell 4"], ExecutorSettings("local", 1), describe=lambda r: f"result {r}",
                  desc="demo", progress=False)
    assert "demo: 1 cell(s) on local, in this process" in caplog.text
    assert "demo: cell 4 done in 0 s, result 16 (1/1)" in caplog.text
