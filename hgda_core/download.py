"""Fetch the benchmark corpora and verify every file against pinned checksums.

Each corpus ends up as ``<out>/<name>/{train,devel,test}.tsv``.  Per corpus, the sources
are tried in order until one delivers all three files with the expected checksums:

1. a local *mirror*: a folder laid out as ``<name>/<split>.tsv``, or a copy of BioBERT's
   archive file (a tar.gz holding ``datasets/NER/<name>/<split>.tsv``);
2. BioBERT's public archive *URL*, downloaded once to a cache file and then read like (1).

Every file is checked against ``resources/checksums.tsv`` (columns
``corpus<TAB>split<TAB>algo<TAB>digest``; ``algo`` is ``sha256`` or ``git-sha1``, the git
blob SHA-1 that ``git hash-object`` prints).  A corpus is assembled in a temporary folder
beside the output folder and moved into place with :func:`os.replace` only when all three
files verify, so the output folder never holds a half-written corpus.

Archives are read safely: only the members that are needed are extracted (a member that
poses as one through an absolute path or ``..`` is examined too, and refused), only if
they are regular files named by plain relative paths whose target stays inside the
scratch folder, and with :mod:`tarfile`'s ``"data"`` filter — so no member can land
outside the scratch folder (no absolute paths, ``..`` components or links).

Every failure is one :class:`DownloadError` with a one-line message naming the corpus,
the file and each source tried with the reason it failed.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from hgda_core.data import SPLITS
from hgda_core.io import atomic_write

log = logging.getLogger(__name__)

CHECKSUMS_PATH = Path(__file__).resolve().parent / "resources" / "checksums.tsv"
"""The committed manifest of expected digests, one row per corpus and split."""

ALGORITHMS: tuple[str, ...] = ("sha256", "git-sha1")
"""Digest algorithms a checksums file may name."""

ARCHIVE_PREFIX = "datasets/NER"
"""Folder of BioBERT's archive that holds one sub-folder per NER corpus."""

_HEADER = ["corpus", "split", "algo", "digest"]
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A corpus could not be obtained and verified (one-line message)."""


class SourceMiss(Exception):
    """One source cannot deliver a file (internal; collected into a DownloadError).

    Args:
        reason: why, in a few words.
        split: the split whose file failed, or None when the whole source failed.
        kind: ``missing``, ``mismatch`` (checksum) or ``unreachable``.
    """

    def __init__(self, reason: str, split: str | None = None, kind: str = "missing") -> None:
        super().__init__(reason)
        self.reason = reason
        self.split = split
        self.kind = kind


@dataclass(frozen=True)
class Checksum:
    """An expected digest of one file."""

    algo: str
    digest: str


# --------------------------------------------------------------------------- checksums


def read_checksums(path: str | Path = CHECKSUMS_PATH) -> dict[str, dict[str, Checksum]]:
    """Read a checksums manifest into ``{corpus: {split: Checksum}}``.

    Raises:
        DownloadError: when the file is missing, malformed, or lacks a split of a corpus.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DownloadError(f"{path}: cannot read checksums ({_describe(err)})") from None
    if not lines or lines[0].split("\t") != _HEADER:
        raise DownloadError(f"{path}:1: expected the header {'<TAB>'.join(_HEADER)}")
    table: dict[str, dict[str, Checksum]] = {}
    for line_no, line in enumerate(lines[1:], start=2):
        if line.strip() and not line.startswith("#"):
            corpus, split, checksum = _parse_checksum_line(path, line_no, line)
            table.setdefault(corpus, {})[split] = checksum
    for corpus, sums in table.items():
        if set(sums) != set(SPLITS):
            raise DownloadError(f"{path}: corpus {corpus} lacks a checksum for some of {SPLITS}")
    return table


def _parse_checksum_line(path: Path, line_no: int, line: str) -> tuple[str, str, Checksum]:
    """Parse one ``corpus<TAB>split<TAB>algo<TAB>digest`` row."""
    fields = line.split("\t")
    where = f"{path}:{line_no}"
    if len(fields) != 4:
        raise DownloadError(f"{where}: expected 4 tab-separated columns, found {len(fields)}")
    corpus, split, algo, digest = (f.strip() for f in fields)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", corpus):
        raise DownloadError(f"{where}: corpus name {corpus!r} is not a plain folder name")
    if split not in SPLITS:
        raise DownloadError(f"{where}: unknown split {split!r}; expected one of {SPLITS}")
    if algo not in ALGORITHMS:
        raise DownloadError(f"{where}: unknown algorithm {algo!r}; expected one of {ALGORITHMS}")
    if not re.fullmatch(r"[0-9a-fA-F]{40,64}", digest):
        raise DownloadError(f"{where}: digest {digest!r} is not a hex string")
    return corpus, split, Checksum(algo, digest.lower())


