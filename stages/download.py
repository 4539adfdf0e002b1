"""Stage ``download``: put the corpora listed in params.yaml into ``data/raw/<name>/``.

Reads the ``corpora`` and ``download`` sections of params.yaml.  The environment variable
``HGDA_CORPORA_MIRROR`` overrides ``download.mirror`` (set it to an empty string to skip
the mirror).  Relative mirror paths are relative to the repository root.  Every file is
verified against ``hgda_core/resources/checksums.tsv``, so the output does not depend on
which source delivered it.

Run from the repository root: ``python -m stages.download``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgda_core.download import DownloadError, fetch_corpora
from hgda_core.io import setup_logging
from stages.common import ROOT, load_params

OUT_DIR = ROOT / "data" / "raw"
CACHE_DIR = ROOT / "data" / "cache"
MIRROR_ENV = "HGDA_CORPORA_MIRROR"

log = logging.getLogger("stages.download")


@dataclass(frozen=True)
class DownloadParams:
    """The ``download`` section of params.yaml."""

    mirror: str | None = None
    url: str | None = None
    timeout_s: float = 60.0


def download_params(root: Path = ROOT) -> tuple[list[str], DownloadParams]:
    """Read the corpus list and the ``download`` section of ``root``'s params.yaml."""
    params = load_params(root)
    return list(params["corpora"]), DownloadParams(**(params.get("download") or {}))


def resolve_mirror(configured: str | None, environ: Mapping[str, str]) -> Path | None:
    """The mirror to use: the environment override, else the param; None when empty."""
    value = environ.get(MIRROR_ENV, configured)
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else ROOT / path


def run(corpora: list[str], params: DownloadParams, mirror: Path | None) -> dict[str, Any]:
    """Clear the output folder and fetch exactly the listed corpora into it."""
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    return fetch_corpora(
        corpora,
        OUT_DIR,
        mirror=mirror,
        url=params.url or None,
        timeout_s=params.timeout_s,
        cache_dir=CACHE_DIR,
    )


def main() -> None:
    """Entry point: fetch, log the source of each corpus, or exit 1 with a one-line error."""
    setup_logging()
    corpora, params = download_params()
    mirror = resolve_mirror(params.mirror, os.environ)
    log.info("mirror: %s; url: %s", mirror or "(none)", params.url or "(none)")
    try:
        used = run(corpora, params, mirror)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    for name, source in used.items():
        log.info("%s <- %s", name, source)
    log.info("%d corpora in %s", len(used), OUT_DIR.relative_to(ROOT))


if __name__ == "__main__":
    main()
