"""File hashes, the check of a Kaggle package's files against its package.json, and the JSON
reader every settings file of the project goes through (size and nesting bounded).

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
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from .errors import ProjectError

PACKAGE_FILE = "package.json"


class IntegrityError(ProjectError):
    """A packaged file whose size or hash differs from what package.json records."""


def sha256(path: str | Path) -> str:
    """The SHA-256 of a file's contents, in hex."""
    return file_hash(path, hashlib.sha256())


def file_hash(path: str | Path, digest) -> str:
    """`digest` (a hashlib object) of a file's contents, read in 1 MiB blocks, in hex
    (hashlib.file_digest needs Python 3.11; the project runs on 3.10)."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_of(models_dir: str | Path) -> Path | None:
    """The package folder whose models/ `models_dir` is (package.json beside it), or None."""
    package = Path(models_dir).resolve().parent
    return package if (package / PACKAGE_FILE).is_file() else None


def read_json(path: str | Path, max_bytes: int = 50_000_000):
    """A JSON file's value; a file over `max_bytes`, not UTF-8, not JSON or nested past Python's
    recursion limit is a ValueError (the caller names the file)."""
    path = Path(path)
    if path.stat().st_size > max_bytes:
        raise ValueError(f"{path.stat().st_size} bytes, more than the {max_bytes} a JSON file of this project may have")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def packaged_records(package: str | Path) -> dict[str, dict]:
    """package.json's records of the files the package loads, by file (relative to the package,
    under models/, e.g. models/x.safetensors): {"bytes": int, "sha256": str}."""
    path = Path(package) / PACKAGE_FILE
    try:
        records = {}
        for record in read_json(path)["checkpoints"]:
            name, size, digest = record["file"], record["bytes"], record["sha256"]
            if not (isinstance(name, str) and _inside_models(name)):
                raise ValueError(f"file {name!r} is not a plain path under models/")
            if not (isinstance(size, int) and size >= 0 and isinstance(digest, str) and len(digest) == 64):
                raise ValueError(f"{name}: bytes {size!r} or sha256 {digest!r} malformed")
            records[name] = {"bytes": size, "sha256": digest}
        return records
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{path}: no readable checkpoint records ({type(exc).__name__}: {exc})") from None


def _inside_models(name: str) -> bool:
    parts = name.split("/")
    return len(parts) >= 2 and parts[0] == "models" and all(p not in ("", ".", "..") for p in parts) \
        and "\\" not in name


def verify_package(package: str | Path, files: Iterable[str | Path] | None = None) -> int:
    """Check `files` (default: every file package.json records) before they are loaded: each must
    be a regular file inside the package, reached through no symbolic link, recorded in
    package.json, with the recorded size and SHA-256. Anything else raises IntegrityError in one
    line naming the file: a path leaving the package (`models/../../x`, an absolute path), a link,
    a file the package was not made with, a missing or changed one. Returns the number checked.

    package.json itself is not vouched for: whoever can edit it can edit lib/ too, and a package
    runs its own code (see the module's docstring)."""
    package = Path(package).resolve()
    records = packaged_records(package)
    wanted = [package / name for name in records] if files is None else [Path(f) for f in files]
    for path in wanted:
        _check_file(package, Path(os.path.abspath(path)), records)      # abspath: '..' resolved, links not
    return len(wanted)


def _check_file(package: Path, path: Path, records: dict[str, dict]) -> None:
    try:
        name = path.relative_to(package).as_posix()
    except ValueError:
        raise IntegrityError(f"{path}: outside the package {package}; a package loads only the files "
                             f"its {PACKAGE_FILE} records") from None
    record = records.get(name)
    if record is None:
        raise IntegrityError(f"{path}: not recorded in {package / PACKAGE_FILE}; refusing to load a "
                             f"file the package was not made with")
    step = package
    for part in name.split("/"):
        step = step / part
        if step.is_symlink():
            raise IntegrityError(f"{step}: a symbolic link inside the package; refusing to load {name} through it")
    try:
        mode = path.lstat().st_mode
    except OSError:
        raise IntegrityError(f"{path}: recorded in {PACKAGE_FILE} but missing from the package") from None
    if not stat.S_ISREG(mode):
        raise IntegrityError(f"{path}: not a regular file; refusing to load it")
    size = path.stat().st_size
    if size != record["bytes"]:
        raise IntegrityError(f"{path}: {size} bytes, {PACKAGE_FILE} records {record['bytes']}; the file is "
                             f"corrupted or was replaced, not loading it")
    actual = sha256(path)
    if actual != record["sha256"]:
        raise IntegrityError(f"{path}: sha256 {actual} but {PACKAGE_FILE} records {record['sha256']}; "
                             f"the file is corrupted or was replaced, not loading it")