def file_digest(path: str | Path, algo: str) -> str:
    """Hex digest of a file: ``sha256``, or ``git-sha1`` as ``git hash-object`` computes it.

    The git blob SHA-1 is ``sha1(b"blob <size>\\0" + content)``.
    """
    path = Path(path)
    if algo == "sha256":
        hasher = hashlib.sha256()
    elif algo == "git-sha1":
        hasher = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    else:
        raise ValueError(f"unknown digest algorithm {algo!r}; expected one of {ALGORITHMS}")
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def verify_file(path: Path, expected: Checksum, split: str) -> None:
    """Check one file's digest.

    Raises:
        SourceMiss: of kind ``mismatch`` when the digest differs.
    """
    actual = file_digest(path, expected.algo)
    if actual != expected.digest:
        raise SourceMiss(
            f"checksum mismatch: {expected.algo} {actual[:12]}…, expected {expected.digest[:12]}…",
            split,
            "mismatch",
        )


# --------------------------------------------------------------------------- sources


class Source(Protocol):
    """Somewhere a corpus file may be found."""

    label: str
    """How error messages and logs name the source, e.g. ``mirror ../shared/corpora``."""

    def locate(self, name: str, split: str) -> Path:
        """Path of a readable copy of ``<name>/<split>.tsv``; raises :class:`SourceMiss`."""
        ...


class FolderSource:
    """A local folder laid out as ``<name>/{train,devel,test}.tsv``."""

    def __init__(self, root: Path, label: str | None = None) -> None:
        self.root = root
        self.label = label or f"mirror {root}"

    def locate(self, name: str, split: str) -> Path:
        """See :meth:`Source.locate`."""
        if not self.root.is_dir():
            raise SourceMiss("no such file or folder", kind="unreachable")
        if not (self.root / name).is_dir():
            raise SourceMiss(f"no folder {name}")
        path = self.root / name / f"{split}.tsv"
        if not path.is_file():
            raise SourceMiss(f"no file {name}/{split}.tsv", split)
        return path


def member_name(name: str, split: str) -> str:
    """Name of a corpus file inside BioBERT's archive."""
    return f"{ARCHIVE_PREFIX}/{name}/{split}.tsv"


def _normalise_member(name: str) -> str:
    """Drop leading ``./`` from an archive member name (as ``tar czf x.tgz .`` writes)."""
    while name.startswith("./"):
        name = name[2:]
    return name


def _claimed_name(name: str) -> str:
    """The relative path a member name points at once a leading ``/`` and every ``.`` and
    ``..`` are resolved lexically: a member that poses as a wanted file through an
    absolute path or a traversal is examined (and rejected), not skipped."""
    return posixpath.normpath("/" + name).lstrip("/")


