"""images.tar.gz handling: once per node, content-addressed, atomic, and safe against hostile archives."""
from __future__ import annotations

import io
import json
import tarfile
import threading
from pathlib import Path

import fsspec
import pytest

from gdino.data.archive import ArchiveLimits, extract_archive
from gdino.data.sources import resolve_image_dir
from gdino.errors import ArchiveError


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], compresslevel: int = 6) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=compresslevel, format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def _leftovers(cache: Path) -> list[str]:
    """Everything in the cache except lock files and the hash memo: must be empty after a refused archive."""
    if not cache.exists():
        return []
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")
                  if not p.name.endswith(".lock") and p.relative_to(cache).parts[0] != "index")


def test_archive_is_extracted_once_and_keyed_by_content(tmp_path):
    cache = tmp_path / "cache"
    archive = _tar(tmp_path / "images.tar.gz", [_file("a.jpg", b"1"), _file("sub/b.jpg", b"2")])
    first = extract_archive(archive, cache)
    assert (first / "a.jpg").read_bytes() == b"1" and (first / "sub" / "b.jpg").read_bytes() == b"2"
    (first / "a.jpg").write_bytes(b"marker")  # a second call must reuse the folder, not re-extract
    assert extract_archive(archive, cache) == first and (first / "a.jpg").read_bytes() == b"marker"
    _tar(archive, [_file("a.jpg", b"changed")])
    second = extract_archive(archive, cache)
    assert second != first and (second / "a.jpg").read_bytes() == b"changed"


def test_concurrent_extractions_share_one_folder(tmp_path):
    cache = tmp_path / "cache"
    archive = _tar(tmp_path / "images.tar.gz", [_file(f"{i}.jpg", bytes(1000)) for i in range(200)])
    results, errors = [], []

    def worker():
        try:
            results.append(extract_archive(archive, cache))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert len(list(results[0].iterdir())) == 200
    assert [p.name for p in cache.iterdir() if p.is_dir() and p.name != "index"] == [results[0].name]


def _extract_in_child(args: tuple[str, str]) -> str:
    return str(extract_archive(args[0], args[1]))


def test_concurrent_processes_share_one_folder(tmp_path):
    import multiprocessing

    cache = tmp_path / "cache"
    archive = _tar(tmp_path / "images.tar.gz", [_file(f"{i}.jpg", bytes(2000)) for i in range(300)])
    with multiprocessing.get_context("fork").Pool(3) as pool:
        folders = pool.map(_extract_in_child, [(str(archive), str(cache))] * 6)
    assert len(set(folders)) == 1 and len(list(Path(folders[0]).iterdir())) == 300
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == sorted([Path(folders[0]).name, "index"])


def test_remote_archive_and_json_through_fsspec_memory(tmp_path):
    archive = _tar(tmp_path / "images.tar.gz", [_file("img.jpg", b"jpeg")])
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/train/images.tar.gz", archive.read_bytes())
    folder = resolve_image_dir("memory://bucket/train/images.tar.gz", tmp_path / "cache")
    assert (folder / "img.jpg").read_bytes() == b"jpeg"
    fs.pipe("/bucket/plain/img.jpg", b"raw")
    plain = resolve_image_dir("memory://bucket/plain", tmp_path / "cache")
    assert (plain / "img.jpg").read_bytes() == b"raw"
    assert resolve_image_dir(f"file://{tmp_path}", tmp_path / "cache") == tmp_path


# ------------------------------------------------------------------------------------ hostile input
HOSTILE = {
    "parent traversal": [_file("../escaped.txt")],
    "nested traversal": [_file("ok/../../escaped.txt")],
    "absolute path": [_file("/tmp/gdino-escaped-absolute.txt")],
    "symlink to absolute path": [_special("link", tarfile.SYMTYPE, "/etc/passwd")],
    "symlink via ..": [_special("sub/link", tarfile.SYMTYPE, "../../escaped.txt")],
    "hardlink outside": [_special("hard", tarfile.LNKTYPE, "../outside/secret.txt")],
    "hardlink absolute": [_special("hard", tarfile.LNKTYPE, "/etc/passwd")],
    "character device": [_special("dev", tarfile.CHRTYPE)],
    "block device": [_special("blk", tarfile.BLKTYPE)],
    "fifo": [_special("pipe", tarfile.FIFOTYPE)],
}


