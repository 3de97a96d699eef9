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
