"""The ``hgda`` command: adapt a tagger to your own corpus, tag raw text, evaluate.

::

    hgda adapt --train my.tsv [--dev my_dev.tsv] [--base release|PATH|none] [--type NAME] --out my-tagger/
    hgda tag --model my-tagger/ [FILE...|-] [--format jsonl|conll|brat|pubtator] [--out DIR] [--tokenized]
    hgda evaluate --model my-tagger/ --test test.tsv [--json]

Results go to standard output, logs and progress to standard error.  Any error ends the
command with exit status 1 (2 for bad arguments, 130 on Ctrl-C) and one line on standard
error; nothing half-written is left behind (model folders and output files are written
atomically).  See docs/own-corpus.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NoReturn, Sequence

import hgda_core

if TYPE_CHECKING:
    from hgda_core.usertagger import LabelledFile

log = logging.getLogger("hgda")

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPT = 1, 2, 130
_PROGRESS_MIN_CHARS = 1_000_000


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hgda", description="Few-shot biomedical NER on your own corpus (docs/own-corpus.md).")
    parser.add_argument("--version", action="version", version=f"hgda {hgda_core.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    common = _Parser(add_help=False)
    common.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest here)")
    common.add_argument("-q", "--quiet", action="store_true", help="no logs or progress bar on stderr")

    adapt = commands.add_parser("adapt", parents=[common], help="fine-tune a tagger on a few labelled sentences",
                                description="K-shot adaptation of a meta-trained encoder and a fresh CRF decoder "
                                "over your label set; writes a self-contained model folder.")
    adapt.add_argument("--train", required=True, type=Path, help="token<TAB>tag file (typed B-X/I-X or plain B/I/O tags)")
    adapt.add_argument("--dev", type=Path, help="a labelled file scored after training (in the model card)")
    adapt.add_argument("--base", default="release",
                       help="release (default: stage `release`), a meta-trained checkpoint .pt, or none (random init)")
    adapt.add_argument("--type", dest="entity_type", help="the entity type of plain B/I tags")
    adapt.add_argument("--out", required=True, type=Path, help="the model folder to write")
    adapt.add_argument("--vectors", type=Path, help="the base word vectors (default data/embeddings/vectors.npz)")
    adapt.add_argument("--seed", type=int, default=13)
    adapt.add_argument("--vocab", type=int, default=None,
                       help="most frequent word-vector rows kept besides the training words' (default 20000; 0: all)")

    tag = commands.add_parser("tag", parents=[common], help="tag raw text files with entity spans",
                              description="Raw text → sentences → tokens → tags → entity spans with exact "
                              "character offsets.")
    tag.add_argument("--model", required=True, type=Path, help="a model folder written by `hgda adapt`")
    tag.add_argument("inputs", nargs="*", default=["-"], help="UTF-8 text files; - (default) reads stdin")
    tag.add_argument("--format", default="jsonl", choices=("jsonl", "conll", "brat", "pubtator"))
    tag.add_argument("--out", type=Path, help="write one file per input into this folder (default: stdout; "
                     "brat: an .ann beside each .txt)")
    tag.add_argument("--tokenized", action="store_true",
                     help="inputs are one token per line (CoNLL; further columns ignored), blank line between sentences")
    tag.add_argument("--batch-size", type=int, default=256, help="sentences per decoding batch")

    evaluate = commands.add_parser("evaluate", parents=[common], help="score a tagger on a labelled test file",
                                   description="Strict entity-level P/R/F1 per type and micro-averaged (seqeval, IOB2).")
    evaluate.add_argument("--model", required=True, type=Path)
    evaluate.add_argument("--test", required=True, type=Path, help="token<TAB>tag file")
    evaluate.add_argument("--type", dest="entity_type",
                          help="the type of plain B/I test tags (default: the model's type, if it has one)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.add_argument("--batch-size", type=int, default=256)
    return parser


# --- adapt ------------------------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def cmd_adapt(args: argparse.Namespace) -> int:
    from hgda_core import usertagger as ut

    for given in (args.train, args.dev):
        if given is not None and _inside(given, args.out):
            raise ValueError(f"--out {args.out} would replace the input {given}; expected a folder outside the inputs")
    if args.out.exists() and not ut._replaceable(args.out):
        raise ut.ModelFolderError(f"{args.out}: exists and is not an hgda model folder; expected a new or empty folder")
    train = ut.read_labelled(args.train, args.entity_type, need_entity=True)
    _report_repairs(train)
    dev = None
    if args.dev is not None:
        dev = ut.read_labelled(args.dev, args.entity_type or (train.types[0] if len(train.types) == 1 else None))
        _report_repairs(dev)
        unknown = sorted(set(dev.types) - set(train.types))
        if unknown:
            log.warning("%s: type(s) %s not in the training file; scored as misses", args.dev, ", ".join(unknown))
    vocab = ut.VOCAB_LIMIT if args.vocab is None else args.vocab
    base = None if args.base == "none" else args.base
    tagger = ut.adapt_tagger(train.sentences, base=base, vectors=args.vectors, dev=dev.sentences if dev else None,
                             seed=args.seed, vocab_limit=vocab)
    tagger.info["train"]["file"] = str(args.train)
    if dev:
        tagger.info["dev"]["file"] = str(args.dev)
    tagger.save(args.out)
    info = tagger.info
    print(f"model folder: {args.out}")
    print(f"base: {info['base']}")
    print(f"trained on: {info['train']['sentences']} sentences, mentions "
          + ", ".join(f"{t} {n}" for t, n in info["train"]["mentions"].items()))
    print(f"labels: {' '.join(tagger.labels)}")
    if dev:
        print(f"dev ({args.dev}, {len(dev.sentences)} sentences):")
        print(score_table(info["dev_scores"]), end="")
    print(f"time: {info['adapt_seconds']:.1f} s")
    return 0


def _report_repairs(labelled: LabelledFile) -> None:
    """Say on stderr how many ``I`` tags the reader turned into ``B``."""
    if labelled.repairs:
        log.warning("%s: %d I tag(s) continued no entity of their type and were read as B (IOB2 repair)",
                    labelled.path, labelled.repairs)


# --- tag --------------------------------------------------------------------------------------


def _documents(inputs: Sequence[str], tokenized: bool) -> Iterator[tuple[str, str, list | None]]:
    """``(name, text, sentences or None)`` per input, decoded (and split, if tokenized)."""
    from hgda_core.text import decode_text, parse_tokenized, read_text, tokens_document

    for name in inputs:
        text = decode_text(sys.stdin.buffer.read(), "<stdin>") if name == "-" else read_text(name)
        if tokenized:
            doc_text, sentences = tokens_document(parse_tokenized(text, "<stdin>" if name == "-" else name))
            yield name, doc_text, sentences
        else:
            yield name, text, None


def _output_paths(inputs: Sequence[str], out: Path | None, fmt: str) -> list[Path | None]:
    from hgda_core.formats import FORMATS

    ext = FORMATS[fmt][0]
    if out is None and fmt != "brat":
        return [None] * len(inputs)
    if out is None and "-" in inputs:
        raise ValueError("--format brat reads stdin but has no --out folder; expected --out DIR or .txt files")
    if out is not None and out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file; expected a folder")
    paths = [(out if out is not None else Path(name).parent) / f"{'stdin' if name == '-' else Path(name).stem}{ext}"
             for name in inputs]
    resolved = [p.resolve() for p in paths]
    outputs = {path: given for path, given in zip(resolved, paths)}
    for name in inputs:
        if name != "-" and Path(name).resolve() in outputs:
            raise ValueError(f"output {outputs[Path(name).resolve()]} would overwrite the input {name}; "
                             "expected --out outside the inputs")
    seen: dict[Path, str] = {}
    for name, path in zip(inputs, resolved):
        if path in seen:
            raise ValueError(f"inputs {seen[path]} and {name} would both write {path}; expected distinct file names")
        seen[path] = name
    return paths


def _write_whole(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place: the
    file is complete or absent, also on Ctrl-C (no fsync: many small files; the rename
    is atomic for every reader)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def cmd_tag(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hgda_core.formats import FORMATS
    from hgda_core.usertagger import AdaptedTagger

    inputs = list(args.inputs) or ["-"]
    if inputs.count("-") > 1:
        raise ValueError("stdin (-) given more than once")
    paths = _output_paths(inputs, args.out, args.format)
    tagger = AdaptedTagger.load(args.model)
    # Every input is read and checked before anything is written: a bad file stops the run clean.
    documents = list(_documents(inputs, args.tokenized))
    render = FORMATS[args.format][1]
    total = sum(len(text) for _, text, _ in documents)
    bar = tqdm(total=total, unit="char", unit_scale=True, desc="hgda tag", file=sys.stderr,
               disable=args.quiet or total < _PROGRESS_MIN_CHARS, mininterval=1)
    n_docs = n_sentences = n_spans = 0
    with bar:
        for doc, path in zip(tagger.tag_documents(documents, args.batch_size), paths):
            text = render(doc)
            if path is None:
                sys.stdout.write(text)
            else:
                _write_whole(path, text)
            n_docs += 1
            n_sentences += len(doc.sentences)
            n_spans += len(doc.spans)
            bar.update(len(doc.text))
    sys.stdout.flush()
    where = f" into {args.out}" if args.out else (" beside the inputs" if args.format == "brat" else "")
    log.info("tagged %d document(s), %d sentences, %d entities%s", n_docs, n_sentences, n_spans, where)
    return 0


# --- evaluate ---------------------------------------------------------------------------------


def score_table(report: dict) -> str:
    """The scores of :meth:`AdaptedTagger.evaluate` as a fixed-width table."""
    rows = [(t, s) for t, s in report["types"].items()] + [("micro", report["micro"])]
    width = max(8, *(len(t) for t, _ in rows))
    lines = [f"{'type':<{width}}  {'P':>6}  {'R':>6}  {'F1':>6}  {'TP':>5}  {'FP':>5}  {'FN':>5}"]
    for kind, s in rows:
        mark = " (unknown to the model)" if s.get("known") is False else ""
        lines.append(f"{kind:<{width}}  {s['precision']:6.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}  "
                     f"{s['tp']:5d}  {s['fp']:5d}  {s['fn']:5d}{mark}")
    return "\n".join(lines) + "\n"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hgda_core.usertagger import AdaptedTagger, read_labelled

    tagger = AdaptedTagger.load(args.model)
    entity_type = args.entity_type or (tagger.types[0] if len(tagger.types) == 1 else None)
    test = read_labelled(args.test, entity_type)
    _report_repairs(test)
    report = tagger.evaluate(test.sentences, args.batch_size)
    if report["unknown_types"]:
        log.warning("%s: type(s) %s not known to the model (it tags %s); scored as misses", args.test,
                    ", ".join(report["unknown_types"]), ", ".join(tagger.types))
    report = {"model": str(args.model), "test": str(args.test), **report}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.test}: {report['sentences']} sentences, strict entity level (seqeval IOB2)")
        print(score_table(report), end="")
    return 0


COMMANDS = {"adapt": cmd_adapt, "tag": cmd_tag, "evaluate": cmd_evaluate}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="hgda: %(message)s",
                        level=logging.WARNING if args.quiet else logging.INFO, force=True)
    if args.quiet:
        logging.getLogger("hgda_core").setLevel(logging.WARNING)
    try:
        import torch

        torch.set_num_threads(max(1, args.threads))
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("hgda: interrupted; nothing half-written was left", file=sys.stderr)
        return EXIT_INTERRUPT
    except BrokenPipeError:
        sys.stderr.close()
        return EXIT_ERROR
    except (ValueError, OSError) as err:  # every input error of hgda_core is a ValueError
        if os.environ.get("HGDA_DEBUG"):
            raise
        print(f"hgda {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:  # a bug: still one line (HGDA_DEBUG=1 shows the traceback)
        if os.environ.get("HGDA_DEBUG"):
            raise
        print(f"hgda {args.command}: internal error: {type(err).__name__}: {_one_line(err)} "
              "(HGDA_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_ERROR


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return " ".join(text.split("\n")[0].split())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
