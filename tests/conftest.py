"""Session guard: the suite writes only under pytest's tmp paths. Scripts that a test runs without
--logs-dir / --models-dir / --data-dir get tmp folders through the environment, and at the end
the repository's own logs/, models/ and data folders must hold exactly what they held before."""
import os

import pytest

from lib.paths import ENV_DATA_DIR, ENV_LOGS_DIR, ENV_MODELS_DIR, ROOT

WATCHED = ("logs", "models", "demo", "train_images", "train_masks", "test_images", "submission.csv")


def _snapshot() -> set[str]:
    found = set()
    for name in WATCHED:
        path = ROOT / name
        if path.is_file():
            found.add(name)
        elif path.is_dir():
            found |= {p.relative_to(ROOT).as_posix() for p in path.rglob("*")}
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_written_outside_tmp(tmp_path_factory):
    before = _snapshot()
    root = tmp_path_factory.mktemp("session_dirs")
    saved = {k: os.environ.get(k) for k in (ENV_DATA_DIR, ENV_LOGS_DIR, ENV_MODELS_DIR)}
    os.environ.update({ENV_DATA_DIR: str(root / "data"), ENV_LOGS_DIR: str(root / "logs"),
                       ENV_MODELS_DIR: str(root / "models")})
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    new = sorted(_snapshot() - before)
    assert not new, f"the test suite wrote into the repository: {', '.join(new[:10])}"
