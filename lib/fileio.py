"""Atomic file writes: a reader never sees a half-written CSV, cache or checkpoint."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

# RLE strings of large images are far longer than the csv module's default field
# limit (131,072 characters); raise it once for every reader in the project.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the same folder (same filesystem), so the final
    `os.replace` is atomic. On error the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def file_key(path: str | os.PathLike) -> str:
    """A cache key of a file: its resolved path, size and modification time (24 hex digits)."""
    path = Path(path).resolve()
    stat = path.stat()
    return hashlib.sha1(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:24]


class NpzCache:
    """One compressed .npz of arrays per source file under `folder`, keyed by file_key (the
    file's path, size and modification time), written atomically. Subclasses turn their
    results into arrays and back; an unreadable entry reads as missing (it is recomputed)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def _file(self, path: str | os.PathLike) -> Path:
        return self.folder / f"{file_key(path)}.npz"

    def read(self, path: str | os.PathLike) -> dict | None:
        """The arrays stored for `path`, or None (no entry, or an unreadable one)."""
        try:
            file = self._file(path)
            if not file.is_file():
                return None
            with np.load(file) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError):
            return None

    def write(self, path: str | os.PathLike, **arrays) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self._file(path)) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
