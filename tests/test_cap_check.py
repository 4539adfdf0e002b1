"""studies/cap_check.py: reports/cap_horizon.csv assembled from select_lr's and
budget_study's rows and each run's metrics.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from hgda_core.io import csv_text
from studies.budget_study import FIELDS as STUDY_FIELDS
from studies.cap_check import FIELDS, Part, assemble, checkout, commands, number, read_part
from studies.select_lr import FIELDS as SELECT_FIELDS

ROOT = Path(__file__).resolve().parents[1]


def source(held_out, method, corpus, shots, rep, p, r, f1, steps=100, lr=0.03):
    """A row as select_lr writes it."""
    return dict(zip(SELECT_FIELDS, map(str, ("bilstm", method, held_out, corpus, shots, lr, lr, steps, rep, 300,
                                             p, r, f1, ""))))  # fmt: skip


def target(held_out, method, corpus, shots, rep, p, r, f1, steps=100, factor="steps"):
    """A row as budget_study writes it."""
    return dict(zip(STUDY_FIELDS, map(str, (factor, steps, held_out, method, corpus, shots, rep, "devel", steps, "",
                                            p, r, f1))))  # fmt: skip


def run_metrics(stopped_by, iterations, best_iteration, best_val_loss, seconds):
    return {"K10": {"shots": 10, "initial_val_loss": 20.0, "best_val_loss": best_val_loss, "best_iteration": best_iteration,
                    "iterations": iterations, "stopped_by": stopped_by, "seconds": seconds},
            "K5": {"stopped_by": "patience", "iterations": 1, "best_iteration": 1, "best_val_loss": 9.0, "seconds": 1.0}}  # fmt: skip


def test_rows_per_cap_then_run_then_split_with_the_runs_metrics() -> None:
    short = Part(1500, 1500, 0.03,
                 source_rows=[source("Gene", "transfer", "BC5CDR-chem", 10, 0, 0.5, 0.25, 0.333333),
                              source("Gene", "transfer", "BC5CDR-chem", 5, 0, 0.9, 0.9, 0.9),  # another K
                              source("Disease", "hgda", "JNLPBA", 10, 0, 0.9, 0.9, 0.9),  # another run
                              source("Drug", "hgda_nes", "s800", 10, 0, 0.0, 0.0, 0.0),
                              source("Gene", "transfer", "BC5CDR-chem", 10, 1, 1.0, 0.017241, 0.033898)],
                 target_rows=[target("Gene", "transfer", "JNLPBA", 10, 0, 0.340966, 0.23965, 0.281468),
                              target("Gene", "transfer", "JNLPBA", 10, 0, 0.9, 0.9, 0.9, factor="oracle"),
                              target("Drug", "hgda_nes", "BC5CDR-chem", 10, 3, 0.4, 0.2, 0.266667)],
                 metrics={"Gene-transfer": run_metrics("cap", 1500, 1350, 1.4232, 874.8),
                          "Drug-hgda_nes": run_metrics("patience", 1450, 1250, 2.3061, 1001.0)})  # fmt: skip
    long = Part(3000, 3000, 0.03,
                source_rows=[source("Drug", "hgda_nes", "s800", 10, 0, 0.125, 0.006711, 0.012739),
                             source("Gene", "transfer", "BC5CDR-chem", 10, 0, 0.6, 0.3, 0.4)],
                target_rows=[target("Drug", "hgda_nes", "BC5CDR-chem", 10, 3, 0.5, 0.25, 0.333333),
                             target("Gene", "transfer", "JNLPBA", 10, 0, 0.35, 0.25, 0.291667)],
                metrics={"Gene-transfer": run_metrics("patience", 2450, 2250, 1.1036, 1260.6),
                         "Drug-hgda_nes": run_metrics("patience", 2100, 1900, 1.9379, 1348.6)})  # fmt: skip
    rows = assemble(["Gene-transfer", "Drug-hgda_nes"], [short, long], 10)
    gene_1500 = ["Gene", "transfer", "10", "1500", "1500", "cap", "1500", "1350", "1.4232", "874.8"]
    drug_1500 = ["Drug", "hgda_nes", "10", "1500", "1500", "patience", "1450", "1250", "2.3061", "1001"]
    gene_3000 = ["Gene", "transfer", "10", "3000", "3000", "patience", "2450", "2250", "1.1036", "1260.6"]
    drug_3000 = ["Drug", "hgda_nes", "10", "3000", "3000", "patience", "2100", "1900", "1.9379", "1348.6"]
    expected = [
        gene_1500 + ["source_devel", "BC5CDR-chem", "0", "100", "0.03", "0.5", "0.25", "0.333333"],
        gene_1500 + ["source_devel", "BC5CDR-chem", "1", "100", "0.03", "1", "0.017241", "0.033898"],
        gene_1500 + ["target_devel_analysis", "JNLPBA", "0", "100", "0.03", "0.340966", "0.23965", "0.281468"],
        drug_1500 + ["source_devel", "s800", "0", "100", "0.03", "0", "0", "0"],
        drug_1500 + ["target_devel_analysis", "BC5CDR-chem", "3", "100", "0.03", "0.4", "0.2", "0.266667"],
        gene_3000 + ["source_devel", "BC5CDR-chem", "0", "100", "0.03", "0.6", "0.3", "0.4"],
        gene_3000 + ["target_devel_analysis", "JNLPBA", "0", "100", "0.03", "0.35", "0.25", "0.291667"],
        drug_3000 + ["source_devel", "s800", "0", "100", "0.03", "0.125", "0.006711", "0.012739"],
        drug_3000 + ["target_devel_analysis", "BC5CDR-chem", "3", "100", "0.03", "0.5", "0.25", "0.333333"],
    ]
    assert [list(r.values()) for r in rows] == expected
    assert all(list(r) == list(FIELDS) for r in rows)


def test_the_target_rate_is_the_parts_and_the_source_rate_the_rows() -> None:
    part = Part(1500, 2000, 0.1, [source("Gene", "transfer", "s800", 10, 0, 0.5, 0.5, 0.5, steps=30, lr=1e-05)],
                [target("Gene", "transfer", "BC2GM", 10, 0, 0.5, 0.5, 0.5, steps=30)],
                {"Gene-transfer": run_metrics("cap", 1500, 1350, 1.4, 10.0)})  # fmt: skip
    first, second = assemble(["Gene-transfer"], [part], 10)
    assert (first["schedule_horizon"], first["adapt_steps"], first["adapt_default_lr"]) == ("2000", "30", "1e-05")
    assert (second["split"], second["adapt_steps"], second["adapt_default_lr"]) == ("target_devel_analysis", "30", "0.1")
    assert first["seconds"] == "10"


def test_a_run_without_metrics_or_rows_is_an_error() -> None:
    rows = [source("Gene", "transfer", "s800", 10, 0, 0.5, 0.5, 0.5)], [target("Gene", "transfer", "BC2GM", 10, 0, 0.5, 0.5, 0.5)]
    with pytest.raises(ValueError, match="no K10 entry"):
        assemble(["Gene-transfer"], [Part(1500, 1500, 0.03, *rows, metrics={})], 10)
    with pytest.raises(ValueError, match="0 source-devel"):
        assemble(["Gene-transfer"], [Part(1500, 1500, 0.03, [], rows[1], {"Gene-transfer": run_metrics("cap", 1, 1, 1.0, 1.0)})], 10)
    with pytest.raises(ValueError, match="<held_out>-<method>"):
        assemble(["Genetransfer"], [Part(1500, 1500, 0.03, *rows, metrics={})], 10)


def test_numbers_are_written_like_the_committed_table() -> None:
    assert [number(v) for v in ("1.0", "0.0", 1001.0, "874.8", "0.117886", "1e-05", 0.03, "100", "cap", "s800")] == \
        ["1", "0", "1001", "874.8", "0.117886", "1e-05", "0.03", "100", "cap", "s800"]  # fmt: skip


def test_the_committed_table_is_reassembled_from_rows_like_its_inputs() -> None:
    """Split reports/cap_horizon.csv into the CSV rows select_lr and budget_study would have
    written and each run's metrics, then assemble: the same bytes come back."""
    path = ROOT / "reports" / "cap_horizon.csv"
    text = path.read_text(encoding="utf-8")
    with open(path, newline="", encoding="utf-8") as fh:
        committed = list(csv.DictReader(fh))
    assert text.split("\n", 1)[0] == ",".join(FIELDS)
    runs = list(dict.fromkeys(f"{r['held_out']}-{r['method']}" for r in committed))
    parts = []
    for cap in dict.fromkeys(r["max_iterations"] for r in committed):
        mine = [r for r in committed if r["max_iterations"] == cap]
        part = Part(int(cap), int(mine[0]["schedule_horizon"]), float(mine[0]["adapt_default_lr"]))
        for r in mine:
            scores = [float(r[m]) for m in ("precision", "recall", "f1")]
            if r["split"] == "source_devel":
                part.source_rows.append(source(r["held_out"], r["method"], r["corpus"], r["shots"], r["repetition"],
                                               *scores, steps=r["adapt_steps"], lr=float(r["adapt_default_lr"])))  # fmt: skip
            else:
                part.target_rows.append(target(r["held_out"], r["method"], r["corpus"], r["shots"], r["repetition"],
                                               *scores, steps=r["adapt_steps"]))  # fmt: skip
            part.metrics[f"{r['held_out']}-{r['method']}"] = {f"K{r['shots']}": {
                "stopped_by": r["stopped_by"], "iterations": int(r["iterations"]),
                "best_iteration": int(r["best_iteration"]), "best_val_loss": float(r["best_val_loss"]),
                "seconds": float(r["seconds"])}}  # fmt: skip
        parts.append(part)
    assert len(runs) == 4 and [p.max_iterations for p in parts] == [1500, 3000]
    assert csv_text(assemble(runs, parts, 10), FIELDS) == text


