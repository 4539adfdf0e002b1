"""Corpus download: sources, checksums, safe extraction, one-line errors, atomic output.

Everything runs offline: the "remote" archive is served from 127.0.0.1 by a thread.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import re
import shutil
import socket
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hgda_core.data import SPLITS
from hgda_core.download import (
    CHECKSUMS_PATH,
    ArchiveSource,
    SourceMiss,
    DownloadError,
    fetch_corpora,
    file_digest,
    read_checksums,
)

MIRROR = Path(__file__).parent / "resources" / "mirror"
CHECKSUMS = MIRROR / "checksums.tsv"
NAMES = ["toy-disease", "toy_species"]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep urllib off any proxy: the test server is on the loopback interface."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def make_archive(path: Path, names: list[str], prefix: str = "datasets/NER") -> Path:
    """A tar.gz laid out like BioBERT's, holding the fixture corpora ``names``."""
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            for split in SPLITS:
                tar.add(MIRROR / name / f"{split}.tsv", f"{prefix}/{name}/{split}.tsv")
    return path


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add a regular-file member with ``data``."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_link(tar: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    """Add a symlink (or hard link) member."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def corrupted_mirror(tmp_path: Path, name: str, split: str) -> Path:
    """A copy of the fixture mirror where ``name/split.tsv`` has one byte changed."""
    root = tmp_path / "bad-mirror"
    shutil.copytree(MIRROR, root)
    path = root / name / f"{split}.tsv"
    path.write_bytes(path.read_bytes().replace(b"O\n", b"B\n", 1))
    return root


def listing(folder: Path) -> list[str]:
    """Every path under ``folder``, relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@dataclass
class Served:
    """A folder served over HTTP on 127.0.0.1."""

    root: Path
    url: str


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serve files without logging to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """Serve ``tmp_path/www`` from a thread on the loopback interface only."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Served(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/datasets.tar.gz"


# --------------------------------------------------------------------------- checksums


