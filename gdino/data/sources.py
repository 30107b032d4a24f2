"""Where data lives: local paths or fsspec URIs (`file://`, `memory://`, `s3://`, ...), folders or archives.

Everything the datasets read goes through here, so training code only ever sees local folders.
Remote files are staged into the node-local cache (keyed by content hash) before use.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import filelock

from gdino.data.archive import ArchiveLimits, default_cache_dir, extract_archive, is_archive
from gdino.errors import DatasetError, DependencyMissing


def is_remote(uri: str) -> bool:
    """True for fsspec URIs other than local files (`file://` counts as local)."""
    return "://" in str(uri) and not str(uri).startswith("file://")


def local_path(uri: str) -> Path:
    return Path(str(uri)[len("file://"):]) if str(uri).startswith("file://") else Path(uri)


def _fs_and_path(uri: str):
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri)
    except ImportError as exc:  # e.g. s3:// without s3fs
        raise DependencyMissing(f"no filesystem driver for {uri.split('://')[0]}:// URIs: {exc}",
                                hint="install the fsspec driver, e.g. `pip install s3fs` for s3://") from exc
    except ValueError as exc:
        raise DatasetError(f"unknown URI scheme in {uri!r}: {exc}") from exc


def exists(uri: str) -> bool:
    if not uri:
        return False
    if not is_remote(uri):
        return local_path(uri).exists()
    fs, path = _fs_and_path(uri)
    return fs.exists(path)


def read_bytes(uri: str) -> bytes:
    if not is_remote(uri):
        path = local_path(uri)
        if not path.is_file():
            raise DatasetError(f"file not found: {uri}")
        return path.read_bytes()
    fs, path = _fs_and_path(uri)
    if not fs.exists(path):
        raise DatasetError(f"file not found: {uri}")
    return fs.cat_file(path)


def read_json(uri: str) -> Any:
    try:
        return json.loads(read_bytes(uri))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{uri} is not valid JSON: {exc}") from exc


def read_text_lines(uri: str) -> list[str]:
    return read_bytes(uri).decode("utf-8").splitlines()


def resolve_image_dir(image_dir: str, cache_dir: str | os.PathLike | None = None,
                      limits: ArchiveLimits | None = None) -> Path:
    """A local folder holding the images of `image_dir` (a folder or an archive, local or remote)."""
    if not image_dir:
        raise DatasetError("image_dir is empty", hint="set dataset.*_data_sources image_dir to a folder or images.tar.gz")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if is_remote(image_dir):
        staged = _stage_remote(image_dir, cache)
        return extract_archive(staged, cache, limits) if is_archive(image_dir) else staged
    path = local_path(image_dir)
    if not path.exists():
        raise DatasetError(f"image_dir not found: {image_dir}", hint="check the path in the spec")
    if path.is_dir():
        return path
    if is_archive(str(path)):
        return extract_archive(path, cache, limits)
    raise DatasetError(f"image_dir is neither a folder nor a .tar(.gz) archive: {image_dir}")


def _stage_remote(uri: str, cache: Path) -> Path:
    """Copy a remote file or folder into `<cache>/remote/<sha256(uri)>` once, atomically, under a lock."""
    fs, path = _fs_and_path(uri)
    if not fs.exists(path):
        raise DatasetError(f"not found: {uri}", hint="check the URI and the storage credentials")
    key = hashlib.sha256(uri.encode()).hexdigest()
    root = cache / "remote"
    root.mkdir(parents=True, exist_ok=True)
    name = _basename(uri)
    target = root / key
    with filelock.FileLock(str(root / f"{key}.lock")):
        if target.exists():
            return target / name if fs.isfile(path) else target
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=root))
        try:
            if fs.isfile(path):
                with fs.open(path, "rb") as src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            else:
                for remote_file in fs.find(path):
                    rel = os.path.relpath(remote_file, path)
                    if rel.startswith(".."):
                        continue
                    out = staging / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with fs.open(remote_file, "rb") as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target / name if fs.isfile(path) else target


def _basename(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1] or "data"


def image_root_for(folder: Path, file_names: list[str]) -> Path:
    """The folder the annotation file names are relative to.

    Archives made with `tar czf images.tar.gz images/` hold one top-level folder; when the names do
    not resolve at the root but do inside that single folder, use it.
    """
    probe = file_names[:20]
    if not probe or any((folder / n).exists() for n in probe):
        return folder
    children = [c for c in folder.iterdir() if not c.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir() and any((children[0] / n).exists() for n in probe):
        return children[0]
    return folder


def resolve_images_for(image_dir: str, file_names: list[str]) -> Path:
    """`resolve_image_dir` + `image_root_for`: the local folder the given file names are relative to."""
    return image_root_for(resolve_image_dir(image_dir), file_names)