def test_the_commands_are_the_documented_ones() -> None:
    argv = commands(3000, "Gene-transfer", 10, 20, 300, {"steps": 100, "default_lr": 0.03})
    assert [" ".join(["python", *a]) for a in argv] == [
        "python -m stages.metatrain",  # in a checkout whose params.yaml names this run only
        "python -m studies.select_lr --method transfer --held-out Gene --k 10 --head-lrs 0.03 --steps 100 "
        "--repeats 20 --devel 300 --out cap3000-source.csv",
        "python -m studies.budget_study --held-out Gene --shots 10 --methods transfer --draws 20 --factors steps "
        "--steps 100 --out cap3000-target.csv",
    ]


def test_the_scratch_checkout_has_the_cap_the_run_the_scripts_and_the_data(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for name, text in {"stages/common.py": "# common\n", "studies/select_lr.py": "# select\n",
                       "studies/dvc.yaml": "stages: {}\n", "data/processed/x.pkl": "x"}.items():  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    params = {"seed": 13, "shots": [5, 10, 20, 50],
              "meta": {"held_out": ["Disease", "Species"], "methods": ["hgda", "hgda_nes"], "max_iterations": 1500}}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    folder = checkout(3000, "Species-hgda_nes", 10, tmp_path / "work", root)
    assert folder == tmp_path / "work" / "cap3000" / "Species-hgda_nes"
    assert yaml.safe_load((folder / "params.yaml").read_text(encoding="utf-8")) == {
        "seed": 13, "shots": [10], "meta": {"held_out": ["Species"], "methods": ["hgda_nes"], "max_iterations": 3000}}
    assert (folder / "stages" / "common.py").read_text() == "# common\n"
    assert (folder / "studies" / "select_lr.py").is_file() and not (folder / "studies" / "dvc.yaml").exists()
    assert (folder / "data").is_symlink() and (folder / "data" / "processed" / "x.pkl").read_text() == "x"
    assert checkout(3000, "Species-hgda_nes", 10, tmp_path / "work", root) == folder  # refreshed, not an error
    assert yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) == params  # the root's untouched


