"""Small I/O helpers shared by every stage: atomic writes, JSON, CSV text, logging set-up."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping, Sequence


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` and move it into place only on success.

    An exception inside the ``with`` block removes the temporary file, so a reader never
    sees a half-written ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False)
        fh.write("\n")


def csv_text(rows: Iterable[Mapping[str, Any]], fields: Sequence[str], header: bool = True) -> str:
    """``rows`` as CSV text with ``fields`` as columns (``\\n`` line ends), the header
    line first unless ``header`` is False (appending to an existing file)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, list(fields), lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def setup_logging(level: int = logging.INFO) -> None:
    """Configure a terse, timestamped log format for stage scripts."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