@pytest.mark.reliability
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_and_nothing_is_written(tmp_path, case):
    work = tmp_path / "work"
    work.mkdir()
    archive = _tar(work / "images.tar.gz", [_file("good.jpg")] + HOSTILE[case])
    cache = work / "cache"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ArchiveError):
        extract_archive(archive, cache)
    assert _leftovers(cache) == []
    after = sorted(p.name for p in tmp_path.rglob("*") if "cache" not in p.parts)
    assert after == [n for n in before if n != "cache"]
    assert not Path("/tmp/gdino-escaped-absolute.txt").exists()


@pytest.mark.reliability
def test_link_inside_the_archive_is_allowed(tmp_path):
    archive = _tar(tmp_path / "images.tar.gz", [_file("sub/real.jpg", b"r"),
                                                _special("sub/alias.jpg", tarfile.SYMTYPE, "real.jpg")])
    folder = extract_archive(archive, tmp_path / "cache")
    assert (folder / "sub" / "alias.jpg").read_bytes() == b"r"


@pytest.mark.reliability
def test_decompression_bomb_is_bounded_by_the_size_cap(tmp_path):
    bomb_size = 64 << 20  # 64 MiB of zeros compresses to ~64 KiB
    info = tarfile.TarInfo("bomb.bin")
    info.size = bomb_size
    with tarfile.open(tmp_path / "images.tar.gz", "w:gz", compresslevel=1) as tar:
        tar.addfile(info, io.BytesIO(bytes(bomb_size)))
    archive = tmp_path / "images.tar.gz"
    assert archive.stat().st_size < bomb_size / 100
    cache = tmp_path / "cache"
    with pytest.raises(ArchiveError, match="decompression bomb"):
        extract_archive(archive, cache, ArchiveLimits(max_total_bytes=8 << 20))
    assert _leftovers(cache) == []


@pytest.mark.reliability
def test_many_small_members_sum_past_the_size_cap(tmp_path):
    archive = _tar(tmp_path / "images.tar.gz", [_file(f"{i}.bin", bytes(4096)) for i in range(64)])
    with pytest.raises(ArchiveError):
        extract_archive(archive, tmp_path / "cache", ArchiveLimits(max_total_bytes=100_000))
    assert _leftovers(tmp_path / "cache") == []


@pytest.mark.reliability
def test_one_hundred_thousand_tiny_files_are_refused_by_the_member_cap(tmp_path):
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1, format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        for i in range(100_000):
            info.name = f"d{i % 100}/{i}.jpg"
            tar.addfile(info)
    cache = tmp_path / "cache"
    with pytest.raises(ArchiveError, match="more than 10000 members"):
        extract_archive(archive, cache, ArchiveLimits(max_members=10_000))
    assert _leftovers(cache) == []


@pytest.mark.reliability
def test_corrupt_archive_is_a_typed_error(tmp_path):
    archive = tmp_path / "images.tar.gz"
    good = _tar(tmp_path / "good.tar.gz", [_file(f"{i}.jpg", bytes(5000)) for i in range(20)]).read_bytes()
    archive.write_bytes(good[: len(good) // 2])
    with pytest.raises(ArchiveError):
        extract_archive(archive, tmp_path / "cache")
    assert _leftovers(tmp_path / "cache") == []


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("GDINO_ARCHIVE_MAX_MEMBERS", "12")
    monkeypatch.setenv("GDINO_ARCHIVE_MAX_BYTES", "345")
    assert ArchiveLimits.from_env() == ArchiveLimits(max_total_bytes=345, max_members=12)
    json.dumps(ArchiveLimits().__dict__)  # plain values, safe to log


def test_uri_without_a_driver_is_a_typed_error(tmp_path):
    from gdino.errors import DependencyMissing, GdinoError

    try:
        import s3fs  # noqa: F401
    except ImportError:
        with pytest.raises(DependencyMissing, match="s3fs"):
            resolve_image_dir("s3://bucket/images.tar.gz", tmp_path / "cache")
    with pytest.raises(GdinoError):
        resolve_image_dir("nosuchscheme://x/images.tar.gz", tmp_path / "cache")