class ArchiveSource:
    """A local tar archive laid out like BioBERT's ``datasets.tar.gz``.

    On first use, the members needed for ``names`` are extracted in one pass into
    ``scratch``; later look-ups are served from there.

    Args:
        archive: the tar(.gz) file.
        scratch: an empty folder to extract into.
        names: the corpora that will be asked for.
        label: how messages name the source.
        hint: appended to an error reading the archive (e.g. how to clear a cache).
    """

    def __init__(
        self,
        archive: Path,
        scratch: Path,
        names: Iterable[str],
        label: str | None = None,
        hint: str = "",
    ) -> None:
        self.archive = archive
        self.scratch = scratch
        self.label = label or f"mirror {archive}"
        self.hint = hint
        self._wanted = {member_name(n, s) for n in names for s in SPLITS}
        self._found: dict[str, Path | str] | None = None
        self._error: str | None = None

    def locate(self, name: str, split: str) -> Path:
        """See :meth:`Source.locate`."""
        found = self._extract_once()
        entry = found.get(member_name(name, split))
        if entry is None:
            raise SourceMiss(f"no member {member_name(name, split)}", split)
        if isinstance(entry, str):
            raise SourceMiss(entry, split)
        return entry

    def _extract_once(self) -> dict[str, Path | str]:
        """Extract the wanted members on the first call; remember the outcome."""
        if self._found is None and self._error is None:
            try:
                self._found = self._extract_wanted()
            except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
                self._error = _describe(err) + self.hint
        if self._error is not None:
            raise SourceMiss(self._error, kind="unreachable")
        assert self._found is not None
        return self._found

    def _extract_wanted(self) -> dict[str, Path | str]:
        """One pass over the archive: member name → extracted path or rejection reason."""
        found: dict[str, Path | str] = {}
        self.scratch.mkdir(parents=True, exist_ok=True)
        with tarfile.open(self.archive, "r:*") as tar:
            for member in tar:
                name = _claimed_name(member.name)
                if name in self._wanted:
                    found[name] = self._extract_member(tar, member, name)
        return found

    def _extract_member(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, name: str
    ) -> Path | str:
        """Extract one needed member safely; return its path or why it was rejected.

        Three guards, each on its own: the member is a regular file named by a plain
        relative path; its target, with every link already in the extraction folder
        resolved, stays inside that folder; and :mod:`tarfile`'s ``"data"`` filter
        (no links out, no device files, no owner, no set-uid or group/other-write bits).
        """
        if not member.isfile():
            return f"member {member.name} is not a regular file"
        if _normalise_member(member.name) != name:
            return f"member {member.name} is not a plain relative path (absolute, or with '.' or '..' parts)"
        root = self.scratch.resolve()
        target = (root / name).resolve()
        if not target.is_relative_to(root):
            return f"member {member.name} would land outside the extraction folder"
        try:
            tar.extract(member, root, filter="data")
        except tarfile.FilterError as err:
            return f"member {member.name} rejected ({_describe(err)})"
        return target


class UrlSource:
    """BioBERT's archive at a URL, downloaded once to ``cache_file`` and read from there.

    A cache file that is already present is reused without downloading again.
    """

    def __init__(
        self, url: str, cache_file: Path, scratch: Path, names: Sequence[str], timeout_s: float
    ) -> None:
        self.url = url
        self.label = f"archive {url}"
        self.cache_file = cache_file
        self.timeout_s = timeout_s
        hint = f" (cached at {cache_file}; delete it to download again)"
        self._archive = ArchiveSource(cache_file, scratch, names, self.label, hint)
        self._error: str | None = None

    def locate(self, name: str, split: str) -> Path:
        """See :meth:`Source.locate`; downloads the archive on first use."""
        if self._error is None and not self.cache_file.is_file():
            try:
                download(self.url, self.cache_file, self.timeout_s)
            except (OSError, ValueError, http.client.HTTPException) as err:
                self._error = _describe(err)
        if self._error is not None:
            raise SourceMiss(self._error, kind="unreachable")
        return self._archive.locate(name, split)


def download(url: str, dest: Path, timeout_s: float) -> Path:
    """Download ``url`` to ``dest`` atomically, with a progress bar.

    Raises:
        OSError: (``urllib.error.URLError`` included) when the URL cannot be read.
    """
    log.info("downloading %s to %s", url, dest)
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        size = int(response.headers.get("Content-Length") or 0) or None
        with (
            atomic_write(dest, "wb") as fh,
            tqdm(total=size, unit="B", unit_scale=True, desc=dest.name) as bar,
        ):
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                fh.write(chunk)
                bar.update(len(chunk))
    return dest


def mirror_source(path: Path, scratch: Path, names: Sequence[str]) -> Source:
    """A mirror is an archive when ``path`` is a file, else a folder."""
    if path.is_file():
        return ArchiveSource(path, scratch, names, label=f"mirror {path}")
    return FolderSource(path)


def cache_file_for(url: str, cache_dir: Path) -> Path:
    """Where the archive downloaded from ``url`` is cached."""
    name = Path(urllib.parse.urlparse(url).path).name or "datasets.tar.gz"
    return cache_dir / name


# --------------------------------------------------------------------------- fetching


