"""The ``hgda`` command (hgda_core.cli): end to end in a subprocess, and every bad input
giving one line on stderr and leaving nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from hgda_core import cli
from hgda_core.data import Sentence
from hgda_core.embeddings import WordVectors
from hgda_core.models import Tagger
from tests.conftest import synthetic_sentences

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Patients with asthma\nwere given aspirin (10 mg/kg).\n\nThe cancer of a mouse was treated with heparin.\n"


def typed(sentences: list[Sentence], kind: str) -> list[Sentence]:
    return [Sentence(s.tokens, tuple(t if t == "O" else f"{t}-{kind}" for t in s.tags)) for s in sentences]


def write_tsv(path: Path, sentences: list[Sentence]) -> Path:
    path.write_text("".join("".join(f"{t}\t{g}\n" for t, g in zip(s.tokens, s.tags)) + "\n" for s in sentences),
                    encoding="utf-8")
    return path


@pytest.fixture
def workdir(tmp_path: Path, make_tagger: Callable[..., Tagger], tiny_vectors: WordVectors) -> Path:
    """A tiny base checkpoint, its vectors, a two-type train/dev/test set and a text file."""
    make_tagger().save(tmp_path / "base.pt")
    tiny_vectors.save(tmp_path / "vectors.npz")
    corpus = typed(synthetic_sentences("Disease", 20, 1), "Disease") + typed(synthetic_sentences("Drug", 20, 2), "Drug")
    write_tsv(tmp_path / "train.tsv", corpus)
    write_tsv(tmp_path / "dev.tsv", corpus[:10])
    write_tsv(tmp_path / "test.tsv", corpus[10:30])
    (tmp_path / "doc.txt").write_text(TEXT, encoding="utf-8")
    return tmp_path


def hgda(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "hgda_core", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def adapt_args(w: Path, *extra: str) -> list[str]:
    return ["adapt", "--train", str(w / "train.tsv"), "--base", str(w / "base.pt"), "--vectors",
            str(w / "vectors.npz"), "--out", str(w / "model"), *extra]


def test_end_to_end_in_a_subprocess(workdir: Path) -> None:
    w = workdir
    done = hgda(*adapt_args(w, "--dev", str(w / "dev.tsv")), cwd=w)
    assert done.returncode == 0, done.stderr
    assert "model folder:" in done.stdout and "labels: O B-Disease I-Disease B-Drug I-Drug" in done.stdout
    assert "fine-tuning" in done.stderr  # logs on stderr
    assert "## Dev scores" in (w / "model" / "README.md").read_text()

    done = hgda("tag", "--model", "model", "doc.txt", cwd=w)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["document"] == "doc.txt" and record["sentences"] == 2  # a line break inside a sentence does not end it
    for span in record["spans"]:
        assert TEXT[span["start"] : span["end"]] == span["text"]
        assert set(span) == {"start", "end", "type", "text", "sentence"}

    done = hgda("tag", "--model", "model", "doc.txt", "--format", "brat", cwd=w)
    assert done.returncode == 0, done.stderr
    for line in (w / "doc.ann").read_text().splitlines():
        name, where, text = line.split("\t")
        _, start, end = where.split(" ")
        assert TEXT[int(start) : int(end)] == text

    done = hgda("evaluate", "--model", "model", "--test", "test.tsv", "--json", cwd=w)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["types"]) <= {"Disease", "Drug"} and 0 <= report["micro"]["f1"] <= 1


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def model(workdir: Path, capsys: pytest.CaptureFixture) -> Path:
    code, _, err = run(adapt_args(workdir, "--quiet"), capsys)
    assert code == 0, err
    return workdir / "model"


def test_formats_and_out_folder(workdir: Path, model: Path, capsys: pytest.CaptureFixture) -> None:
    (workdir / "two.txt").write_text("Aspirin for asthma.", encoding="utf-8")
    for fmt, ext in (("jsonl", "jsonl"), ("conll", "conll"), ("pubtator", "pubtator"), ("brat", "ann")):
        code, out, err = run(["tag", "--model", str(model), str(workdir / "doc.txt"), str(workdir / "two.txt"),
                              "--format", fmt, "--out", str(workdir / "out"), "-q"], capsys)
        assert code == 0, err
        assert out == ""
        assert sorted(p.name for p in (workdir / "out").glob(f"*.{ext}")) == [f"doc.{ext}", f"two.{ext}"]
    pubtator = (workdir / "out" / "doc.pubtator").read_text()
    for line in pubtator.strip().splitlines():
        pmid, start, end, mention, _ = line.split("\t")
        assert pmid == "doc" and TEXT[int(start) : int(end)] == mention
    conll = (workdir / "out" / "doc.conll").read_text()
    assert conll.startswith("Patients\t") and conll.count("\n\n") == 2


def test_tokenized_input(workdir: Path, model: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(["tag", "--model", str(model), str(workdir / "test.tsv"), "--tokenized", "--format",
                          "conll", "-q"], capsys)
    assert code == 0, err
    tokens = [line.split("\t")[0] for line in out.splitlines() if line]
    expected = [line.split("\t")[0] for line in (workdir / "test.tsv").read_text().splitlines() if line]
    assert tokens == expected


def test_repairs_are_reported(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    text = (workdir / "train.tsv").read_text().replace("\tB-Disease", "\tI-Disease", 2)
    (workdir / "train.tsv").write_text(text)
    code, _, err = run(adapt_args(workdir), capsys)
    assert code == 0
    assert "train.tsv: 2 I tag(s) continued no entity of their type and were read as B (IOB2 repair)" in err


def test_unknown_test_types_are_reported_and_missed(workdir: Path, model: Path, capsys: pytest.CaptureFixture) -> None:
    write_tsv(workdir / "gene.tsv", typed(synthetic_sentences("Gene", 10, 3), "Gene"))
    code, out, err = run(["evaluate", "--model", str(model), "--test", str(workdir / "gene.tsv")], capsys)
    assert code == 0
    assert "type(s) Gene not known to the model (it tags Disease, Drug); scored as misses" in err
    gene = next(line for line in out.splitlines() if line.startswith("Gene"))
    assert gene.endswith("(unknown to the model)") and " 0.0000 " in gene


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("hgda "), err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("content, needles", [
    ("", ["train.tsv:1: empty file"]),
    ("a\tO\n\nb\tO\n", ["train.tsv:1: no entity in 2 sentence(s)"]),
    ("a\tB-X\nb c\n", ["train.tsv:2: expected 2 tab-separated columns"]),
    (b"a\tB-X\n\x00\x00\x00", ["train.tsv:2: binary file (NUL byte at offset 6)"]),
])
def test_bad_training_file(workdir: Path, content: str | bytes, needles: list[str], capsys: pytest.CaptureFixture) -> None:
    (workdir / "train.tsv").write_bytes(content if isinstance(content, bytes) else content.encode())
    code, out, err = run(adapt_args(workdir), capsys)
    one_line_error(code, err, *needles)
    assert not (workdir / "model").exists() and out == ""
    assert not [p for p in workdir.iterdir() if p.name.startswith(".model.")]


def test_out_into_the_input_is_refused(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    args = adapt_args(workdir)
    args[args.index("--out") + 1] = str(workdir)
    code, _, err = run(args, capsys)
    one_line_error(code, err, "would replace the input", "train.tsv")
    assert (workdir / "train.tsv").exists()


def test_out_over_a_foreign_folder_is_refused(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    (workdir / "model").mkdir()
    (workdir / "model" / "keep.txt").write_text("mine")
    code, _, err = run(adapt_args(workdir), capsys)
    one_line_error(code, err, "exists and is not an hgda model folder")
    assert (workdir / "model" / "keep.txt").read_text() == "mine"


def test_ctrl_c_leaves_nothing(workdir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import hgda_core.usertagger as ut

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ut, "fine_tune", interrupted)
    code, _, err = run(adapt_args(workdir), capsys)
    assert code == 130 and err.count("\n") == 1 and "interrupted" in err
    assert not (workdir / "model").exists()
    assert not [p for p in workdir.iterdir() if p.name.startswith(".model.")]


def test_plain_tags_need_a_type(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    write_tsv(workdir / "train.tsv", synthetic_sentences("Disease", 20, 1))
    code, _, err = run(adapt_args(workdir), capsys)
    one_line_error(code, err, "train.tsv:", "plain tag", "--type NAME")
    code, out, err = run(adapt_args(workdir, "--type", "Disease", "-q"), capsys)
    assert code == 0, err
    assert "labels: O B-Disease I-Disease" in out
    # a plain test file is read with the model's only type
    write_tsv(workdir / "plain_test.tsv", synthetic_sentences("Disease", 10, 5))
    code, out, err = run(["evaluate", "--model", str(workdir / "model"), "--test", str(workdir / "plain_test.tsv")],
                         capsys)
    assert code == 0, err
    assert out.splitlines()[2].startswith("Disease")


@pytest.mark.parametrize("data, needle", [
    (b"caf\xe9\n", "doc.txt:1: bytes are not valid UTF-8"),
    (b"ok\nbinary\x00\x01\x02", "doc.txt:2: binary file"),
])
def test_bad_text_input(workdir: Path, model: Path, data: bytes, needle: str, capsys: pytest.CaptureFixture) -> None:
    (workdir / "good.txt").write_text("Aspirin for asthma.")
    (workdir / "doc.txt").write_bytes(data)
    out_dir = workdir / "out"
    code, out, err = run(["tag", "--model", str(model), str(workdir / "good.txt"), str(workdir / "doc.txt"),
                          "--out", str(out_dir)], capsys)
    one_line_error(code, err, needle)
    assert not out_dir.exists() or not list(out_dir.iterdir())  # nothing written, not even for good.txt


def test_tag_output_over_its_input_is_refused(workdir: Path, model: Path, capsys: pytest.CaptureFixture) -> None:
    (workdir / "in.conll").write_text("aspirin\nworks\n")
    code, _, err = run(["tag", "--model", str(model), str(workdir / "in.conll"), "--tokenized", "--format", "conll",
                        "--out", str(workdir)], capsys)
    one_line_error(code, err, "would overwrite the input")
    assert (workdir / "in.conll").read_text() == "aspirin\nworks\n"


def test_bad_model_folders(workdir: Path, model: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(["tag", "--model", str(workdir), str(workdir / "doc.txt")], capsys)
    one_line_error(code, err, "not an hgda model folder")
    config = json.loads((model / "hgda-model.json").read_text())
    (model / "hgda-model.json").write_text(json.dumps({**config, "format_version": 2}))
    code, _, err = run(["evaluate", "--model", str(model), "--test", str(workdir / "test.tsv")], capsys)
    one_line_error(code, err, "model format version 2")
    (model / "hgda-model.json").write_text(json.dumps(config))
    (model / "vectors.npz").unlink()
    code, _, err = run(["tag", "--model", str(model), str(workdir / "doc.txt")], capsys)
    one_line_error(code, err, "incomplete model folder, missing vectors.npz")


def test_missing_release_model_says_how_to_build_it(workdir: Path, capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HGDA_ROOT", str(workdir))
    args = adapt_args(workdir)
    args[args.index("--base") + 1] = "release"
    code, _, err = run(args, capsys)
    one_line_error(code, err, "no release base model", "dvc repro release")


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["adapt", "--train", "x.tsv"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err
