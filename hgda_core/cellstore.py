"""A content-keyed store of finished grid cells, so that no cell is computed twice.

A *cell* is one independent unit of the benchmark grid: one meta-training run (encoder ×
held-out domain × method × K) or one adaptation block (checkpoint × target corpus × K × a
block of draws).  Its *spec* is a JSON-able dict of everything its outputs depend on —
the params it reads, the fingerprints of its input files and of the code that computes
it — and its *key* is the SHA-256 of that spec's canonical JSON.  A stage asks the store
for the key of every cell that ``params.yaml`` names, computes only the missing ones, and
writes its outputs whole from the stored cells; a later run that names a cell again (an
experiment ``-S shots=10``, a return to the full grid, another stage reading the same
checkpoint) finds it here.

Layout under the store's root (``cells/`` in the workspace, git-ignored; ``HGDA_CELLS``
moves it)::

    <kind>/<key>/cell.json   the spec, written last: a folder without it is not a cell
    <kind>/<key>/...         the cell's output files
    resume/<key>.pt          the resumable state of an unfinished meta-training cell

A cell is written into a temporary folder beside its final place and renamed into place
in one step, so a reader sees a whole cell or none, and two workers that finish the same
cell leave one copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

SPEC_FILE = "cell.json"


def canonical_json(obj: Any) -> str:
    """``obj`` as JSON with sorted keys and no whitespace: equal specs, equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def cell_key(spec: Mapping[str, Any]) -> str:
    """The key of a cell: the first 24 hex digits of the SHA-256 of its canonical spec."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:24]


def file_digest(path: str | Path) -> str:
    """SHA-256 of one file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_digest(paths: Iterable[str | Path], root: str | Path | None = None) -> str:
    """One SHA-256 over several files (folders: every file below, sorted), each entered
    with its path relative to ``root`` (or its name) so that renames count too.

    Raises:
        FileNotFoundError: for a path that does not exist.
    """
    entries: list[tuple[str, Path]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        elif path.is_file():
            found = [path]
        else:
            raise FileNotFoundError(f"{path}: no such file or folder to fingerprint")
        for p in found:
            name = p.relative_to(root).as_posix() if root is not None else p.name
            entries.append((name, p))
    digest = hashlib.sha256()
    for name, p in sorted(entries):
        digest.update(f"{name}\0{file_digest(p)}\n".encode())
    return digest.hexdigest()


class CellStore:
    """Finished cells by kind and key (module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        """Where the cell lives (whether or not it is there)."""
        return self.root / kind / key

    def has(self, kind: str, key: str) -> bool:
        """Whether the cell is finished (its spec file is there)."""
        return (self.path(kind, key) / SPEC_FILE).is_file()

    def spec(self, kind: str, key: str) -> dict[str, Any]:
        """The stored spec of a finished cell."""
        return json.loads((self.path(kind, key) / SPEC_FILE).read_text(encoding="utf-8"))

    def resume_file(self, key: str) -> Path:
        """Where an unfinished meta-training cell keeps its resumable state."""
        return self.root / "resume" / f"{key}.pt"

    def staging(self, kind: str, key: str) -> Path:
        """A new empty folder to write the cell's files into before :meth:`commit`."""
        parent = self.root / kind
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=parent))

    def commit(self, kind: str, spec: Mapping[str, Any], staged: Path) -> Path:
        """Write ``spec`` into ``staged`` and move the folder into place, atomically.

        Where the cell is already there (another worker finished it first), the staged copy
        is discarded: both are the same computation.
        """
        key = cell_key(spec)
        (staged / SPEC_FILE).write_text(canonical_json(spec) + "\n", encoding="utf-8")
        final = self.path(kind, key)
        try:
            os.rename(staged, final)
        except OSError:
            if not self.has(kind, key):
                # A folder without a spec is a leftover of an interrupted copy: replace it.
                shutil.rmtree(final, ignore_errors=True)
                os.rename(staged, final)
            else:
                shutil.rmtree(staged, ignore_errors=True)
        return final

    def adopt(self, kind: str, spec: Mapping[str, Any], files: Mapping[str, Path | bytes]) -> Path:
        """File an already computed cell (e.g. outputs pulled from a DVC remote) under its
        key: ``files`` maps names inside the cell to source paths (hard-linked, else
        copied) or to bytes."""
        staged = self.staging(kind, cell_key(spec))
        try:
            for name, source in files.items():
                target = staged / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(source, bytes):
                    target.write_bytes(source)
                else:
                    try:
                        os.link(source, target)
                    except OSError:
                        shutil.copyfile(source, target)
            return self.commit(kind, spec, staged)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
