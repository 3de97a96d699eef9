"""Atomic file writes: a reader never sees a half-written CSV, cache or checkpoint, a failed write
leaves the earlier file as it was, and a killed writer's temporary file is recognised later."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import logging
import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import ProjectError
from .integrity import file_hash

log = logging.getLogger(__name__)

# RLE strings of large images are far longer than the csv module's default field
# limit (131,072 characters); raise it once for every reader in the project.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


TEMP_SUFFIX = ".tmp"
# Tests only: "<file name>:<n>" holds this process's n-th write of that file just before its rename
# (the temporary file complete, the old file in place), so that a test can kill it there.
PAUSE_ENV = "FORGERY_TEST_PAUSE_WRITE"
_writes_seen: dict[str, int] = {}


class WriteError(ProjectError):
    """A file that could not be written (disk full, file-size limit, permissions); the earlier
    file of that name, if any, is untouched and no temporary file is left."""


def _temporary_name(path: Path) -> Path:
    """`.<name>.<pid>.<random>.tmp` beside `path`: the pid tells a later run whether its writer
    still lives (see remove_stale_temporaries)."""
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the same folder (same filesystem), so the final `os.replace` is
    atomic. It is created with mode 0o666 less the umask, the mode a plain `open` gives (not
    mkstemp's 0o600). On error the temporary file is removed and `path` is untouched; an OSError
    (a full disk, a file-size limit) becomes a one-line WriteError naming `path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temporary_name(path)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise WriteError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    try:
        yield tmp
        _pause_for_tests(path)
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(f"{path}: writing failed ({exc.strerror or exc}); the earlier file, if any, "
                         f"is untouched") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _pause_for_tests(path: Path) -> None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    name, _, count = spec.rpartition(":")
    if name != path.name:
        return
    _writes_seen[name] = _writes_seen.get(name, 0) + 1
    if _writes_seen[name] == int(count):
        print(f"{PAUSE_ENV}: holding {path.name} before its rename", file=sys.stderr, flush=True)
        while True:
            time.sleep(60)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically and durably (flushed to the disk before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files in `folder` that a killed writer left (their pid is no running
    process); those of live writers stay. Returns the removed paths."""
    removed = []
    for tmp in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        parts = tmp.name.rsplit(".", 3)     # ['.<name>', pid, token, 'tmp']
        if len(parts) != 4 or not parts[1].isdigit() or _alive(int(parts[1])):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # someone else's process
        return True
    return True


def file_key(path: str | os.PathLike) -> str:
    """A cache key of a file: a hash of its bytes (24 hex digits). Its contents, not its path, size
    and time: an image replaced by another of the same size with its time restored is a new
    entry. Hashing reads the file once more, which costs far less than what the cache saves."""
    return file_hash(path, hashlib.blake2b(digest_size=12))


class NpzCache:
    """One compressed .npz of arrays per source file under `folder`, keyed by file_key (a hash of
    the file's bytes), written atomically. Subclasses turn their results into arrays and back.
    The cache is an optimisation: an entry that cannot be read reads as missing (it is
    recomputed), and a cache that cannot be written is one warning, after which the run goes on
    without writing to it."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.writable = True

    def _file(self, path: str | os.PathLike) -> Path:
        return self.folder / f"{file_key(path)}.npz"

    def read(self, path: str | os.PathLike) -> dict | None:
        """The arrays stored for `path`, or None (no entry, or an unreadable one)."""
        try:
            file = self._file(path)
            if not file.is_file():
                return None
            with np.load(file, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError):
            return None

    def write(self, path: str | os.PathLike, **arrays) -> None:
        """Store `arrays` for `path`; a failure is a warning, once, and ends the writing."""
        if not self.writable:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(self._file(path)) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez_compressed(handle, **arrays)
        except (WriteError, OSError) as exc:
            self.writable = False
            text = str(exc) if isinstance(exc, WriteError) else f"{self.folder}: {exc.strerror or exc}"
            log.warning("%s; going on without writing the cache (--no-cache: without reading it either)", text)