def test_a_caps_measurement_is_read_from_its_runs_checkouts(tmp_path: Path) -> None:
    work = tmp_path / "work"
    rows = {"Gene-transfer": ([source("Gene", "transfer", "s800", 10, 0, 0.5, 0.25, 0.333333)],
                              [target("Gene", "transfer", "BC2GM", 10, 0, 0.2, 0.1, 0.133333)]),
            "Drug-hgda": ([source("Drug", "hgda", "JNLPBA", 10, 0, 1.0, 0.5, 0.666667)],
                          [target("Drug", "hgda", "BC5CDR-chem", 10, 0, 0.0, 0.0, 0.0)])}  # fmt: skip
    for run, (src, tgt) in rows.items():
        folder = work / "cap3000" / run
        (folder / "reports" / "metatrain" / "bilstm" / run).mkdir(parents=True)
        (folder / "params.yaml").write_text(yaml.safe_dump({
            "model": {"encoder": "bilstm"}, "adapt": {"default_lr": 0.03},
            "meta": {"max_iterations": 3000, "schedule_horizon": 0}}), encoding="utf-8")  # fmt: skip
        (folder / "cap3000-source.csv").write_text(csv_text(src, SELECT_FIELDS), encoding="utf-8")
        (folder / "cap3000-target.csv").write_text(csv_text(tgt, STUDY_FIELDS), encoding="utf-8")
        (folder / "reports" / "metatrain" / "bilstm" / run / "metrics.json").write_text(
            json.dumps(run_metrics("patience", 2000, 1800, 1.5, 100.0)), encoding="utf-8")
    part = read_part(3000, ["Gene-transfer", "Drug-hgda"], work)
    assert (part.max_iterations, part.schedule_horizon, part.adapt_default_lr) == (3000, 3000, 0.03)
    assert [r["corpus"] for r in part.source_rows] == ["s800", "JNLPBA"]
    assert [r["corpus"] for r in part.target_rows] == ["BC2GM", "BC5CDR-chem"]
    out = assemble(["Gene-transfer", "Drug-hgda"], [part], 10)
    assert [(r["held_out"], r["split"], r["iterations"], r["precision"]) for r in out] == [
        ("Gene", "source_devel", "2000", "0.5"), ("Gene", "target_devel_analysis", "2000", "0.2"),
        ("Drug", "source_devel", "2000", "1"), ("Drug", "target_devel_analysis", "2000", "0")]