def fetch_corpora(
    names: Sequence[str],
    out_dir: str | Path,
    mirror: str | Path | None = None,
    url: str | None = None,
    checksums_path: str | Path = CHECKSUMS_PATH,
    timeout_s: float = 60.0,
    cache_dir: str | Path | None = None,
) -> dict[str, str]:
    """Put each corpus into ``<out_dir>/<name>/{train,devel,test}.tsv``, verified.

    Args:
        names: corpus folder names, each listed in the checksums manifest.
        out_dir: the output folder; corpora already there are replaced, others kept.
        mirror: a folder or archive file to try first; None to skip.
        url: the archive URL to try next; None to skip.
        checksums_path: the manifest of expected digests.
        timeout_s: socket timeout (connect and each read) of the download.
        cache_dir: where the downloaded archive is kept; default ``<out_dir>/../cache``.

    Returns:
        ``{name: label of the source it came from}``, in the order of ``names``.

    Raises:
        DownloadError: for an unknown name, or a corpus no source delivers verified.
    """
    names = list(dict.fromkeys(names))  # drop repeats, keep order
    checksums = read_checksums(checksums_path)
    _check_known(names, checksums, Path(checksums_path))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out_dir.parent / "cache"
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}-", dir=out_dir.parent) as tmp:
        work = Path(tmp)
        sources = _make_sources(names, mirror, url, work, cache, timeout_s)
        return {name: _fetch_one(name, checksums[name], sources, out_dir, work) for name in names}


def _check_known(
    names: Sequence[str], checksums: dict[str, dict[str, Checksum]], path: Path
) -> None:
    """Reject names the manifest does not list."""
    for name in names:
        if name not in checksums:
            raise DownloadError(
                f"unknown corpus {name!r}: not listed in {path}; known: {', '.join(checksums)}"
            )


def _make_sources(
    names: Sequence[str],
    mirror: str | Path | None,
    url: str | None,
    work: Path,
    cache_dir: Path,
    timeout_s: float,
) -> list[Source]:
    """The sources to try, in order."""
    sources: list[Source] = []
    if mirror:
        sources.append(mirror_source(Path(mirror), work / "mirror", names))
    if url:
        sources.append(
            UrlSource(url, cache_file_for(url, cache_dir), work / "url", names, timeout_s)
        )
    return sources


def _fetch_one(
    name: str, sums: dict[str, Checksum], sources: Sequence[Source], out_dir: Path, work: Path
) -> str:
    """Try each source for one corpus; move the first verified copy into place."""
    misses: list[tuple[str, SourceMiss]] = []
    for i, source in enumerate(sources):
        staged = work / f"{name}.{i}"
        try:
            _stage(name, sums, source, staged)
        except SourceMiss as miss:
            misses.append((source.label, miss))
            continue
        _move_into_place(staged, out_dir / name, work / f"{name}.old")
        log.info("%s: verified, from %s", name, source.label)
        return source.label
    raise DownloadError(failure_message(name, misses))


def _stage(name: str, sums: dict[str, Checksum], source: Source, staged: Path) -> None:
    """Copy the three files of a corpus from ``source`` into ``staged`` and verify them."""
    staged.mkdir()
    for split in SPLITS:
        dest = staged / f"{split}.tsv"
        try:
            shutil.copyfile(source.locate(name, split), dest)
        except OSError as err:
            raise SourceMiss(_describe(err), split) from None
        verify_file(dest, sums[split], split)


def _move_into_place(staged: Path, target: Path, trash: Path) -> None:
    """Replace ``target`` by ``staged``; an old ``target`` is moved to ``trash`` first."""
    if target.exists() or target.is_symlink():
        os.replace(target, trash)
    os.replace(staged, target)


def failure_message(name: str, misses: Sequence[tuple[str, SourceMiss]]) -> str:
    """One line naming the corpus, the file and every source tried with its reason."""
    if not misses:
        return f"{name}/{SPLITS[0]}.tsv: not found; no source configured (mirror and url are empty)"
    split = next((m.split for _, m in misses if m.split), SPLITS[0])
    kinds = {m.kind for _, m in misses}
    if kinds == {"mismatch"}:
        summary = "checksum mismatch in every source"
    elif "mismatch" in kinds:
        summary = "no source holds a verified copy"
    else:
        summary = "not found in any source"
    tried = ", ".join(f"{label} ({_reason(m, split)})" for label, m in misses)
    return f"{name}/{split}.tsv: {summary}; tried {tried}"


def _reason(miss: SourceMiss, split: str) -> str:
    """A miss's reason, prefixed with its file when that is not the headline file."""
    if miss.split is None or miss.split == split:
        return miss.reason
    return f"{miss.split}.tsv: {miss.reason}"


def _describe(err: BaseException) -> str:
    """``Type: message`` on one line (a URLError's reason without its ``<urlopen error>``)."""
    detail: object = err
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        detail = err.reason
    text = " ".join(str(detail).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
