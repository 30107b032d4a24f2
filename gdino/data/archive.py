"""Safe, once-per-node extraction of `images.tar.gz` archives into a content-addressed cache.

Why this shape:
- Content-addressed (sha256 of the archive bytes): two trials on one node share one extraction, and
  a changed archive never reuses a stale folder.
- A file lock per key: concurrent trials on one node wait for the first extractor instead of racing.
- Atomic: members go to a private temp dir inside the cache, which is renamed into place only when
  every member passed the checks; a refused or interrupted extraction leaves nothing behind.
- Hostile input: absolute paths, `..`, links pointing outside, device files and FIFOs are refused;
  the total extracted size and the member count are capped (decompression bombs, inode floods).
  Python's `data` extraction filter runs after our checks as a second line of defence.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import filelock

from gdino.errors import ArchiveError

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """Upper bounds on what one archive may expand to (override with GDINO_ARCHIVE_MAX_*)."""

    max_total_bytes: int = 64 << 30
    max_members: int = 2_000_000

    @classmethod
    def from_env(cls) -> "ArchiveLimits":
        return cls(
            max_total_bytes=int(os.environ.get("GDINO_ARCHIVE_MAX_BYTES", cls.max_total_bytes)),
            max_members=int(os.environ.get("GDINO_ARCHIVE_MAX_MEMBERS", cls.max_members)),
        )


def is_archive(path: str) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def default_cache_dir() -> Path:
    """Node-local cache root: $GDINO_DATA_CACHE, else ~/.cache/gdino/data."""
    root = os.environ.get("GDINO_DATA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "gdino", "data")
    return Path(root)


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_key(archive: Path, cache: Path) -> str:
    """sha256 of the archive, remembered per (path, size, mtime) so later trials skip re-hashing."""
    stat = archive.stat()
    identity = f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    memo = cache / "index" / hashlib.sha256(identity).hexdigest()
    if memo.is_file():
        key = memo.read_text().strip()
        if len(key) == 64:
            return key
    key = sha256_of_file(archive)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(f"{memo.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(key)
    os.replace(tmp, memo)
    return key


def extract_archive(archive: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                    limits: ArchiveLimits | None = None) -> Path:
    """Extract `archive` (a local file) once into `<cache_dir>/<sha256>/` and return that folder."""
    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"archive not found: {archive}", hint="check dataset.*.image_dir")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = content_key(archive, cache)
    target = cache / key
    if target.is_dir():
        return target
    with filelock.FileLock(str(cache / f"{key}.lock")):
        if target.is_dir():  # another process finished while we waited for the lock
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=cache))
        try:
            _extract_checked(archive, staging, limits or ArchiveLimits.from_env())
            os.chmod(staging, 0o755)  # mkdtemp makes it private; the cache is shared by the node's jobs
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    log.info("extracted %s into %s", archive.name, target)
    return target


def _extract_checked(archive: Path, dest: Path, limits: ArchiveLimits) -> None:
    budget = _Budget(limits)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            # Streaming: each member is checked (and counted) before it is written.
            for member in tar:
                _check_member(member, dest, budget)
                tar.extract(member, dest, filter="data")
    except ArchiveError:
        raise
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"cannot extract {archive.name}: {exc}",
                           hint="the archive is corrupt or was refused by the tar 'data' filter; "
                                "rebuild it with `tar czf images.tar.gz -C <folder> .`") from exc


class _Budget:
    def __init__(self, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.members = 0
        self.total_bytes = 0

    def charge(self, member: tarfile.TarInfo) -> None:
        self.members += 1
        self.total_bytes += max(member.size, 0)
        if self.members > self.limits.max_members:
            raise ArchiveError(f"archive has more than {self.limits.max_members} members",
                               hint="raise GDINO_ARCHIVE_MAX_MEMBERS if this is a genuine dataset")
        if self.total_bytes > self.limits.max_total_bytes:
            raise ArchiveError(f"archive expands to more than {self.limits.max_total_bytes} bytes "
                               "(possible decompression bomb)",
                               hint="raise GDINO_ARCHIVE_MAX_BYTES if this is a genuine dataset")


def _check_member(member: tarfile.TarInfo, dest: Path, budget: _Budget) -> None:
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"archive member has an absolute path: {name!r}")
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise ArchiveError(f"archive member escapes the extraction folder: {name!r}")
    if member.isdev() or member.isfifo():
        raise ArchiveError(f"archive member is a device file or FIFO: {name!r}")
    if member.issym() or member.islnk():
        _check_link(member, dest)
    elif not (member.isfile() or member.isdir()):
        raise ArchiveError(f"archive member of unsupported type {member.type!r}: {name!r}")
    budget.charge(member)


def _check_link(member: tarfile.TarInfo, dest: Path) -> None:
    target = member.linkname
    if target.startswith("/") or (member.islnk() and ".." in PurePosixPath(target).parts):
        raise ArchiveError(f"archive link {member.name!r} points outside the archive: {target!r}")
    base = dest / PurePosixPath(member.name).parent if member.issym() else dest
    resolved = os.path.normpath(os.path.join(base, target))
    if os.path.commonpath([resolved, str(dest)]) != str(dest):
        raise ArchiveError(f"archive link {member.name!r} points outside the archive: {target!r}")