def test_git_sha1_matches_git_hash_object_semantics(tmp_path: Path) -> None:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello\n")
    expected = hashlib.sha1(b"blob 6\x00hello\n").hexdigest()
    assert (
        expected == "ce013625030ba8dba906f756967f9e9ca394464a"
    )  # `echo hello | git hash-object --stdin`
    assert file_digest(path, "git-sha1") == expected
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_digest(empty, "git-sha1") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_git_sha1_agrees_with_git_binary(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    path = MIRROR / "toy_species" / "train.tsv"
    out = subprocess.run(
        ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
    )
    assert file_digest(path, "git-sha1") == out.stdout.strip()


def test_sha256_digest(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert file_digest(path, "sha256") == hashlib.sha256(b"abc").hexdigest()


def test_committed_manifest_lists_all_eight_corpora() -> None:
    table = read_checksums(CHECKSUMS_PATH)
    assert set(table) == {
        "NCBI-disease", "BC5CDR-disease", "BC5CDR-chem", "BC4CHEMD",
        "JNLPBA", "BC2GM", "linnaeus", "s800",
    }  # fmt: skip
    assert {c.algo for c in table["BC4CHEMD"].values()} == {"git-sha1"}
    assert table["BC4CHEMD"]["train"].digest == "f9e155c7a5f59896b38b84661737a6c0f9f30b7a"
    assert table["NCBI-disease"]["train"].algo == "sha256"


HEADER = "corpus\tsplit\talgo\tdigest\n"
DIGEST = "a" * 64


def _rows(corpus: str = "toy", **override: str) -> str:
    return "".join(f"{corpus}\t{split}\tsha256\t{override.get(split, DIGEST)}\n" for split in SPLITS)


@pytest.mark.parametrize(
    "text, message",
    [
        ("corpus\tsplit\tdigest\n" + _rows(), r":1: expected the header corpus<TAB>split<TAB>algo<TAB>digest"),
        ("", r":1: expected the header"),
        (HEADER + "toy\ttrain\tsha256\n", r":2: expected 4 tab-separated columns, found 3"),
        (HEADER + f"toy\ttrain\tsha256\t{DIGEST}\textra\n", r":2: expected 4 tab-separated columns, found 5"),
        (HEADER + _rows("../toy"), r":2: corpus name '\.\./toy' is not a plain folder name"),
        (HEADER + _rows("toy/sub"), r":2: corpus name 'toy/sub' is not a plain folder name"),
        (HEADER + _rows(".hidden"), r":2: corpus name '\.hidden' is not a plain folder name"),
        (HEADER + "toy\tvalid\tsha256\t" + DIGEST + "\n", r":2: unknown split 'valid'"),
        (HEADER + "toy\ttrain\tmd5\t" + DIGEST + "\n", r":2: unknown algorithm 'md5'"),
        (HEADER + _rows(devel="xyz" + "0" * 61), r":3: digest 'xyz0+' is not a hex string"),
        (HEADER + _rows(devel="abc"), r":3: digest 'abc' is not a hex string"),
        (HEADER + "# a comment\n\n" + "".join(_rows().splitlines(True)[:2]), r": corpus toy lacks a checksum"),
    ],
    ids=["header", "empty", "too-few-columns", "too-many-columns", "dotdot-name", "slash-name", "dot-name",
         "unknown-split", "unknown-algo", "non-hex-digest", "short-digest", "missing-split"],
)
def test_every_checksums_guard_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "checksums.tsv"
    path.write_text(text)
    with pytest.raises(DownloadError, match=f"^{re.escape(str(path))}{message}"):
        read_checksums(path)


def test_a_well_formed_manifest_with_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "checksums.tsv"
    path.write_text(HEADER + "# comment\n\n" + _rows("toy", test="B" * 40).replace("sha256\t" + "B" * 40, "git-sha1\t" + "B" * 40))
    table = read_checksums(path)
    assert set(table) == {"toy"} and set(table["toy"]) == set(SPLITS)
    assert table["toy"]["test"].algo == "git-sha1" and table["toy"]["test"].digest == "b" * 40
    assert table["toy"]["train"].digest == DIGEST


def test_a_missing_manifest_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"checksums\.tsv: cannot read checksums"):
        read_checksums(tmp_path / "checksums.tsv")


# --------------------------------------------------------------------------- sources


def test_mirror_folder(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    used = fetch_corpora(NAMES, out, mirror=MIRROR, checksums_path=CHECKSUMS)
    assert used == {name: f"mirror {MIRROR}" for name in NAMES}
    for name in NAMES:
        for split in SPLITS:
            got = (out / name / f"{split}.tsv").read_bytes()
            assert got == (MIRROR / name / f"{split}.tsv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_mirror_archive(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "datasets.tar.gz", NAMES)
    out = tmp_path / "raw"
    used = fetch_corpora(NAMES, out, mirror=archive, checksums_path=CHECKSUMS)
    assert used == {name: f"mirror {archive}" for name in NAMES}
    assert listing(out) == [
        f"{n}{s}" for n in NAMES for s in ("", "/devel.tsv", "/test.tsv", "/train.tsv")
    ]


def test_archive_with_dot_slash_prefix(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "d.tar.gz", ["toy-disease"], prefix="./datasets/NER")
    used = fetch_corpora(
        ["toy-disease"], tmp_path / "raw", mirror=archive, checksums_path=CHECKSUMS
    )
    assert used == {"toy-disease": f"mirror {archive}"}


def test_url_source_downloads_once_to_cache(tmp_path: Path, served: Served) -> None:
    make_archive(served.root / "datasets.tar.gz", NAMES)
    url = f"{served.url}/datasets.tar.gz"
    out = tmp_path / "data" / "raw"
    used = fetch_corpora(NAMES, out, mirror=tmp_path / "empty", url=url, checksums_path=CHECKSUMS)
    assert used == {name: f"archive {url}" for name in NAMES}
    cached = tmp_path / "data" / "cache" / "datasets.tar.gz"
    assert cached.read_bytes() == (served.root / "datasets.tar.gz").read_bytes()
    (served.root / "datasets.tar.gz").unlink()  # the second run must use the cache
    shutil.rmtree(out)
    assert fetch_corpora(NAMES, out, url=url, checksums_path=CHECKSUMS) == used


def test_mirror_first_then_url(tmp_path: Path, served: Served) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(MIRROR / "toy-disease", partial / "toy-disease")
    make_archive(served.root / "datasets.tar.gz", ["toy_species"])
    url = f"{served.url}/datasets.tar.gz"
    used = fetch_corpora(NAMES, tmp_path / "raw", mirror=partial, url=url, checksums_path=CHECKSUMS)
    assert used == {"toy-disease": f"mirror {partial}", "toy_species": f"archive {url}"}


# --------------------------------------------------------------------------- safety


WANTED = "datasets/NER/toy-disease/train.tsv"
TRAIN = (MIRROR / "toy-disease" / "train.tsv").read_bytes()


@pytest.mark.parametrize(
    "evil",
    [
        lambda tar: add_bytes(tar, "datasets/NER/" + "../" * 4 + WANTED, TRAIN),
        lambda tar: add_bytes(tar, "datasets/NER/toy-disease/../toy-disease/train.tsv", TRAIN),
        lambda tar: add_bytes(tar, "/" + WANTED, TRAIN),
        lambda tar: add_link(tar, WANTED, "../../../../evil"),
        lambda tar: add_link(tar, WANTED, "/etc/passwd"),
        lambda tar: add_link(tar, WANTED, "/etc/passwd", tarfile.LNKTYPE),
        lambda tar: add_link(tar, WANTED, "../devel.tsv", tarfile.LNKTYPE),
    ],
    ids=["dotdot-above", "dotdot-inside", "absolute", "symlink-relative", "symlink-absolute", "hardlink-absolute",
         "hardlink-relative"],
)
def test_malicious_members_named_like_wanted_files_never_land_outside(tmp_path: Path, evil) -> None:  # type: ignore[no-untyped-def]
    """Each member poses as ``toy-disease/train.tsv``; it is examined, rejected by name,
    and nothing is written outside the output folder (nor at the filesystem root)."""
    work = tmp_path / "work"
    work.mkdir()
    archive = work / "datasets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("devel", "test"):
            tar.add(MIRROR / "toy-disease" / f"{split}.tsv", f"datasets/NER/toy-disease/{split}.tsv")
        evil(tar)
    with tarfile.open(archive) as tar:
        member = tar.getmembers()[-1].name
    before = set(tmp_path.parent.iterdir())
    out = work / "deep" / "raw"
    try:
        with pytest.raises(DownloadError) as info:
            fetch_corpora(["toy-disease"], out, mirror=archive, checksums_path=CHECKSUMS)
        assert f"member {member} " in str(info.value)  # the error names the member
        assert "toy-disease/train.tsv" in str(info.value)
        assert set(tmp_path.parent.iterdir()) == before
        assert listing(work) == ["datasets.tar.gz", "deep", "deep/raw"]
        assert not Path("/" + WANTED).exists()
    finally:  # a broken guard must not leave files behind at the root
        shutil.rmtree("/datasets/NER/toy-disease", ignore_errors=True)


def test_a_symlinked_parent_in_the_extraction_folder_is_refused(tmp_path: Path) -> None:
    """The extraction folder already holds ``datasets/NER/toy-disease`` → a folder outside:
    the wanted member would be written through it, and is refused instead."""
    outside = tmp_path / "outside"
    outside.mkdir()
    scratch = tmp_path / "scratch"
    (scratch / "datasets" / "NER").mkdir(parents=True)
    (scratch / "datasets" / "NER" / "toy-disease").symlink_to(outside, target_is_directory=True)
    archive = make_archive(tmp_path / "a.tar.gz", ["toy-disease"])
    source = ArchiveSource(archive, scratch, ["toy-disease"])
    with pytest.raises(SourceMiss, match=rf"member {WANTED} would land outside the extraction folder"):
        source.locate("toy-disease", "train")
    assert listing(outside) == []


def test_extracted_files_get_the_data_filter(tmp_path: Path) -> None:
    """tarfile's "data" filter: no set-uid/set-gid bits, no group/other write, no owner."""
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(WANTED)
        info.size, info.mode, info.uid, info.gid = len(TRAIN), 0o6777, 4242, 4242
        tar.addfile(info, io.BytesIO(TRAIN))
    path = ArchiveSource(archive, tmp_path / "scratch", ["toy-disease"]).locate("toy-disease", "train")
    stat = path.stat()
    assert path.read_bytes() == TRAIN
    assert stat.st_mode & 0o7777 == 0o755
    assert (stat.st_uid, stat.st_gid) == (os.getuid(), os.getgid())


def test_symlinked_parent_folder_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_link(tar, "datasets/NER/toy-disease", str(outside))
        for split in SPLITS:
            tar.add(
                MIRROR / "toy-disease" / f"{split}.tsv", f"datasets/NER/toy-disease/{split}.tsv"
            )
    fetch_corpora(["toy-disease"], tmp_path / "raw", mirror=archive, checksums_path=CHECKSUMS)
    assert listing(outside) == []
    assert (tmp_path / "raw" / "toy-disease" / "train.tsv").is_file()


def test_symlink_member_is_reported(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_link(tar, "datasets/NER/toy-disease/train.tsv", "/etc/passwd")
    with pytest.raises(DownloadError, match="is not a regular file"):
        fetch_corpora(["toy-disease"], tmp_path / "raw", mirror=archive, checksums_path=CHECKSUMS)


# --------------------------------------------------------------------------- errors


def test_checksum_mismatch_names_corpus_file_and_sources(tmp_path: Path) -> None:
    bad = corrupted_mirror(tmp_path, "toy_species", "devel")
    url = closed_port_url()
    with pytest.raises(DownloadError) as info:
        fetch_corpora(NAMES, tmp_path / "raw", mirror=bad, url=url, checksums_path=CHECKSUMS)
    message = str(info.value)
    assert message.startswith("toy_species/devel.tsv: ")
    assert f"mirror {bad} (checksum mismatch: git-sha1 " in message
    assert f"archive {url} (URLError: " in message
    assert "\n" not in message


def test_mismatch_in_every_source(tmp_path: Path) -> None:
    bad = corrupted_mirror(tmp_path, "toy-disease", "train")
    with pytest.raises(
        DownloadError,
        match=r"^toy-disease/train\.tsv: checksum mismatch in every source; "
        r"tried mirror .* \(checksum mismatch: sha256 ",
    ):
        fetch_corpora(["toy-disease"], tmp_path / "raw", mirror=bad, checksums_path=CHECKSUMS)


def test_missing_corpus_lists_every_source(tmp_path: Path, served: Served) -> None:
    checksums = tmp_path / "checksums.tsv"
    rows = [f"toy-absent\t{s}\tgit-sha1\t{'0' * 40}" for s in SPLITS]
    checksums.write_text(CHECKSUMS.read_text() + "\n".join(rows) + "\n")
    make_archive(served.root / "datasets.tar.gz", NAMES)
    url = f"{served.url}/datasets.tar.gz"
    with pytest.raises(DownloadError) as info:
        fetch_corpora(
            ["toy-absent"], tmp_path / "raw", mirror=MIRROR, url=url, checksums_path=checksums
        )
    assert str(info.value) == (
        "toy-absent/train.tsv: not found in any source; "
        f"tried mirror {MIRROR} (no folder toy-absent), "
        f"archive {url} (no member datasets/NER/toy-absent/train.tsv)"
    )


def test_unreachable_sources_are_described(tmp_path: Path) -> None:
    url = closed_port_url()
    with pytest.raises(DownloadError) as info:
        fetch_corpora(
            ["toy-disease"],
            tmp_path / "raw",
            mirror=tmp_path / "nowhere",
            url=url,
            checksums_path=CHECKSUMS,
        )
    assert str(info.value) == (
        f"toy-disease/train.tsv: not found in any source; tried mirror {tmp_path / 'nowhere'} "
        f"(no such file or folder), archive {url} (URLError: [Errno 111] Connection refused)"
    )
    assert not (tmp_path / "cache").exists()


def test_http_404_is_described(tmp_path: Path, served: Served) -> None:
    url = f"{served.url}/missing.tar.gz"
    with pytest.raises(DownloadError, match=r"\(HTTPError: HTTP Error 404: File not found\)$"):
        fetch_corpora(["toy-disease"], tmp_path / "raw", url=url, checksums_path=CHECKSUMS)


def test_corrupt_cached_archive_says_how_to_recover(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "datasets.tar.gz").write_bytes(b"not a tar file")
    with pytest.raises(DownloadError, match=r"ReadError: .*delete it to download again"):
        fetch_corpora(
            ["toy-disease"], tmp_path / "raw", url=closed_port_url(), checksums_path=CHECKSUMS
        )


def test_no_source_configured(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="no source configured"):
        fetch_corpora(["toy-disease"], tmp_path / "raw", checksums_path=CHECKSUMS)


def test_unknown_corpus_is_rejected_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(
        DownloadError,
        match=r"unknown corpus 'NCBI-disaese': not listed in .*checksums\.tsv; "
        r"known: toy-disease, toy_species",
    ):
        fetch_corpora(
            ["toy-disease", "NCBI-disaese"],
            tmp_path / "raw",
            mirror=MIRROR,
            checksums_path=CHECKSUMS,
        )
    assert not (tmp_path / "raw" / "toy-disease").exists()


# --------------------------------------------------------------------------- atomicity


def test_nothing_half_written_after_failure(tmp_path: Path) -> None:
    bad = corrupted_mirror(tmp_path, "toy_species", "test")  # train and devel verify
    out = tmp_path / "data" / "raw"
    with pytest.raises(DownloadError):
        fetch_corpora(["toy_species"], out, mirror=bad, checksums_path=CHECKSUMS)
    assert listing(tmp_path / "data") == ["raw"]  # no corpus folder, no temp folder


def test_existing_corpus_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    (out / "toy-disease").mkdir(parents=True)
    (out / "toy-disease" / "stale.txt").write_text("old")
    fetch_corpora(["toy-disease"], out, mirror=MIRROR, checksums_path=CHECKSUMS)
    assert listing(out) == [
        "toy-disease",
        "toy-disease/devel.tsv",
        "toy-disease/test.tsv",
        "toy-disease/train.tsv",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_failed_corpus_keeps_previous_copy(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    fetch_corpora(["toy-disease"], out, mirror=MIRROR, checksums_path=CHECKSUMS)
    before = {p: p.read_bytes() for p in (out / "toy-disease").iterdir()}
    bad = corrupted_mirror(tmp_path, "toy-disease", "test")
    with pytest.raises(DownloadError):
        fetch_corpora(["toy-disease"], out, mirror=bad, checksums_path=CHECKSUMS)
    assert {p: p.read_bytes() for p in (out / "toy-disease").iterdir()} == before


# --- details found by the mutation run (tests/MUTATION.md) ----------------------------


def test_the_download_passes_its_timeout_so_a_silent_server_cannot_hang_it(tmp_path: Path, monkeypatch) -> None:
    import io
    import urllib.request

    from hgda_core import download as download_mod

    seen: dict = {}

    class _Response(io.BytesIO):
        headers = {"Content-Length": "3"}

    def fake_urlopen(url, timeout=None):
        seen.update(url=url, timeout=timeout)
        return _Response(b"abc")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    out = download_mod.download("http://example.invalid/x.tar.gz", tmp_path / "x.tar.gz", timeout_s=7.5)
    assert seen == {"url": "http://example.invalid/x.tar.gz", "timeout": 7.5}
    assert out.read_bytes() == b"abc"


def test_an_error_without_a_message_is_named_by_its_type() -> None:
    import urllib.error

    from hgda_core.download import _describe

    assert _describe(TimeoutError()) == "TimeoutError"
    assert _describe(OSError("disk\n full")) == "OSError: disk full"
    assert _describe(urllib.error.URLError("timed out")) == "URLError: timed out"
