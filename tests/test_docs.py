"""Every command and path the README and docs/*.md show exists.

Convention: a fenced block marked ```bash is *runnable* — each of its commands must run as
written from the repository root; other fences (```text, ```yaml, plain ```) are
illustrations and are not checked. For every runnable command this checks that its
program exists — a Makefile target for ``make``, an importable module for ``python -m``,
a subcommand of the installed DVC for ``dvc``, a subcommand of ``hgda_core/cli.py`` for
``hgda``, else an executable in ``.venv/bin`` or on ``PATH`` — without running it. Every
relative Markdown link, and every code span naming a repository path (``reports/table3.md``,
``params.yaml``), must exist in the working tree or be an output or dependency declared in
``dvc.yaml``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "studies" / "README.md"]
SHELL_BUILTINS = {".", "source", "cd", "export", "echo", "set", "true"}
TOP_LEVEL_FILES = {"Makefile", "dvc.yaml", "dvc.lock", "params.yaml", "requirements.txt", "pyproject.toml"}
PATH_SUFFIXES = (".md", ".py", ".yaml", ".yml", ".csv", ".tsv", ".json", ".lock", ".txt", ".toml", ".png", ".tex")
PENDING: dict[str, str] = {}
"""Paths that a change under way adds: missing, they xfail with this reason instead of failing."""

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


@dataclass(frozen=True)
class Problem:
    what: str
    pending: str = ""  # the PENDING reason when the problem is a path still being written


# --------------------------------------------------------------------------- extraction


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return [(m.group(1).strip().split(" ")[0], m.group(2)) for m in FENCE.finditer(text)]


def prose(text: str) -> str:
    """The text without its fenced blocks."""
    return FENCE.sub("", text)


def commands(block: str) -> list[list[str]]:
    """The simple commands of a shell block: continuation lines joined, comments dropped,
    split at ``&&``, ``||``, ``;`` and ``|``; leading ``VAR=value`` assignments removed."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set(";&|"):
                while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
                    words.pop(0)
                if words:
                    out.append(words)
                words = []
            else:
                words.append(token)
    return out


def repo_paths(doc: Path, text: str) -> list[str]:
    """Repository paths the prose names: relative links (resolved from ``doc``'s folder) and
    code spans that look like a path in this repository (relative to the root)."""
    paths = []
    body = prose(text)
    for target in LINK.findall(body):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        target = target.split("#")[0]
        paths.append((doc.parent / target).resolve().relative_to(ROOT).as_posix() if target else "")
    tops = top_level_names()
    for span in SPAN.findall(body):
        span = span.strip().rstrip(".,;:")
        if " " in span or any(c in span for c in "<>*…=$") or span.startswith(("/", "../", "-")):
            continue
        for candidate in brace_expand(span):
            first = candidate.split("/")[0]
            if candidate in TOP_LEVEL_FILES or ("/" in candidate and first in tops) or (
                "/" not in candidate and candidate.endswith(PATH_SUFFIXES) and (ROOT / candidate).exists()
            ):  # fmt: skip
                paths.append(candidate)
    return [p for p in dict.fromkeys(paths) if p]


def brace_expand(text: str) -> list[str]:
    """``reports/table2.{md,tex}`` → both paths (one brace group)."""
    match = re.search(r"\{([^{}]*)\}", text)
    if not match:
        return [text]
    return [text[: match.start()] + part + text[match.end() :] for part in match.group(1).split(",")]


# --------------------------------------------------------------------------- what exists


@cache
def top_level_names() -> frozenset[str]:
    """First components of repository paths: top-level folders of the tree and of dvc.yaml."""
    names = {p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in {".git", ".venv"}}
    return frozenset(names | {p.split("/")[0] for p in dvc_paths()})


