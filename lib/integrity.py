"""File hashes, and the check of a Kaggle package's checkpoints against its package.json.

Standard library only: bin/kaggle_predict.py runs `verify_package` before it installs a wheel
or imports torch, so a corrupted or swapped weights file stops the run before anything else.

What the check protects against: a checkpoint that is not the one the package was made with
(a truncated upload, a bit flip, a file swapped in by hand or by another dataset mounted over
it). What it cannot protect against: a package whose author is malicious, since the package's
own code (lib/, bin/) runs anyway; trust a package as you would trust its code.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from .errors import ProjectError

PACKAGE_FILE = "package.json"


class IntegrityError(ProjectError):
    """A packaged file whose size or hash differs from what package.json records."""


def sha256(path: str | Path) -> str:
    """The SHA-256 of a file's contents, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_of(models_dir: str | Path) -> Path | None:
    """The package folder whose models/ `models_dir` is (package.json beside it), or None."""
    package = Path(models_dir).resolve().parent
    return package if (package / PACKAGE_FILE).is_file() else None


def packaged_records(package: str | Path) -> dict[str, dict]:
    """package.json's checkpoint records by file (relative to the package, e.g. models/x.safetensors)."""
    path = Path(package) / PACKAGE_FILE
    try:
        records = json.loads(path.read_text(encoding="utf-8"))["checkpoints"]
        return {str(r["file"]): {"bytes": int(r["bytes"]), "sha256": str(r["sha256"])} for r in records}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{path}: no readable checkpoint records ({type(exc).__name__}: {exc})") from None


def verify_package(package: str | Path, files: Iterable[str | Path] | None = None) -> int:
    """Check `files` (default: every checkpoint package.json records) against their recorded size
    and SHA-256. A file under the package's models/ that package.json does not record, a missing
    file, or a mismatch raises IntegrityError naming the file (and both hashes); files outside the
    package are not the package's to vouch for and pass. Returns the number of files checked."""
    package = Path(package).resolve()
    records = packaged_records(package)
    wanted = [package / name for name in records] if files is None else [Path(f).resolve() for f in files]
    checked = 0
    for path in wanted:
        try:
            name = path.relative_to(package).as_posix()
        except ValueError:
            continue
        record = records.get(name)
        if record is None:
            raise IntegrityError(f"{path}: not recorded in {package / PACKAGE_FILE}; refusing to load a "
                                 f"checkpoint the package was not made with")
        if not path.is_file():
            raise IntegrityError(f"{path}: recorded in {PACKAGE_FILE} but missing from the package")
        size = path.stat().st_size
        if size != record["bytes"]:
            raise IntegrityError(f"{path}: {size} bytes, {PACKAGE_FILE} records {record['bytes']}; the file is "
                                 f"corrupted or was replaced, not loading it")
        actual = sha256(path)
        if actual != record["sha256"]:
            raise IntegrityError(f"{path}: sha256 {actual} but {PACKAGE_FILE} records {record['sha256']}; "
                                 f"the file is corrupted or was replaced, not loading it")
        checked += 1
    return checked
