"""The two pipelines' layout: studies/dvc.yaml re-makes the committed study tables with
modules of studies/, and stages/ holds only the main pipeline's stage scripts."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODULE = re.compile(r"\bpython3? -m ([A-Za-z_][\w.]*)")
MAIN_STAGES = {"download", "prepare", "embed", "metatrain", "adapt", "release", "report"}


def stages_of(path: Path) -> dict[str, dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["stages"]


def commands(stage: dict) -> list[str]:
    cmd = stage["cmd"]
    return list(cmd) if isinstance(cmd, list) else [cmd]


def modules(stage: dict) -> list[str]:
    return [m for cmd in commands(stage) for m in MODULE.findall(cmd)]


def out_paths(stage: dict) -> list[tuple[str, dict]]:
    found = []
    for key in ("outs", "metrics", "plots"):
        for entry in stage.get(key, []) or []:
            found += list(entry.items()) if isinstance(entry, dict) else [(str(entry), {})]
    return found


def test_every_study_stage_runs_modules_of_studies_from_the_root() -> None:
    stages = stages_of(ROOT / "studies" / "dvc.yaml")
    assert stages
    for name, stage in stages.items():
        assert stage.get("wdir") == "..", f"{name}: runs from the repository root (wdir: ..)"
        found = modules(stage)
        assert found, f"{name}: its cmd runs no python -m module"
        for module in found:
            package, _, rest = module.partition(".")
            assert package == "studies" and rest and "." not in rest, f"{name}: {module} is not a studies module"
            assert (ROOT / "studies" / f"{rest}.py").is_file(), f"{name}: studies/{rest}.py does not exist"


def test_every_study_output_is_a_committed_file_and_uncached() -> None:
    outs = []
    for name, stage in stages_of(ROOT / "studies" / "dvc.yaml").items():
        for path, options in out_paths(stage):
            assert (ROOT / path).is_file(), f"{name}: output {path} is not a file of the repository"
            assert (options or {}).get("cache") is False, f"{name}: output {path} is not cache: false"
            outs.append(path)
    assert len(outs) == len(set(outs)), "an output of two stages"
    committed = {"reports/selection/meta_curves.csv", "reports/selection/adapt_budget.csv",
                 "reports/selection/adapt_meta_settings.csv", "reports/selection/README.md",
                 "reports/budget_study.csv", "reports/budget_study.md", "reports/plots/budget_study.png",
                 "reports/own_corpus_bases.json", "reports/lr_selection.csv", "reports/cap_horizon.csv"}  # fmt: skip
    assert committed <= set(outs), f"study tables no stage re-makes: {sorted(committed - set(outs))}"


def test_every_study_dependency_exists_or_is_an_output_of_the_main_pipeline() -> None:
    main = {path.split("${")[0].rstrip("/") for stage in stages_of(ROOT / "dvc.yaml").values()
            for path, _ in out_paths(stage)}  # fmt: skip
    for name, stage in stages_of(ROOT / "studies" / "dvc.yaml").items():
        for dep in stage.get("deps", []):
            made = any(dep == m or m.startswith(dep + "/") or dep.startswith(m + "/") for m in main)
            assert (ROOT / dep).exists() or made, f"{name}: dependency {dep} neither exists nor is made by dvc.yaml"


def test_no_output_of_the_studies_is_an_output_of_the_main_pipeline() -> None:
    main = {path.split("${")[0].rstrip("/") for stage in stages_of(ROOT / "dvc.yaml").values()
            for path, _ in out_paths(stage)}  # fmt: skip
    for name, stage in stages_of(ROOT / "studies" / "dvc.yaml").items():
        for path, _ in out_paths(stage):
            clash = [m for m in main if path == m or path.startswith(m + "/")]
            assert not clash, f"{name}: {path} is also written by the main pipeline ({clash})"


def test_stages_holds_only_the_main_pipelines_stage_scripts() -> None:
    main = stages_of(ROOT / "dvc.yaml")
    assert MAIN_STAGES <= set(main), f"main stages missing: {sorted(MAIN_STAGES - set(main))}"
    run_by_main = {m for stage in main.values() for m in modules(stage)}
    scripts = {f"stages.{p.stem}" for p in (ROOT / "stages").glob("*.py")} - {"stages.__init__", "stages.common"}
    assert scripts <= run_by_main, f"stages/ holds scripts no main stage runs: {sorted(scripts - run_by_main)}"
    assert {f"stages.{name}" for name in MAIN_STAGES} <= scripts