@cache
def dvc_paths() -> frozenset[str]:
    """Every dep and out that dvc.yaml declares (``${...}`` templates cut at the variable)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    found = set()
    for stage in stages.values():
        for key in ("deps", "outs", "metrics", "plots"):
            for entry in stage.get(key, []) or []:
                path = next(iter(entry)) if isinstance(entry, dict) else str(entry)
                found.add(path.split("${")[0].rstrip("/"))
    return frozenset(p for p in found if p)


def path_exists(path: str) -> bool:
    path = path.rstrip("/")
    if (ROOT / path).exists():
        return True
    # Produced by the pipeline: a declared dep/out, inside one, or a folder holding one.
    return any(path == p or path.startswith(p + "/") or p.startswith(path + "/") for p in dvc_paths())


@cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return frozenset(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.M))


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@cache
def dvc_parser() -> argparse.ArgumentParser:
    from dvc.cli.parser import get_main_parser

    return get_main_parser()


def hgda_parser() -> argparse.ArgumentParser | None:
    if not (ROOT / "hgda_core" / "cli.py").is_file():
        return None
    from hgda_core.cli import build_parser

    return build_parser()


CLUSTER_PROGRAMS = {"sbatch"}
"""Programs of a SLURM cluster that the README shows for one (README "Running on more machines")."""


def executable(name: str) -> bool:
    path = os.pathsep.join([str(ROOT / ".venv" / "bin"), os.environ.get("PATH", "")])
    return shutil.which(name, path=path) is not None


def check_command(words: list[str]) -> Problem | None:
    """Why ``words`` would not run as written (its program is missing), or None."""
    program, args = words[0], words[1:]
    positional = [a for a in args if not a.startswith("-")]
    shown = shlex.join(words)
    if program in SHELL_BUILTINS:
        if program in {".", "source"} and not (args and (ROOT / args[0]).exists()):
            return Problem(f"`{shown}`: {args[0] if args else '(nothing)'} does not exist")
        return None
    if program == "make":
        missing = [t for t in positional if t not in make_targets()]
        return Problem(f"`{shown}`: no Makefile target {', '.join(missing)}") if missing else None
    if program in {"python", "python3"} and args[:1] == ["-m"]:
        module = args[1] if len(args) > 1 else ""
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        return None if found else Problem(f"`{shown}`: no module {module!r}")
    if program == "dvc":
        parser, chain = dvc_parser(), []
        for word in positional:
            subs = subcommands(parser)
            if not subs:
                break
            if word not in subs:
                return Problem(f"`{shown}`: `dvc {' '.join([*chain, word])}` is not a command of the installed dvc")
            parser, chain = subs[word], [*chain, word]
        return None
    if program == "hgda":
        parser = hgda_parser()
        if parser is None:
            return Problem(f"`{shown}`: hgda_core/cli.py does not exist", pending="hgda_core/cli.py (issue 14)")
        sub = positional[0] if positional else ""
        return None if sub in subcommands(parser) else Problem(f"`{shown}`: no hgda subcommand {sub!r}")
    if program in CLUSTER_PROGRAMS:  # what they run is a command of this list, checked on its own
        wrapped = args[args.index("--wrap") + 1] if "--wrap" in args else ""
        inner = [w for w in shlex.split(wrapped) if "=" not in w.split("/")[0]]
        return check_command(inner) if inner else None
    if not executable(program):
        return Problem(f"`{shown}`: no program {program!r} in .venv/bin or on PATH")
    return None


def problems(doc: Path) -> list[Problem]:
    text = doc.read_text(encoding="utf-8")
    found = []
    for language, body in fenced_blocks(text):
        if language == "bash":
            found += [p for words in commands(body) if (p := check_command(words))]
    for path in repo_paths(doc, text):
        if not path_exists(path):
            found.append(Problem(f"path {path} does not exist", pending=PENDING.get(path.rstrip("/"), "")))
    return found


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_command_and_path_exists(doc: Path) -> None:
    found = problems(doc)
    hard = [p.what for p in found if not p.pending]
    assert not hard, f"{doc.relative_to(ROOT)}:\n  " + "\n  ".join(hard)
    pending = sorted({p.pending for p in found if p.pending})
    if pending:
        pytest.xfail("; ".join(pending))


def test_the_docs_exist_and_have_runnable_blocks() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in DOCS}
    assert {"README.md", "docs/method.md", "docs/reproducing.md"} <= names
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    runnable = [cmd[:2] for lang, body in fenced_blocks(readme) if lang == "bash" for cmd in commands(body)]
    assert ["make", "repro"] in runnable and ["make", "test"] in runnable
    assert "reports/README.md" in repo_paths(ROOT / "README.md", readme)


def test_reports_readme_links_back_to_the_top_readme() -> None:
    index = ROOT / "reports" / "README.md"
    assert "README.md" in repo_paths(index, index.read_text(encoding="utf-8"))


NARRATION = re.compile(
    r"\b(previous|this|that|a later|the next|a second|an earlier) session|\bsessions?\b|"
    r"\b(first|second|fresh) checkout|\bin the gaps of\b|\bwhile this one\b|\bwas run beside\b",
    re.I,
)


@pytest.mark.parametrize(
    "path",
    [*DOCS, *sorted((ROOT / "reports").glob("*.md")), ROOT / "hgda_core" / "report" / "__init__.py",
     ROOT / "hgda_core" / "report" / "compare.py", ROOT / "hgda_core" / "report" / "tables.py"],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)  # fmt: skip
def test_no_narration_of_how_the_work_was_done(path: Path) -> None:
    """The docs and generated reports state what a user runs and gets, not who ran what when."""
    hits = [m.group(0) for m in NARRATION.finditer(path.read_text(encoding="utf-8"))]
    assert not hits, f"{path.relative_to(ROOT)}: {hits}"


# --------------------------------------------------------------------------- the checker can fail


def test_checker_reports_broken_links_paths_and_commands(tmp_path: Path) -> None:
    doc = ROOT / "docs" / "_probe.md"  # resolved like a file in docs/, never written
    text = (
        "See [the tables](../reports/no_such_table.md) and `reports/missing.csv`, "
        "[ok](../README.md), `params.yaml`, [web](https://example.org).\n\n"
        "```bash\nmake no-such-target\npython -m stages.no_such_stage\ndvc exp frobnicate\n"
        "no-such-program-xyz --help\nmake test && dvc exp show\n```\n\n"
        "```text\nnot-checked-at-all\n```\n"
    )
    paths = repo_paths(doc, text)
    assert "reports/no_such_table.md" in paths and "reports/missing.csv" in paths
    assert "README.md" in paths and "params.yaml" in paths
    assert not any(path_exists(p) for p in ("reports/no_such_table.md", "reports/missing.csv"))
    cmds = [words for lang, body in fenced_blocks(text) if lang == "bash" for words in commands(body)]
    assert [bool(check_command(words)) for words in cmds] == [True, True, True, True, False, False]
    assert ["not-checked-at-all"] not in cmds


def test_command_splitting() -> None:
    block = "HGDA_CORPORA_MIRROR=/m make repro   # comment\n. .venv/bin/activate\ndvc exp run \\\n  -S shots=10 -S 'a=[b,c]'\n"
    assert commands(block) == [["make", "repro"], [".", ".venv/bin/activate"],
                               ["dvc", "exp", "run", "-S", "shots=10", "-S", "a=[b,c]"]]  # fmt: skip
    assert brace_expand("reports/table2.{md,tex}") == ["reports/table2.md", "reports/table2.tex"]
